#!/usr/bin/env python3
"""Writes seed corpora for the fuzz targets (fuzz/*.cc) into OUT/<target>/.

Seeds are made at build time, never committed: the small real files in tests/data/peer
(written by many PyTorch versions), pickles made here with the standard library, the same
files re-zipped with deflate, and compressed variants written by the fuzz build's own
`ckptio convert` (zstd wrapper, torch-zip-zstd). Uses only the standard library.

usage: make_seeds.py SOURCE_DIR OUT_DIR CKPTIO_CLI
"""
import collections
import io
import json
import os
import pickle
import subprocess
import sys
import struct
import zipfile

MAX = 64 * 1024  # the fuzzers' -max_len

src, out, cli = sys.argv[1], sys.argv[2], sys.argv[3]
targets = ["fuzz_unpickle", "fuzz_zip_reader", "fuzz_torch_zip", "fuzz_torch_legacy",
           "fuzz_zstd_stream", "fuzz_chunked_zstd", "fuzz_torchscript", "fuzz_safetensors",
           "fuzz_hf_index", "fuzz_dcp_metadata", "fuzz_plugins"]
for t in targets:
    os.makedirs(os.path.join(out, t), exist_ok=True)
count = collections.Counter()


def put(target, name, data):
    if len(data) > MAX:
        return
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)
    count[target] += 1


peer = os.path.join(src, "tests", "data", "peer")
zips, legacy = [], []
for root, _, files in os.walk(peer):
    for f in sorted(files):
        p = os.path.join(root, f)
        data = open(p, "rb").read()
        if len(data) > MAX:
            continue
        name = os.path.relpath(p, peer).replace("/", "_")
        if data[:2] == b"PK":
            zips.append((name, p, data))
        elif data[:1] == b"\x80" or data[:1] in b"(L]}":
            legacy.append((name, p, data))

# Pickles: data.pkl of each zip, and standard-library pickles of every value kind.
for name, _, data in zips:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for n in z.namelist():
            if n.endswith("data.pkl"):
                pkl = z.read(n)
                put("fuzz_unpickle", name + ".0", b"\0" + pkl)
                put("fuzz_unpickle", name + ".1", b"\1" + pkl)
shared = [1, 2, 3]
values = [
    None, True, 1, -1, 2**31, 2**63, -(2**70), 1.5, float("nan"), "text", "é€", b"bytes",
    bytearray(b"ba"), [1, [2, [3]]], (1, (2,)), {"a": 1, 2: "b"}, {1, 2}, frozenset({3}),
    complex(1, 2), collections.OrderedDict([("w", 1), ("b", 2)]), [shared, shared],
    {"x": (shared, shared), "y": [shared]}, list(range(300)), "s" * 300,
]
for proto in range(0, pickle.HIGHEST_PROTOCOL + 1):
    for i, v in enumerate(values):
        put("fuzz_unpickle", "std_p%d_%d" % (proto, i), b"\0" + pickle.dumps(v, protocol=proto))
    put("fuzz_unpickle", "std_all_p%d" % proto, b"\1" + pickle.dumps(values, protocol=proto))

# Zip containers and the torch zip format, also re-zipped with deflate (other tools do).
for name, _, data in zips:
    for t in ("fuzz_zip_reader", "fuzz_torch_zip"):
        put(t, name, data)
    put("fuzz_plugins", name + ".detect", b"\0" + data)
    put("fuzz_plugins", name + ".zip", b"\1" + data)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        script = any(n.endswith("constants.pkl") or "/code/" in n or n.endswith("bytecode.pkl")
                     for n in z.namelist())
    if script:  # TorchScript archives (torch.jit.save, lite)
        put("fuzz_torchscript", name + ".sd", b"\0" + data)
        put("fuzz_torchscript", name + ".modules", b"\1" + data)
        put("fuzz_plugins", name + ".torchscript", b"\5" + data)
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, \
            zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    put("fuzz_zip_reader", name + ".deflate", buf.getvalue())
    put("fuzz_torch_zip", name + ".deflate", buf.getvalue())
for name, _, data in legacy:
    put("fuzz_torch_legacy", name, data)
    put("fuzz_plugins", name + ".detect", b"\0" + data)
    put("fuzz_plugins", name + ".legacy", b"\2" + data)

# Compressed variants, written by ckptio itself.
tmp = os.path.join(out, "tmp")
os.makedirs(tmp, exist_ok=True)
env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
for name, p, _ in (zips + legacy)[:12]:
    for fmt, sel in (("zstd", 3), ("torch-zip-zstd", 4)):
        dst = os.path.join(tmp, name + "." + fmt)
        r = subprocess.run([cli, "convert", p, dst, "--format", fmt, "--option", "chunk_size=4096"],
                           capture_output=True, env=env)
        if r.returncode != 0:
            continue
        data = open(dst, "rb").read()
        put("fuzz_plugins", name + "." + fmt, bytes([sel]) + data)
        put("fuzz_plugins", name + "." + fmt + ".detect", b"\0" + data)
        if fmt == "zstd":
            put("fuzz_zstd_stream", name, data)
        else:
            with zipfile.ZipFile(dst) as z:
                for info in z.infolist():
                    if info.compress_type != 93:  # storage records (zipfile cannot decode 93)
                        continue
                    n, m = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
                    start = info.header_offset + 30 + n + m
                    rec = data[start:start + info.compress_size]
                    put("fuzz_chunked_zstd", name + "." + info.filename.replace("/", "_"), rec)
