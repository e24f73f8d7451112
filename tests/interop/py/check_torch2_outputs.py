"""Loads files ckptio wrote every way torch 2.x offers and records what torch2_test.cc
compares.

  check_torch2_outputs.py MANIFEST.json

MANIFEST is a list of {"file": path, "result": path}. For each file, result gets
{"error": null or why torch.load(weights_only=False) failed, "root", "ties", "facts" (of that
load), "weights_only": encode.weights_only_error(file), "mmap": the same for
torch.load(mmap=True) with the default weights_only=True (or {"skip": why}),
"offsets": null or why torch.load(mmap=True) fails when it predicts every storage's offset
from .format_version / .storage_alignment (config.load.calculate_storage_offsets, with
TORCH_SERIALIZATION_DEBUG's check against the local headers), or {"skip": why},
"zip": zip_layout(file) or null}. One process checks all files: importing torch is slow.
"""
import inspect
import json
import os
import struct
import sys
import traceback
import zipfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_outputs  # noqa: E402
import encode  # noqa: E402


def untyped(t):
    """The untyped storage under a tensor or TypedStorage (1.13 spells it _storage)."""
    if not isinstance(t, torch.storage.TypedStorage):
        if hasattr(t, "untyped_storage"):
            return t.untyped_storage()
        t = t.storage()
    return t._untyped_storage if hasattr(t, "_untyped_storage") else t._storage


def ties(v):
    """Per tensor of encode.tensors_in_order, the index of the first tensor whose untyped
    storage has the same data_ptr; -1 for empty storages (an mmap load gives them an address
    inside the file, a copy load none, so their identity is not comparable)."""
    first = {}
    out = []
    for i, t in enumerate(encode.tensors_in_order(v)):
        s = untyped(t)
        out.append(-1 if s.nbytes() == 0 else first.setdefault(s.data_ptr(), i))
    return out


def zip_layout(path):
    """Records (names after the prefix, directory order), where each data record's bytes
    start, the 2.x records' text and whether the CRCs hold. Records are read from their
    offsets, not with ZipFile.read, which refuses the CRC-0 records of set_crc32_options."""
    with zipfile.ZipFile(path) as z, open(path, "rb") as f:
        prefix = z.namelist()[0].split("/")[0]
        out = {"prefix": prefix, "records": [], "offsets": {}, "compressed": [],
               "bad_crc": None}
        for rec in (".format_version", ".storage_alignment", "byteorder", "version"):
            out[rec] = None
        for info in z.infolist():
            name = info.filename[len(prefix) + 1:]
            out["records"].append(name)
            if info.compress_type != zipfile.ZIP_STORED:
                out["compressed"].append(name)
            f.seek(info.header_offset)
            head = f.read(30)
            name_len, extra_len = struct.unpack("<HH", head[26:30])
            offset = info.header_offset + 30 + name_len + extra_len
            f.seek(offset)
            data = f.read(info.compress_size)
            if out["bad_crc"] is None and zipfile.crc32(data) != info.CRC:
                out["bad_crc"] = name
            if name.startswith("data/"):
                out["offsets"][name[5:]] = offset
            elif name in out:
                out[name] = data.decode("latin-1")
        return out


def describe(path, **load_args):
    locs = encode.Locations()
    obj = torch.load(path, map_location=locs, **load_args)
    return {"root": encode.encode(obj, locs), "ties": ties(obj),
            "facts": encode.tensor_facts(obj, locs)}


def error_text(e):
    return "%s: %s" % (type(e).__name__, " ".join(str(e).split())[-400:])


def mmap_check(path):
    if "mmap" not in inspect.signature(torch.load).parameters:
        return {"skip": "torch %s's torch.load has no mmap" % torch.__version__}
    if not zipfile.is_zipfile(path):
        return {"skip": "torch.load(mmap=True) reads only zip files"}
    try:
        return describe(path, mmap=True)  # weights_only: the default (True since 2.6)
    except Exception as e:
        return {"error": error_text(e)}


def offsets_check(path):
    try:
        from torch.utils.serialization import config
    except ImportError:
        return {"skip": "torch %s has no serialization config" % torch.__version__}
    if not hasattr(config.load, "calculate_storage_offsets"):
        return {"skip": "torch %s cannot predict storage offsets" % torch.__version__}
    if not zipfile.is_zipfile(path):
        return {"skip": "not a zip file"}
    old = config.load.calculate_storage_offsets
    config.load.calculate_storage_offsets = True
    os.environ["TORCH_SERIALIZATION_DEBUG"] = "1"
    try:
        return describe(path, mmap=True, weights_only=False)
    except Exception as e:
        return {"error": error_text(e)}
    finally:
        config.load.calculate_storage_offsets = old
        del os.environ["TORCH_SERIALIZATION_DEBUG"]


def check(path):
    out = {"error": None, "weights_only": encode.weights_only_error(path),
           "mmap": mmap_check(path), "offsets": offsets_check(path), "zip": None}
    try:
        out.update(describe(path, weights_only=False))
    except Exception:  # the test reports it
        out["error"] = traceback.format_exc(limit=3)
    if zipfile.is_zipfile(path):
        out["zip"] = zip_layout(path)
    return out


def main(argv):
    return check_outputs.check_manifest(argv, check, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
