"""Reference encoder for the JSON contract of `ckptio inspect FILE --json`.

encode(obj) turns what torch.load returned into the same JSON value ckptio prints for the
file's root, except for the extra keys ckptio adds inside tensor objects (strides,
storage_offset, storage, requires_grad, parameter, is_storage), which compare() ignores.

The device of a tensor is the *saved* location tag, which torch.load does not keep once it
has mapped the storage to the CPU; load() records it through a map_location callable.

Usage:
  encode.py compare CKPTIO_JSON FILE   exit 0 when ckptio's JSON matches FILE, else print diffs
  encode.py print FILE                 print the reference encoding of FILE
"""
import base64
import collections
import hashlib
import json
import math
import sys

import torch

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Keys of a tensor object that belong to the contract; ckptio may add others.
TENSOR_KEYS = ("dtype", "shape", "device", "sha256")


class Locations:
    """Saved location tags of the storages torch.load created, by address range."""

    def __init__(self):
        self.ranges = []  # (data_ptr, nbytes, location)

    def __call__(self, storage, location):
        self.ranges.append((storage.data_ptr(), storage.nbytes(), location))
        return storage  # keep it on the CPU whatever the tag says

    def base_of(self, data_ptr):
        """Address of the storage torch.load allocated that holds data_ptr."""
        for ptr, n, _ in self.ranges:
            if ptr != 0 and ptr <= data_ptr < ptr + max(n, 1):
                return ptr
        return data_ptr

    def of(self, data_ptr):
        for ptr, n, loc in self.ranges:
            if ptr != 0 and ptr <= data_ptr < ptr + max(n, 1):
                return loc
        # A zero-size storage has no address; every case that has one is saved from the CPU
        # unless all storages share one tag.
        tags = {loc for _, _, loc in self.ranges}
        return tags.pop() if len(tags) == 1 else "cpu"


def load(path):
    """torch.load(path) on the CPU, plus the saved location of each storage. Every object the
    file names is built (these are files the tests made or vetted): weights_only=False is
    spelled out because torch 2.6 made True the default."""
    locs = Locations()
    obj = torch.load(path, map_location=locs, weights_only=False)
    return obj, locs


def weights_only_error(path):
    """None when torch.load(path, weights_only=True) (the default since torch 2.6) reads the
    file, else the last line of its error."""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
        return None
    except Exception as e:  # the caller compares it with torch's own file
        text = " ".join(str(e).split())
        # torch's message starts with advice; the reason follows "WeightsUnpickler error:".
        reason = text.split("WeightsUnpickler error:")[-1].strip()
        return "%s: %s" % (type(e).__name__, reason[:300])


# dtypes numpy takes as they are; every other one (bfloat16, float8_*, uint16/32/64,
# complex32, bits*, uint1..7, ...) is viewed as the integer dtype of its element size: the
# same bytes. The view comes before contiguous(): torch has no copy kernel for some of them
# (uint4, bits16), so a strided view of one can only be gathered as integers.
_NUMPY_DTYPES = {torch.float64, torch.float32, torch.float16, torch.int64, torch.int32,
                 torch.int16, torch.int8, torch.uint8, torch.bool, torch.complex64,
                 torch.complex128}
_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def element_bytes(t):
    """The tensor's elements in row-major order, each in its dtype's little-endian form."""
    t = t.detach()
    if t.dtype not in _NUMPY_DTYPES:
        t = t.view(_INT_OF_SIZE[t.element_size()])
    t = t.contiguous().reshape(-1)
    try:
        return t.numpy().tobytes()  # bool is one byte, complex is (real, imag) pairs
    except RuntimeError:  # a torch without numpy (pip's 2.x does not require it): slower
        return bytes(t.view(torch.uint8).tolist()) if t.numel() else b""


def dtype_name(dtype):
    return str(dtype)[len("torch."):]


def encode_tensor(t, locs):
    return {"tensor": {
        "dtype": dtype_name(t.dtype),
        "shape": list(t.shape),
        "device": locs.of(t.storage().data_ptr()),
        "sha256": hashlib.sha256(element_bytes(t)).hexdigest(),
    }}


def encode_storage(s, locs):
    # A bare storage is reported as the 1-D tensor of its elements.
    return encode_tensor(torch.empty(0, dtype=s.dtype).set_(s), locs)


