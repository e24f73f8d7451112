"""Writes the inputs of numpy_test: checkpoints holding numpy scalars and arrays, saved by
the real torch.save of the interpreter that runs this (numpy 2 in the venv, numpy 1 in
Debian's /usr/bin/python3), and the JSON ckptio must print for each.

  make_numpy_cases.py DIR

DIR/good.<fmt>.pt   one object with every numeric dtype as scalar and array, big-endian and
                    Fortran-order arrays, 0-dim, empty and shared arrays, NaN/inf, next to a
                    torch tensor; fmt: zip (protocol 2), legacy, zip-p4, zip-p5
DIR/bad_<name>.pt   numpy values ckptio refuses (object, structured, datetime, strings, ...)
DIR/hostile_<name>.pt   hand-made array/scalar states that lie (sizes, shapes, dtypes)
DIR/manifest.json   {"numpy": version, "module": the module numpy's pickles name,
                     "good": [{"file", "ref" (encode.py's encoding of the value, numpy
                     values as the numbers and tensors they stand for), "storages"}],
                     "refused": [{"file", "expect": [fragments of the one-line error],
                     "allow_objects": bool}]}
"""
import collections
import hashlib
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import encode  # noqa: E402

TORCH_NAMES = {"b1": "bool", "i1": "int8", "i2": "int16", "i4": "int32", "i8": "int64",
               "u1": "uint8", "u2": "uint16", "u4": "uint32", "u8": "uint64",
               "f2": "float16", "f4": "float32", "f8": "float64",
               "c8": "complex64", "c16": "complex128"}
CODES = list(TORCH_NAMES)

# The functions numpy's own pickles call, whatever the module is named in this numpy.
RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]
SCALAR = np.float64(1).__reduce__()[0]


def code_of(dt):
    return dt.kind + str(dt.itemsize)


def ref(v):
    """encode.py's encoding of what ckptio must show for v: numpy scalars as the Python
    number .item() gives, arrays as tensors of their elements in C order, little-endian."""
    if isinstance(v, np.ndarray):
        a = np.array(v, order="C", copy=True).astype(v.dtype.newbyteorder("<"), order="C")
        return {"tensor": {"dtype": TORCH_NAMES[code_of(a.dtype)], "shape": list(a.shape),
                           "device": "cpu", "sha256": hashlib.sha256(a.tobytes()).hexdigest()}}
    if isinstance(v, np.generic):
        return encode.encode(v.item())
    if isinstance(v, dict):
        return {"dict": [[ref(k), ref(x)] for k, x in v.items()]}
    if isinstance(v, tuple):
        return {"tuple": [ref(x) for x in v]}
    if isinstance(v, list):
        return [ref(x) for x in v]
    return encode.encode(v)


def distinct_storages(v, seen=None):
    """How many storages ckptio should report: one per distinct array, one per torch
    storage."""
    seen = set() if seen is None else seen
    if isinstance(v, np.ndarray):
        seen.add(("np", id(v)))
    elif isinstance(v, torch.Tensor):
        storage = getattr(v, "untyped_storage", v.storage)()  # 1.13 has no untyped_storage
        seen.add(("torch", storage.data_ptr()))
    elif isinstance(v, dict):
        for x in v.values():
            distinct_storages(x, seen)
    elif isinstance(v, (list, tuple)):
        for x in v:
            distinct_storages(x, seen)
    return len(seen)


def good_object():
    rng = np.random.RandomState(0)
    d = collections.OrderedDict()
    scalar_values = {"b": True, "i": -5, "u": 200, "f": 0.1, "c": 1.5 - 2j}
    for code in CODES:
        d["s_" + code] = np.dtype(code).type(scalar_values[code[0]])
    d["s_u8_max"] = np.uint64(2**64 - 1)
    d["s_i8_min"] = np.int64(-(2**63))
    d["s_nan"] = np.float64("nan")
    d["s_neg_inf"] = np.float32("-inf")
    d["s_neg_zero"] = np.float64(-0.0)
    d["s_f2_subnormal"] = np.float16(6e-8)
    for code in CODES:
        x = rng.standard_normal((2, 3)) * 100
        if code == "b1":
            x = x > 0
        elif code[0] == "u":
            x = np.abs(x)
        elif code[0] == "c":
            x = x + 1j * rng.standard_normal((2, 3))
        a = x.astype(code)
        d["a_" + code] = a
        if a.dtype.itemsize > 1:
            d["be_" + code] = a.astype(a.dtype.newbyteorder(">"))
    d["f_f8"] = np.asfortranarray(rng.standard_normal((3, 4, 5)))
    d["f_be_i2"] = np.asfortranarray(np.arange(24, dtype=">i2").reshape(2, 3, 4))
    d["f_c16"] = np.asfortranarray((rng.standard_normal((2, 5)) + 1j).astype("c16"))
    d["slice"] = np.arange(24.0).reshape(4, 6)[:, ::2]  # not contiguous: pickled as C bytes
    d["zero_dim"] = np.array(2.5)
    d["empty"] = np.zeros((0, 4), dtype="f4")
    d["specials"] = np.array([np.nan, np.inf, -np.inf, -0.0], dtype="f4")
    shared = np.arange(3)
    d["shared"] = [shared, shared]
    d["history"] = {"loss": [np.float32(0.5), np.float32(0.25)], "acc": np.array([0.1, 0.2])}
    d["tensor"] = torch.arange(4)
    return d


class Reduced:
    """Pickles as reduce_value: how the hostile cases spell numpy's opcodes with lies."""

    def __init__(self, reduce_value):
        self.reduce_value = reduce_value

    def __reduce__(self):
        return self.reduce_value


