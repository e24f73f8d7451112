"""Helpers for install_test.sh, run with Debian's real PyTorch (/usr/bin/python3).

  make DIR                 model.pt (a state_dict with views, tied and odd-dtype tensors),
                           nested.pt (dicts of dicts), general.pt (a tensor-less entry),
                           vector.pt and vectors.pt (one and two float32 vectors: f32raw)
  check ORIG.pt FILE       reads FILE with the strict reader below (written from the
                           safetensors spec, independent of ckptio) and compares every
                           tensor with torch.load(ORIG.pt)
  same_torch A.pt B.pt     torch.load both: same names, dtypes, shapes and values
  same_json A.json B.json  `ckptio inspect --json` of both: same name -> dtype, shape, sha256
  malformed DIR            writes broken safetensors files; prints "name<TAB>expected text"

No safetensors package exists for Debian 12 (and there is no network to install one), so
the "other reader" is this file's read_safetensors(): it follows the published format
strictly rather than trusting ckptio's plugin.
"""
import collections
import json
import struct
import sys

import torch

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
MAX_HEADER = 100_000_000


def read_safetensors(path):
    """Returns (tensors in file order, metadata); raises ValueError on any spec violation."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError("shorter than the header length")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > MAX_HEADER or 8 + n > len(buf):
        raise ValueError("bad header length %d" % n)
    text = buf[8:8 + n].decode("utf-8")
    if not text.startswith("{"):
        raise ValueError("header does not start with '{'")

    def no_dups(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError("duplicate keys")
        return collections.OrderedDict(pairs)

    header = json.loads(text, object_pairs_hook=no_dups)
    data = buf[8 + n:]
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError("__metadata__ is not str -> str")
    entries = []
    for name, info in header.items():
        if set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError("%s: fields %s" % (name, sorted(info)))
        dtype = DTYPES[info["dtype"]]
        shape, (begin, end) = info["shape"], info["data_offsets"]
        if not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError("%s: shape %r" % (name, shape))
        numel = 1
        for d in shape:
            numel *= d
        if numel * torch.empty((), dtype=dtype).element_size() != end - begin:
            raise ValueError("%s: shape does not match the byte range" % name)
        entries.append((begin, end, name, dtype, shape))
    entries.sort(key=lambda e: (e[0], e[1]))
    pos = 0
    out = collections.OrderedDict()
    for begin, end, name, dtype, shape in entries:
        if begin != pos:
            raise ValueError("%s: offsets not contiguous (%d != %d)" % (name, begin, pos))
        pos = end
        raw = bytearray(data[begin:end])
        t = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(shape)
    if pos != len(data):
        raise ValueError("data buffer has %d bytes, tensors cover %d" % (len(data), pos))
    return out, metadata, n


def make(d):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    sd = m.state_dict()
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd["t"] = torch.arange(6.0).reshape(2, 3).t()        # transposed view
    sd["slice"] = base[1:, ::2]                          # offset + strides
    sd["tied"] = sd["0.weight"]                          # shares a storage
    sd["half"] = torch.randn(3, 2).half()
    sd["bf"] = torch.randn(5).bfloat16()
    sd["ids"] = torch.tensor([[1, -2], [3, 2**40]], dtype=torch.int64)
    sd["mask"] = torch.tensor([True, False, True])
    sd["small"] = torch.tensor([-3, 7], dtype=torch.int8)
    sd["scalar"] = torch.tensor(2.5, dtype=torch.float64)
    sd["empty"] = torch.zeros(0, 3)
    torch.save(sd, d + "/model.pt")
    torch.save({"enc": {"w": torch.ones(2)}, "dec": {"w": torch.zeros(3), "b": torch.ones(1)}},
               d + "/nested.pt")
    torch.save({"model": {"w": torch.ones(2)}, "epoch": 3}, d + "/general.pt")
    torch.save({"values": torch.randn(7)}, d + "/vector.pt")
    torch.save({"a": torch.randn(5), "b": torch.randn(3)}, d + "/vectors.pt")  # f32raw dir=1
    torch.save(m, d + "/whole_model.pt")  # the module object itself (its classes pickled)


def check(orig_path, path):
    tensors, metadata, n = read_safetensors(path)
    if n % 8:
        raise ValueError("header length %d is not padded to a multiple of 8" % n)
    if metadata != {"format": "pt"}:
        raise ValueError("metadata %r" % (metadata,))
    orig = torch.load(orig_path)
    if list(tensors) != list(orig):
        raise ValueError("names %s != %s" % (list(tensors), list(orig)))
    for k, v in orig.items():
        t = tensors[k]
        if t.dtype != v.dtype or t.shape != v.shape or not torch.equal(t, v):
            raise ValueError("tensor %s differs" % k)
    print("independent reader: %d tensors match torch.load" % len(tensors))


def same_torch(a, b):
    x, y = torch.load(a), torch.load(b)
    if list(x) != list(y):
        raise ValueError("names %s != %s" % (list(x), list(y)))
    for k in x:
        if x[k].dtype != y[k].dtype or x[k].shape != y[k].shape or not torch.equal(x[k], y[k]):
            raise ValueError("tensor %s differs" % k)
    print("torch.load: %d tensors equal" % len(x))


def tensor_map(path):
    with open(path) as f:
        root = json.load(f)["root"]
    out = collections.OrderedDict()
    for k, v in root["dict"]:
        t = v["tensor"]
        out[k] = (t["dtype"], t["shape"], t["sha256"])
    return out


def same_json(a, b):
    x, y = tensor_map(a), tensor_map(b)
    if x != y:
        raise ValueError("inspect --json differs:\n%s\n%s" % (x, y))
    print("inspect --json: %d tensors bit-identical" % len(x))


def st_file(path, header, data, raw_header=None, pad=True):
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def malformed(d):
    f32 = lambda shape, b, e: {"dtype": "F32", "shape": shape, "data_offsets": [b, e]}
    cases = []

    def case(name, expect, *args, **kw):
        st_file(d + "/" + name, *args, **kw)
        cases.append((name, expect))

    with open(d + "/bad_short.safetensors", "wb") as f:
        f.write(b"\x02\x00\x00")
    cases.append(("bad_short.safetensors", "too short"))
    with open(d + "/bad_hdr_past_end.safetensors", "wb") as f:
        f.write(struct.pack("<Q", 1000) + b'{"a": 1}' + b"\0" * 12)
    cases.append(("bad_hdr_past_end.safetensors", "runs past the end of the file"))
    with open(d + "/bad_hdr_huge.safetensors", "wb") as f:
        f.write(struct.pack("<Q", 200_000_000) + b"{}" + b" " * 6)
    cases.append(("bad_hdr_huge.safetensors", "exceeds the limit"))
    case("bad_overlap.safetensors", "overlap tensor 'a'",
         {"a": f32([2], 0, 8), "b": f32([2], 4, 12)}, b"\0" * 12)
    case("bad_gap.safetensors", "leave a gap",
         {"a": f32([2], 0, 8), "b": f32([2], 12, 20)}, b"\0" * 20)
    case("bad_past_end.safetensors", "run past the end of the file",
         {"a": f32([2], 0, 8), "b": f32([2], 8, 16)}, b"\0" * 12)
    case("bad_trailing.safetensors", "after the last tensor",
         {"a": f32([2], 0, 8)}, b"\0" * 12)
    case("bad_json.safetensors", "not valid JSON", None, b"\0" * 8,
         raw_header=b'{"a": {"dtype": "F32",')
    case("bad_dtype.safetensors", "unknown dtype 'F33'",
         {"a": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8)
    case("bad_shape_size.safetensors", "needs 12 bytes but data_offsets span 8",
         {"a": f32([3], 0, 8)}, b"\0" * 8)
    case("bad_negative_dim.safetensors", "not a non-negative integer",
         {"a": f32([-2], 0, 8)}, b"\0" * 8)
    case("bad_duplicate.safetensors", "names 'a' twice", None, b"\0" * 8,
         raw_header=b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},'
                    b' "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}')
    case("bad_metadata.safetensors", "__metadata__ 'k' is not a string",
         {"__metadata__": {"k": 1}, "a": f32([2], 0, 8)}, b"\0" * 8)
    case("bad_not_object.safetensors", "does not start with '{'", None, b"",
         raw_header=b"[1, 2]")
    for name, expect in cases:
        print("%s\t%s" % (name, expect))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    try:
        {"make": make, "check": check, "same_torch": same_torch, "same_json": same_json,
         "malformed": malformed}[cmd](*args)
    except ValueError as e:
        print("FAIL: %s" % e, file=sys.stderr)
        sys.exit(1)
