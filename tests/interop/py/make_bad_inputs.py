"""Writes the inputs of bad_input_test: a small real torch.save file in each format, where its
structural boundaries are, and hostile variants of it.

  make_bad_inputs.py DIR

DIR/small.zip.pt, DIR/small.legacy.pt   the same small checkpoint, both formats
DIR/cuts.json    {"zip": [[offset, what], ...], "legacy": [...]}: lengths to truncate at
DIR/evil_system.zip.pt, evil_system.legacy.pt   main pickle calls os.system (never run it!)
DIR/lying_numel.zip.pt    data.pkl claims more elements than data/0 holds
DIR/lying_count.legacy.pt a storage's element count header disagrees with the pickle
DIR/missing_record.zip.pt data/0 removed
DIR/bad_magic.legacy.pt   the legacy magic number changed
"""
import io
import json
import os
import pickle
import pickletools
import struct
import sys
import zipfile

import torch

MARKER = "ckptio_bad_input_executed"


class Evil:
    """Unpickling this runs a shell command: a reader must refuse the global instead."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch %s" % self.marker,))


def small_object():
    torch.manual_seed(0)
    return {"w": torch.randn(3, 4), "b": torch.arange(3), "meta": {"name": "x", "step": 3}}


def opcode_offsets(data, base):
    """base + position of every opcode of the pickle in data (inside the pickle)."""
    return [base + pos for _, _, pos in pickletools.genops(data)]


def zip_cuts(path):
    raw = open(path, "rb").read()
    cuts = [(n, "magic") for n in range(0, 5)]
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        cd_start = raw.find(b"PK\x01\x02")
        for info in infos:
            h = info.header_offset
            name_len, extra_len = struct.unpack("<HH", raw[h + 26:h + 30])
            data = h + 30 + name_len + extra_len
            end = data + info.compress_size
            what = info.filename
            cuts += [(h, "start of local header " + what), (h + 4, "local header " + what),
                     (h + 18, "local header sizes " + what), (h + 29, "local header " + what),
                     (h + 30, "local header name " + what),
                     (h + 30 + name_len, "local header extra " + what),
                     (data, "data of " + what), (end - 1, "end of data " + what)]
            if info.compress_size > 2:
                cuts.append(((data + end) // 2, "middle of data " + what))
            if info.filename.endswith("data.pkl"):
                cuts += [(o, "data.pkl opcode") for o in opcode_offsets(raw[data:end], data)]
        eocd = raw.rfind(b"PK\x05\x06")
        pos = cd_start
        while pos < eocd:
            n, m, k = struct.unpack("<HHH", raw[pos + 28:pos + 34])
            cuts += [(pos, "central header"), (pos + 20, "central header sizes"),
                     (pos + 46, "central header name")]
            pos += 46 + n + m + k
        cuts += [(eocd, "EOCD"), (eocd + 8, "EOCD counts"), (eocd + 16, "EOCD offset"),
                 (len(raw) - 1, "last byte")]
    return cuts


def legacy_cuts(path):
    raw = open(path, "rb").read()
    f = io.BytesIO(raw)
    cuts = []
    names = ["magic", "protocol version", "sys_info", "main object", "storage keys"]
    for name in names:
        start = f.tell()
        ops = list(pickletools.genops(f))
        end = f.tell()
        cuts += [(start, "start of " + name), (start + 1, "inside " + name),
                 ((start + end) // 2, "middle of " + name), (end - 1, "STOP of " + name)]
        if name == "main object":
            cuts += [(pos, "main pickle opcode") for _, _, pos in ops]
    f.seek(0)
    for _ in range(3):
        for _ in pickletools.genops(f):
            pass
    elem_size = {}  # storage key -> element size, from the persistent ids

    class Ids(pickle.Unpickler):
        def persistent_load(self, pid):
            elem_size[pid[2]] = pid[1](0).element_size()
            return pid[1](pid[4])

    Ids(f).load()
    keys = pickle.load(f)
    for key in keys:
        start = f.tell()
        (count,) = struct.unpack("<q", f.read(8))
        nbytes = count * elem_size[key]
        cuts += [(start + 4, "count of storage " + key), (start + 8, "data of storage " + key),
                 (start + 8 + nbytes // 2, "middle of storage " + key),
                 (start + 8 + nbytes - 1, "end of storage " + key)]
        f.seek(start + 8 + nbytes)
    assert f.tell() == len(raw), "unexpected trailing bytes"
    return cuts


def rewrite_zip(src, dst, change):
    """Copies the zip src to dst, with change(name, bytes) -> bytes or None (drop)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)