def fake_dtype(name, state):
    return Reduced((np.dtype, (name, False, True), state))


def array_with_state(state):
    return Reduced((RECONSTRUCT, (np.ndarray, (0,), b"b"), state))


def main(argv):
    out = argv[0]
    os.makedirs(out, exist_ok=True)
    manifest = {"numpy": np.__version__, "torch": torch.__version__,
                "module": RECONSTRUCT.__module__, "good": [], "refused": []}

    good = good_object()
    want = ref(good)
    for fmt, kwargs in (("zip", {}), ("legacy", {"_use_new_zipfile_serialization": False}),
                        ("zip-p4", {"pickle_protocol": 4}), ("zip-p5", {"pickle_protocol": 5})):
        path = os.path.join(out, "good.%s.pt" % fmt)
        torch.save(good, path, **kwargs)
        manifest["good"].append({"file": path, "format": fmt, "ref": want,
                                 "storages": distinct_storages(good)})

    def refused(name, value, expect, allow_objects=False):
        path = os.path.join(out, name + ".pt")
        torch.save({"x": value}, path)
        manifest["refused"].append({"file": path, "expect": expect,
                                    "allow_objects": allow_objects})

    longdouble = code_of(np.dtype(np.longdouble))
    refused("bad_object", np.array([1, "a"], dtype=object),
            ["numpy.dtype('O8')", "object arrays"])
    refused("bad_structured", np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]),
            ["numpy.dtype('V8')", "void dtypes"])
    refused("bad_datetime", np.array(["2020-01-01"], dtype="M8[D]"),
            ["numpy.dtype('M8')", "datetime64"])
    refused("bad_timedelta_scalar", np.timedelta64(5, "s"), ["numpy.dtype('m8')", "datetime64"])
    refused("bad_unicode", np.array(["ab"]), ["numpy.dtype('U2')", "string dtypes"])
    refused("bad_bytes", np.array([b"abc"]), ["numpy.dtype('S3')", "string dtypes"])
    refused("bad_str_scalar", np.str_("ab"), ["numpy.dtype('U2')", "string dtypes"])
    if longdouble not in ("f8",):  # where longdouble is wider than double (x86-64: f16)
        refused("bad_longdouble", np.zeros(2, dtype=np.longdouble),
                ["numpy.dtype('%s')" % longdouble, "extended-precision"])
    refused("bad_metadata", np.zeros(2, dtype=np.dtype("f4", metadata={"unit": "m"})),
            ["numpy.dtype('f4')", "metadata"])
    refused("bad_matrix", np.matrix([[1.0, 2.0]]), ["numpy.matrix", "allow-list"])
    refused("bad_matrix_allowed", np.matrix([[1.0, 2.0]]),
            [RECONSTRUCT.__module__ + "._reconstruct", "subclass 'numpy.matrix'"], True)
    refused("bad_masked", np.ma.masked_array([1, 2], mask=[0, 1]),
            ["numpy.ma.core._mareconstruct", "allow-list"])

    f4, f8 = np.dtype("f4"), np.dtype("f8")
    setstate = "numpy.ndarray.__setstate__"
    hostile = {
        "short": (array_with_state((1, (2, 3), f4, False, b"\0" * 20)),
                  [setstate, "shape (2, 3) of f4 needs 24 bytes, the pickle holds 20"]),
        "long": (array_with_state((1, (2,), f4, False, b"\0" * 12)),
                 [setstate, "shape (2,) of f4 needs 8 bytes, the pickle holds 12"]),
        "negative_dim": (array_with_state((1, (-1, 3), f4, False, b"")),
                         [setstate, "negative dimension (-1)"]),
        "huge_shape": (array_with_state((1, (2**40, 2**40), f8, False, b"")),
                       [setstate, "too large (its element count or strides overflow)"]),
        "huge_dim": (array_with_state((1, (2**62,), f4, False, b"")),
                     [setstate, "dimension of 4611686018427387904, too large"]),
        "huge_bytes": (array_with_state((1, (2**31, 2**30), f4, False, b"")),
                       [setstate, "too large (its byte size overflows)"]),
        "bigint_dim": (array_with_state((1, (2**70,), f4, False, b"")),
                       [setstate, "too large for any array"]),
        "zero_but_huge": (array_with_state((1, (0, 2**40, 2**40), f4, False, b"")),
                          [setstate, "too large (its element count or strides overflow)"]),
        "version": (array_with_state((7, (1,), f4, False, b"\0" * 4)),
                    [setstate, "array state version 7"]),
        "list_data": (array_with_state((1, (1,), f4, False, [1.0])),
                      [setstate, "data is a list"]),
        "never_built": (Reduced((RECONSTRUCT, (np.ndarray, (0,), b"b"))),
                        ["_reconstruct", "never got its state"]),
        "scalar_size": (Reduced((SCALAR, (f8, b"abc"))),
                        [SCALAR.__module__ + ".scalar", "a f8 scalar needs 8 bytes"]),
        "custom_dtype": (array_with_state(
            (1, (1,), fake_dtype("f4", (3, "<", None, None, None, 8, 4, 0)), False, b"\0" * 4)),
            ["numpy.dtype('f4')", "custom dtype"]),
        "byteorder": (array_with_state(
            (1, (1,), fake_dtype("f4", (3, "|", None, None, None, -1, -1, 0)), False,
             b"\0" * 4)), ["numpy.dtype('f4')", "byte order '|'"]),
    }
    for name, (value, expect) in hostile.items():
        refused("hostile_" + name, value, expect)

    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