def encode(v, locs=None, depth=0):
    locs = locs or Locations()
    if depth > 10000:
        raise ValueError("nested too deeply")
    d = depth + 1
    if v is None or isinstance(v, bool) or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v if INT64_MIN <= v <= INT64_MAX else {"int": str(v)}
    if isinstance(v, float):
        if math.isnan(v):
            return {"float": "nan"}
        if math.isinf(v):
            return {"float": "inf" if v > 0 else "-inf"}
        return v
    if isinstance(v, bytes):
        return {"bytes": base64.b64encode(v).decode("ascii")}
    if isinstance(v, torch.Tensor):  # includes nn.Parameter
        return encode_tensor(v, locs)
    if isinstance(v, torch.storage.TypedStorage):
        return encode_storage(v, locs)
    if isinstance(v, torch.dtype):
        return {"global": str(v)}
    if isinstance(v, torch.device):
        # Python pickles a device as torch.device(*v.__reduce__()[1]): ('cuda', 1) / ('cpu',)
        return {"object": "torch.device", "args": {"tuple": [encode(a, locs, d)
                                                             for a in v.__reduce__()[1]]}}
    if isinstance(v, torch.Size):
        return {"tuple": [encode(x, locs, d) for x in v]}
    if isinstance(v, collections.Counter):
        return {"object": "collections.Counter", "args": {"tuple": [
            {"dict": [[encode(k, locs, d), encode(x, locs, d)] for k, x in v.items()]}]}}
    if isinstance(v, dict):  # dict and OrderedDict alike; attributes (_metadata) are not shown
        return {"dict": [[encode(k, locs, d), encode(x, locs, d)] for k, x in v.items()]}
    if isinstance(v, tuple):
        return {"tuple": [encode(x, locs, d) for x in v]}
    if isinstance(v, list):
        return [encode(x, locs, d) for x in v]
    if isinstance(v, (set, frozenset)):
        name = "builtins.set" if isinstance(v, set) else "builtins.frozenset"
        return {"object": name, "args": {"tuple": [[encode(x, locs, d) for x in v]]}}
    if isinstance(v, complex):
        return {"object": "builtins.complex",
                "args": {"tuple": [encode(v.real, locs, d), encode(v.imag, locs, d)]}}
    if isinstance(v, bytearray):
        return {"object": "builtins.bytearray", "args": {"tuple": [encode(bytes(v), locs, d)]}}
    raise TypeError("no encoding for %s" % type(v).__name__)


def tensors_in_order(v, out=None):
    """Every tensor (and bare storage) reachable from v, depth-first in encoding order,
    repeats included."""
    out = [] if out is None else out
    if isinstance(v, (torch.Tensor, torch.storage.TypedStorage)):
        out.append(v)
    elif isinstance(v, dict):
        for k, x in v.items():
            tensors_in_order(k, out)
            tensors_in_order(x, out)
    elif isinstance(v, (list, tuple)):
        for x in v:
            tensors_in_order(x, out)
    return out


def ties(v):
    """Which tensors share a storage: per tensor in tensors_in_order, the index of the first
    tensor with the same storage (-1 for storages without bytes, whose identity Python does
    not expose)."""
    first = {}
    out = []
    for i, t in enumerate(tensors_in_order(v)):
        ptr = t.data_ptr() if isinstance(t, torch.storage.TypedStorage) else \
            t.storage().data_ptr()
        out.append(-1 if ptr == 0 else first.setdefault(ptr, i))
    return out


def tensor_facts(v, locs):
    """What the JSON contract leaves out but a converted file must keep, per tensor in
    tensors_in_order: [kind ("tensor", "parameter" or "storage"), requires_grad, strides,
    storage_offset]. ckptio reports the same as its extra tensor keys. A bare storage that is
    a window into a bigger one (legacy view_metadata) has the window's offset."""
    out = []
    for t in tensors_in_order(v):
        if isinstance(t, torch.storage.TypedStorage):
            offset = (t.data_ptr() - locs.base_of(t.data_ptr())) // t.element_size()
            out.append(["storage", False, [1], offset])
        else:
            kind = "parameter" if isinstance(t, torch.nn.Parameter) else "tensor"
            out.append([kind, t.requires_grad, list(t.stride()), t.storage_offset()])
    return out


def _same_float(a, b):
    return a == b and math.copysign(1, a) == math.copysign(1, b)


def compare(got, want, path="root"):
    """Differences between ckptio's JSON value `got` and the reference `want`, strict about
    types (1 is not 1.0 nor true); extra keys inside ckptio's tensor objects are ignored."""
    def kind(x):
        if isinstance(x, bool) or x is None or isinstance(x, str):
            return type(x).__name__
        if isinstance(x, int):
            return "int"
        return type(x).__name__

    if kind(got) != kind(want):
        return ["%s: got %s, want %s" % (path, json.dumps(got)[:200], json.dumps(want)[:200])]
    if isinstance(want, float):
        return [] if _same_float(got, want) else ["%s: got %r, want %r" % (path, got, want)]
    if isinstance(want, list):
        if len(got) != len(want):
            return ["%s: length %d, want %d" % (path, len(got), len(want))]
        diffs = []
        for i, (g, w) in enumerate(zip(got, want)):
            diffs += compare(g, w, "%s[%d]" % (path, i))
        return diffs
    if isinstance(want, dict):
        if "tensor" in want and len(want) == 1 and set(got) == {"tensor"}:
            got = {"tensor": {k: v for k, v in got["tensor"].items() if k in TENSOR_KEYS}}
        if sorted(got) != sorted(want):
            return ["%s: keys %s, want %s" % (path, sorted(got), sorted(want))]
        diffs = []
        for k in want:
            diffs += compare(got[k], want[k], "%s.%s" % (path, k))
        return diffs
    return [] if got == want else ["%s: got %r, want %r" % (path, got, want)]


def encode_file(path):
    obj, locs = load(path)
    return encode(obj, locs)


def main(argv):
    if len(argv) == 3 and argv[0] == "compare":
        with open(argv[1], encoding="utf-8") as f:
            got = json.load(f)["root"]
        diffs = compare(got, encode_file(argv[2]))
        for line in diffs[:50]:
            print(line)
        return 1 if diffs else 0
    if len(argv) == 2 and argv[0] == "print":
        print(json.dumps(encode_file(argv[1]), indent=1))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