def lie_about_numel(pkl):
    """Replaces the numel of the first persistent id ('storage', T, key, 'cpu', numel) by
    1000000, keeping the pickle valid."""
    ops = list(pickletools.genops(pkl))
    for i, (op, arg, pos) in enumerate(ops):
        if arg == "cpu":
            for op2, arg2, pos2 in ops[i + 1:]:
                if op2.name in ("BININT1", "BININT2", "BININT"):
                    end = [p for _, _, p in ops if p > pos2][0]
                    return pkl[:pos2] + b"J" + struct.pack("<i", 1000000) + pkl[end:]
    raise ValueError("no persistent id found")


def main(argv):
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = argv[0]
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)  # noqa: E731
    obj = small_object()
    torch.save(obj, p("small.zip.pt"))
    torch.save(obj, p("small.legacy.pt"), _use_new_zipfile_serialization=False)
    # One cut per offset (the first description wins); never the whole file.
    cuts = {}
    for fmt, found in (("zip", zip_cuts(p("small.zip.pt"))),
                       ("legacy", legacy_cuts(p("small.legacy.pt")))):
        size = os.path.getsize(p("small.%s.pt" % fmt))
        by_offset = {}
        for offset, what in found:
            if 0 <= offset < size:
                by_offset.setdefault(offset, what)
        cuts[fmt] = sorted(by_offset.items())
    with open(p("cuts.json"), "w") as f:
        json.dump(cuts, f)

    evil = pickle.dumps({"x": Evil(os.path.join(out, MARKER))}, protocol=2)
    with zipfile.ZipFile(p("evil_system.zip.pt"), "w") as z:
        z.writestr("evil_system/data.pkl", evil)
        z.writestr("evil_system/version", "3\n")
    legacy = open(p("small.legacy.pt"), "rb").read()
    f = io.BytesIO(legacy)
    for _ in range(3):
        for _ in pickletools.genops(f):
            pass
    head = legacy[:f.tell()]
    with open(p("evil_system.legacy.pt"), "wb") as g:
        g.write(head + evil + pickle.dumps([], protocol=2))

    rewrite_zip(p("small.zip.pt"), p("lying_numel.zip.pt"),
                lambda n, d: lie_about_numel(d) if n.endswith("/data.pkl") else d)
    rewrite_zip(p("small.zip.pt"), p("missing_record.zip.pt"),
                lambda n, d: None if n.endswith("/data/0") else d)

    # Legacy: the first storage blob's element count says one more than the pickle.
    f = io.BytesIO(legacy)
    for _ in range(5):
        for _ in pickletools.genops(f):
            pass
    at = f.tell()
    (count,) = struct.unpack("<q", legacy[at:at + 8])
    with open(p("lying_count.legacy.pt"), "wb") as g:
        g.write(legacy[:at] + struct.pack("<q", count + 1) + legacy[at + 8:])

    # Magic: the LONG1 payload's first byte (0x6c) changed.
    assert legacy[:4] == b"\x80\x02\x8a\x0a"
    with open(p("bad_magic.legacy.pt"), "wb") as g:
        g.write(legacy[:4] + b"\x6d" + legacy[5:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
