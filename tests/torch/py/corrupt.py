"""Damaged copies of torch.save files, for the torch adapter's failure tests.

  corrupt.py legacy-count SRC DST   SRC a legacy file: the first storage's element count
                                    (the 8 bytes before its data) becomes 123456789
  corrupt.py deflate SRC DST        SRC a zip file: its largest data record re-written
                                    deflated (as another zip tool might), with a stream that
                                    cannot be decoded (a final block of the invalid type 3)
"""
import io
import pickletools
import struct
import sys
import zipfile


def legacy_count(src, dst):
    b = bytearray(open(src, "rb").read())
    f = io.BytesIO(b)
    for _ in range(5):  # magic, protocol, sys_info, the object, the storage keys
        for _ in pickletools.genops(f):
            pass
    b[f.tell():f.tell() + 8] = (123456789).to_bytes(8, "little")
    open(dst, "wb").write(b)


def deflate(src, dst):
    zin = zipfile.ZipFile(src)
    victim = max((i for i in zin.infolist() if "/data/" in i.filename),
                 key=lambda i: i.file_size).filename
    with zipfile.ZipFile(dst, "w") as z:
        for i in zin.infolist():
            z.writestr(i.filename, zin.read(i),
                       zipfile.ZIP_DEFLATED if i.filename == victim else zipfile.ZIP_STORED)
    b = bytearray(open(dst, "rb").read())
    h = zipfile.ZipFile(dst).getinfo(victim).header_offset
    name_len, extra_len = struct.unpack("<HH", b[h + 26:h + 30])
    b[h + 30 + name_len + extra_len] = 0x07  # BFINAL=1, BTYPE=3
    open(dst, "wb").write(b)


if __name__ == "__main__":
    modes = {"legacy-count": legacy_count, "deflate": deflate}
    if len(sys.argv) != 4 or sys.argv[1] not in modes:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    modes[sys.argv[1]](sys.argv[2], sys.argv[3])