# safetensors: headers made here (every dtype name, empty and 0-dim tensors, metadata,
# padding), and the state_dicts among the small real files converted by ckptio.
def safetensors_file(tensors, metadata=None, pad=True):
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, nbytes) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + nbytes]}
        data += bytes(range(nbytes % 256)) + b"\x7f" * max(0, nbytes - nbytes % 256)
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


sizes = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "F8_E4M3FNUZ": 1,
         "F8_E5M2FNUZ": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4,
         "C64": 8, "F64": 8, "I64": 8, "U64": 8}
every = {d.lower(): (d, [2, 3], 6 * n) for d, n in sizes.items()}
every["f4"] = ("F4", [2, 4], 4)
st_seeds = {
    "every_dtype": safetensors_file(every, {"format": "pt", "k": "v"}),
    "empty_and_scalar": safetensors_file({"e": ("F32", [0, 3], 0), "s": ("I64", [], 8)}),
    "nothing": safetensors_file({}),
    "f6_refused": safetensors_file({"f6": ("F6_E2M3", [4], 3)}),
    "unpadded": safetensors_file({"w": ("F16", [3], 6)}, None, pad=False),
    "nested_names": safetensors_file({"a.b.c": ("F32", [1], 4), "a.d": ("BF16", [2, 2], 8)},
                                     {"format": "pt", "a.d": "a.b.c"}),
}
for name, data in st_seeds.items():
    put("fuzz_safetensors", name, data)
    put("fuzz_plugins", name + ".st", b"\6" + data)
    put("fuzz_plugins", name + ".st.detect", b"\0" + data)
for name, p, _ in (zips + legacy)[:20]:
    dst = os.path.join(tmp, name + ".safetensors")
    r = subprocess.run([cli, "convert", p, dst, "--format", "safetensors", "--option", "dedup=1"],
                       capture_output=True, env=env)
    if r.returncode == 0:
        data = open(dst, "rb").read()
        put("fuzz_safetensors", name, data)
        put("fuzz_plugins", name + ".st", b"\6" + data)

# Hugging Face indexes: as transformers 5.24 writes them (sorted, indent 2, ensure_ascii),
# as huggingface_hub writes them (metadata first, unsorted), .bin shards, tricky names.
def hf_index(weight_map, metadata, **dump):
    return json.dumps({"metadata": metadata, "weight_map": weight_map}, **dump).encode()


st_map = {"model.layers.%d.w" % i: "model-%05d-of-00003.safetensors" % (i % 3 + 1) for i in range(9)}
hf_seeds = {
    "transformers": hf_index(st_map, {"total_parameters": 99, "total_size": 396}, indent=2,
                             sort_keys=True) + b"\n",
    "hub": hf_index(st_map, {"total_size": 396}, indent=2),
    "bin": hf_index({"a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"},
                    {"total_size": 8}),
    "tricky": hf_index({"\u00e9\"\\\t.w": "sub/model-00001-of-00001.safetensors", "\U0001f600": "x.safetensors"},
                       {"format": "pt", "nested": {"k": [1, 2.5e-3, None, True]}}, ensure_ascii=False),
    "no_metadata": json.dumps({"weight_map": {"w": "model.safetensors"}}).encode(),
}
for name, data in hf_seeds.items():
    put("fuzz_hf_index", name, data)

# DCP .metadata: real files from torch.distributed.checkpoint.save of the venv's torch (when
# there is one), in one process: plain, nested, bytes items, several dtypes, two threads.
DCP_SCRIPT = r"""
import os, sys, warnings
import torch
import torch.distributed.checkpoint as dcp
warnings.filterwarnings("ignore")
out = sys.argv[1]
cases = {
    "flat": {"w": torch.randn(4, 3), "b": torch.zeros(3, dtype=torch.bfloat16)},
    "nested": {"model": {"l0": {"w": torch.ones(2, 2)}, "step": 7},
               "optim": {"state": {0: {"exp_avg": torch.zeros(2)}}, "lr": [0.1, 0.01]},
               "scalar": torch.tensor(3, dtype=torch.int64), "empty": torch.zeros(0, 5)},
}
for name, sd in cases.items():
    for threads in (1, 2):
        d = os.path.join(out, "%s_%d" % (name, threads))
        w = dcp.FileSystemWriter(d, thread_count=threads, single_file_per_rank=threads == 1)
        dcp.save(sd, storage_writer=w, no_dist=True)
"""
venv_python = os.path.join(src, ".venv", "bin", "python")
if os.path.exists(venv_python):
    dcp_dir = os.path.join(tmp, "dcp")
    r = subprocess.run([venv_python, "-c", DCP_SCRIPT, dcp_dir], capture_output=True, env=env)
    if r.returncode == 0:
        for name in sorted(os.listdir(dcp_dir)):
            put("fuzz_dcp_metadata", name, open(os.path.join(dcp_dir, name, ".metadata"), "rb").read())

for t in targets:
    print("seeds: %-20s %d" % (t, count[t]))
