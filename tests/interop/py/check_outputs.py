"""Loads files ckptio wrote with the real torch.load and records what the C++ tests compare.

  check_outputs.py MANIFEST.json

MANIFEST is a list of {"file": path, "result": path}. For each file, result gets
{"error": null or why torch.load failed, "root": encode.encode(obj), "ties": encode.ties(obj),
 "facts": encode.tensor_facts(obj), "weights_only": encode.weights_only_error(file),
 "zip": null for non-zip files, else {"bad_crc": testzip() result, "compressed": names of
 records not stored, "misaligned": data records whose bytes do not start at a multiple of
 64}}. One process checks all files: importing torch costs about a second.
"""
import json
import os
import struct
import sys
import traceback
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import encode  # noqa: E402


def zip_facts(path):
    with zipfile.ZipFile(path) as z, open(path, "rb") as f:
        facts = {"bad_crc": z.testzip(), "compressed": [], "misaligned": [], "records": []}
        for info in z.infolist():
            facts["records"].append(info.filename)
            if info.compress_type != zipfile.ZIP_STORED:
                facts["compressed"].append(info.filename)
            if info.filename.split("/")[1:2] != ["data"]:
                continue
            # The data starts after the *local* header, whose extra field (the alignment
            # padding) differs from the central directory's copy.
            f.seek(info.header_offset)
            head = f.read(30)
            if head[:4] != b"PK\x03\x04":
                facts["misaligned"].append(info.filename + " (no local header)")
                continue
            name_len, extra_len = struct.unpack("<HH", head[26:30])
            offset = info.header_offset + 30 + name_len + extra_len
            if offset % 64:
                facts["misaligned"].append("%s at %d" % (info.filename, offset))
        return facts


def check(path):
    out = {"error": None, "root": None, "ties": None, "facts": None, "zip": None,
           "weights_only": encode.weights_only_error(path)}
    try:
        obj, locs = encode.load(path)
        out["root"] = encode.encode(obj, locs)
        out["ties"] = encode.ties(obj)
        out["facts"] = encode.tensor_facts(obj, locs)
    except Exception:  # the test reports it
        out["error"] = traceback.format_exc(limit=3)
    if zipfile.is_zipfile(path):
        try:
            out["zip"] = zip_facts(path)
        except Exception:
            out["zip"] = {"error": traceback.format_exc(limit=3)}
    return out


def check_manifest(argv, check_file, usage):
    """For each {"file", "result"} of the manifest argv[0] names, writes check_file(file)
    as JSON to result. Shared by the check scripts of the interop binaries."""
    if len(argv) != 1:
        print(usage, file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        manifest = json.load(f)
    for item in manifest:
        if not os.path.exists(item["file"]):
            continue  # ckptio failed to write it; the test reports that
        with open(item["result"], "w", encoding="utf-8") as f:
            json.dump(check_file(item["file"]), f)
    return 0


def main(argv):
    return check_manifest(argv, check, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
