# Checks a torch-zip-zstd file with tools that know nothing of ckptio:
#   python3 check_zip_zstd_records.py ORIGINAL.pt CONVERTED.zzs
# ORIGINAL.pt is the torch.save file CONVERTED was made from. Every storage record must be a
# zip method-93 (zstd) entry that bsdtar (libarchive) extracts with its CRC checked and that
# the zstd tool decodes from the raw payload; what they decode to must be the storage's
# bytes byte-grouped per formats/compress/SPEC.md (re-implemented here with numpy).
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np

orig_path, zzs_path = sys.argv[1], sys.argv[2]
orig = zipfile.ZipFile(orig_path)
zzs = zipfile.ZipFile(zzs_path)
raw = open(zzs_path, "rb").read()
prefix = zzs.namelist()[0].split("/")[0]
orig_prefix = orig.namelist()[0].split("/")[0]


def grouped(data, grouping, chunk_size):
    """SPEC.md sections 2-3: per chunk, rotate each element left by one bit, then planes
    from the most significant byte down."""
    out = bytearray()
    for at in range(0, len(data), chunk_size):
        chunk = data[at:at + chunk_size]
        if grouping == 0:
            out += chunk
            continue
        bits = 16 if grouping == 1 else 32
        x = np.frombuffer(chunk, dtype="<u2" if bits == 16 else "<u4")
        y = ((x << 1) | (x >> (bits - 1))).astype(x.dtype)
        planes = y.view(np.uint8).reshape(-1, bits // 8)[:, ::-1]  # most significant first
        out += planes.T.copy().tobytes()
    return bytes(out)


records = [i for i in zzs.infolist() if i.filename.startswith(prefix + "/data/")]
assert records, "no storage records"
groupings = set()
for info in records:
    name = info.filename
    assert info.compress_type == 93, f"{name}: method {info.compress_type}, expected 93"
    assert info.extract_version >= 63, f"{name}: version needed {info.extract_version}"
    # bsdtar decodes method 93 itself and fails on a CRC mismatch.
    tar = subprocess.run(["bsdtar", "-xOf", zzs_path, name], capture_output=True)
    assert tar.returncode == 0, f"{name}: bsdtar: {tar.stderr.decode()}"
    # The payload is one zstd stream (index in a skippable frame, then plane frames).
    n, m = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + n + m
    payload = raw[start:start + info.compress_size]
    zs = subprocess.run(["zstd", "-d", "-c", "-q"], input=payload, capture_output=True)
    assert zs.returncode == 0, f"{name}: zstd: {zs.stderr.decode()}"
    assert zs.stdout == tar.stdout, f"{name}: zstd and bsdtar disagree"
    assert len(zs.stdout) == info.file_size, f"{name}: size {len(zs.stdout)} != {info.file_size}"
    assert zlib.crc32(zs.stdout) == info.CRC, f"{name}: CRC mismatch"
    # Index frame: u32 magic, u32 size, "CKZ2", version, grouping, reserved, chunk size.
    assert payload[8:12] == b"CKZ2", f"{name}: no index frame"
    grouping = payload[13]
    chunk_size = struct.unpack("<I", payload[16:20])[0]
    groupings.add(grouping)
    data = orig.read(orig_prefix + name[len(prefix):])
    assert zs.stdout == grouped(data, grouping, chunk_size), f"{name}: not the grouped bytes"
print(f"{len(records)} records ok, groupings {sorted(groupings)}")
assert {1, 2} <= groupings, f"expected bf16/fp16 and fp32 groupings, saw {sorted(groupings)}"
