"""safetensors cases for tests/interop/safetensors_test.cc, made and checked with the real
safetensors library (safetensors.torch) and torch of the tests' Python.

  make_safetensors_cases.py make OUT_DIR     writes the cases and OUT_DIR/manifest.json
  make_safetensors_cases.py check OUT_DIR    reads the files ckptio wrote (manifest's
                                             "convert" outputs) with load_file and
                                             safe_open; writes OUT_DIR/check.json

Exits 3 with "no safetensors module" on stderr where the library is not installed (Debian's
python3 with torch 1.13), which the test turns into a skip.

manifest.json:
  "read":    [{"file", "load_file": encoding, "safe_open": encoding}]  files from save_file;
             the encodings are encode.py's, in data order, with "__metadata__" last when the
             header has one (ckptio's documented mapping)
  "convert": [{"name", "pt", "out", "options", "refused": bool, "expect": [fragments],
               "want": encoding of load_file(reference file) or null, "ref": the reference
               file save_file wrote from the same state_dict, "bytes_identical": whether
               ckptio's output must equal it byte for byte (one metadata key: the reference
               orders several keys by its hash map)}]
  "hostile": [{"file", "expect": [fragments], "reference_refuses": bool}]
"""
import json
import os
import struct
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import safetensors
    import safetensors.torch as st
except ImportError as e:
    print("no safetensors module in %s (%s)" % (sys.executable, e), file=sys.stderr)
    sys.exit(3)
import warnings  # noqa: E402

import torch  # noqa: E402

warnings.filterwarnings("ignore", message="TypedStorage is deprecated")

import encode  # noqa: E402


def header_of(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n])


def data_order(path):
    """Tensor names sorted by data_offsets, header order among equal ranges."""
    h = header_of(path)
    names = [k for k in h if k != "__metadata__"]
    return sorted(names, key=lambda k: tuple(h[k]["data_offsets"])), h.get("__metadata__")


def encoding(tensors, order, metadata):
    items = [[k, encode.encode(tensors[k])] for k in order]
    if metadata is not None:
        items.append(["__metadata__", {"dict": [[k, v] for k, v in metadata.items()]}])
    return {"dict": items}


def read_refs(path):
    order, meta = data_order(path)
    loaded = st.load_file(path)
    assert list(loaded) == order or len(set(tuple(header_of(path)[k]["data_offsets"])
                                            for k in order)) < len(order), (list(loaded), order)
    with safetensors.safe_open(path, "pt") as f:
        opened = {k: f.get_tensor(k) for k in f.keys()}
        opened_meta = f.metadata()
    assert (opened_meta or None) == (meta or None), (opened_meta, meta)
    return encoding(loaded, order, meta), encoding(opened, order, opened_meta if meta is not None else None)


def random_tensor(dtype, shape, gen):
    n = 1
    for d in shape:
        n *= d
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=gen).bool()
    size = torch.empty(0, dtype=dtype).element_size()
    raw = torch.randint(0, 256, (n * size,), dtype=torch.uint8, generator=gen)
    return raw.view(dtype).reshape(shape)


def writable_dtypes():
    """Every dtype save_file writes with this torch (its _SIZE table, probed)."""
    out = []
    for dt in st._SIZE:
        if dt is None:
            continue
        try:
            st.save({"x": torch.zeros(2, dtype=dt)})
            out.append(dt)
        except Exception:
            pass
    return out


def make_read_cases(d, gen):
    cases = []
    dtypes = writable_dtypes()
    every = {}
    for dt in dtypes:
        name = encode.dtype_name(dt)
        every[name] = random_tensor(dt, (2, 4), gen)
        every[name + ".empty"] = torch.empty((0, 4), dtype=dt)
        if dt != torch.float4_e2m1fn_x2 if hasattr(torch, "float4_e2m1fn_x2") else True:
            every[name + ".scalar"] = random_tensor(dt, (), gen)
    every["f32.3d"] = random_tensor(torch.float32, (2, 3, 5), gen)
    every["f32.empty_mid"] = torch.empty((2, 0, 5))
    meta = {"format": "pt", "note": "h\u00e9llo \u2713", "empty": ""}
    files = {
        "dtypes.safetensors": (every, meta),
        "no_metadata.safetensors": ({"w": random_tensor(torch.float32, (3, 3), gen),
                                     "b": random_tensor(torch.float16, (3,), gen)}, None),
        "zero_sized.safetensors": ({"s": torch.tensor(2.5), "e": torch.empty(0),
                                    "e2": torch.empty((3, 0), dtype=torch.int64)},
                                   {"format": "pt"}),
        "nothing.safetensors": ({}, None),
    }
    for fname, (tensors, md) in files.items():
        path = os.path.join(d, fname)
        st.save_file(tensors, path, metadata=md)
        lf, so = read_refs(path)
        cases.append({"file": path, "load_file": lf, "safe_open": so,
                      "dtypes": sorted({encode.dtype_name(t.dtype) for t in tensors.values()})})
    # Written by hand: what the reference reads although its writer never writes it.
    t = '"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":[1]}'
    lenient = {
        "lenient_blanks": "  \n{" + t + "}\n\t",
        "lenient_null_metadata": '{"__metadata__":null,' + t + "}",
        "lenient_metadata_repeats": '{"__metadata__":{"k":"v","j":"x","k":"w"},' + t + "}",
        "lenient_unpadded": "{" + t + "}",
    }
    for name, header in lenient.items():
        path = os.path.join(d, name + ".safetensors")
        h = header.encode()
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + struct.pack("<f", 1.5))
        lf, so = read_refs(path)
        cases.append({"file": path, "load_file": lf, "safe_open": so, "dtypes": ["float32"]})
    return cases, [encode.dtype_name(dt) for dt in dtypes]


def flatten(obj, prefix=""):
    out = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out.update(flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def reference_save(flat, path, dedup, extra_meta):
    """What safetensors.torch writes for the flattened state_dict: save_file, or with dedup
    save_model's _remove_duplicate_names + force_contiguous. Returns the metadata, or raises
    as the reference does."""
    flat = dict(flat)
    meta = {"format": "pt"}
    meta.update(extra_meta)
    if dedup:
        for kept, removed in st._remove_duplicate_names(flat).items():
            for r in removed:
                meta.setdefault(r, kept)
                del flat[r]
        flat = {k: v.contiguous() for k, v in flat.items()}
    else:
        st._evaluate_tensors_for_save(flat)  # refuses shared tensors as save_file does
        flat = {k: v.contiguous() for k, v in flat.items()}  # ckptio gathers strided views
    st.save_file(flat, path, metadata=meta)
    return meta


def make_convert_cases(d, gen):
    dtypes = writable_dtypes()
    plain = {encode.dtype_name(dt): random_tensor(dt, (3, 4), gen) for dt in dtypes}
    plain["scalar"] = torch.tensor(-1.25, dtype=torch.float64)
    plain["empty"] = torch.empty((0, 7), dtype=torch.int32)
    plain["transposed"] = random_tensor(torch.float32, (4, 6), gen).t()  # strided, whole storage
    plain["slice"] = torch.arange(10, dtype=torch.int16)[2:5]  # part of a storage, alone
    plain["every_other"] = torch.arange(12, dtype=torch.int64).reshape(3, 4)[:, ::2]
    w = random_tensor(torch.float32, (3, 4), gen)
    s = torch.arange(8, dtype=torch.float32)
    cases = {
        "plain": {k: plain[k] for k in plain if k not in ("slice", "every_other")},
        "views": {"slice": plain["slice"], "every_other": plain["every_other"],
                  "t": plain["transposed"]},
        "nested": {"enc": {"w": w.clone(), "inner": {"b": torch.ones(2)}}, "dec": {"b": torch.zeros(1)}},
        "tied": {"a": w, "b": w, "c": w[0], "d": torch.ones(3, dtype=torch.bfloat16),
                 "e": torch.empty(0)},
        "slices": {"lo": s[:4], "hi": s[4:]},
        "general": {"epoch": 3, "model": {"w": w.clone()}},
    }
    runs = [("plain", [], False), ("plain", ["meta.note=hi", "meta.format=custom"], False),
            ("views", [], False), ("nested", [], False), ("tied", [], False),
            ("tied", ["dedup=1"], True), ("slices", [], False), ("slices", ["dedup=1"], True),
            ("general", [], False), ("plain", ["dedup=1"], True)]
    out = []
    for name, options, dedup in runs:
        pt = os.path.join(d, name + ".pt")
        if not os.path.exists(pt):
            torch.save(cases[name], pt)
        tag = name + "".join("." + o.replace("=", "-") for o in options)
        case = {"name": tag, "pt": pt, "out": os.path.join(d, tag + ".ckptio.safetensors"),
                "ref": os.path.join(d, tag + ".ref.safetensors"), "options": options,
                "refused": False, "expect": [], "want": None, "bytes_identical": False}
        extra = {o[5:].split("=")[0]: o.split("=", 1)[1] for o in options if o.startswith("meta.")}
        if name == "general":
            case.update(refused=True, expect=["'epoch' is an int", "not a tensor"])
        else:
            try:
                meta = reference_save(flatten(cases[name]), case["ref"], dedup, extra)
                lf, _ = read_refs(case["ref"])
                case.update(want=lf, bytes_identical=len(meta) == 1)
            except RuntimeError as e:  # the reference refuses: so must ckptio
                print("%s: the reference refuses: %s" % (tag, str(e).split("\n")[0][:100]))
                case["refused"] = True
                case["expect"] = {"tied": ["'a', 'b', 'c'", "share memory", "dedup=1"],
                                  "slices": ["'lo'", "covers only part of its storage"]}[name]
        out.append(case)
    return out


def hostile_file(path, header, data=b"", length=None, raw_header=None):
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    n = len(h) if length is None else length
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", n) + h + data)


def reference_refuses(path):
    try:
        st.load_file(path)
        with safetensors.safe_open(path, "pt") as f:
            for k in f.keys():
                f.get_tensor(k)
        return False
    except Exception:
        return True


def make_hostile_cases(d):
    f32 = lambda b, e, shape=(1,): {"dtype": "F32", "shape": list(shape), "data_offsets": [b, e]}  # noqa: E731
    cases = [
        ("lying_length", {"a": f32(0, 4)}, b"\0" * 4, 10**6, None, ["runs past the end of the file"]),
        ("header_over_limit", {"a": f32(0, 4)}, b"\0" * 4, 100_000_001, None, ["exceeds the limit of 100000000"]),
        ("overlap", {"a": f32(0, 8, (2,)), "b": f32(4, 8)}, b"\0" * 8, None, None, ["tensor 'b'", "overlap tensor 'a'"]),
        ("gap", {"a": f32(0, 4), "b": f32(8, 12)}, b"\0" * 12, None, None, ["tensor 'b'", "leave a gap"]),
        ("trailing", {"a": f32(0, 4)}, b"\0" * 8, None, None, ["4 trailing bytes"]),
        ("past_end", {"a": f32(0, 8, (2,))}, b"\0" * 4, None, None, ["tensor 'a'", "run past the end"]),
        ("not_first_at_zero", {"a": f32(4, 8)}, b"\0" * 8, None, None, ["tensor 'a'", "leave a gap"]),
        ("wrong_size", {"a": f32(0, 8, (3,))}, b"\0" * 8, None, None, ["tensor 'a'", "needs 12 bytes"]),
        ("end_before_begin", {"a": f32(4, 0)}, b"\0" * 4, None, None, ["tensor 'a'", "end before they begin"]),
        ("unknown_dtype", {"a": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, None, None,
         ["tensor 'a'", "unknown dtype 'F33'"]),
        ("f6_dtype", {"a": {"dtype": "F6_E2M3", "shape": [4], "data_offsets": [0, 3]}}, b"\0" * 3, None, None,
         ["tensor 'a'", "F6_E2M3", "no torch or ckptio equivalent"]),
        ("f4_odd_last_dim", {"a": {"dtype": "F4", "shape": [2, 3], "data_offsets": [0, 3]}}, b"\0" * 3, None, None,
         ["tensor 'a'", "F4", "must be even"]),
        ("f4_half_byte", {"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, b"\0" * 2, None, None,
         ["tensor 'a'", "whole number of bytes"]),
        ("negative_dim", {"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, None, None,
         ["tensor 'a'", "not a non-negative integer"]),
        ("huge_shape", {"a": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 4]}}, b"\0" * 4, None,
         None, ["tensor 'a'", "overflows"]),
        ("metadata_not_str", {"__metadata__": {"k": 1}}, b"", None, None, ["__metadata__ 'k' is not a string"]),
        ("missing_field", {"a": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, None, None, ["tensor 'a' has no data_offsets"]),
        ("array_json", None, b"", None, b"[1, 2]  ", ["not a JSON object", "starts with '['"]),
        ("string_json", None, b"", None, b'"abc"   ', ["not a JSON object", "starts with '\"'"]),
        ("blank_json", None, b"", None, b"        ", ["not a JSON object", "blank"]),
        ("metadata_list", {"__metadata__": ["a"]}, b"", None, None, ["__metadata__ is not an object"]),
        ("tensor_not_object", {"a": [1]}, b"", None, None, ["tensor 'a' is not a JSON object"]),
        ("bad_json", None, b"", None, b'{"a": }', ["not valid JSON"]),
        ("bad_utf8", None, b"", None, b'{"\xff": {}}', ["not valid JSON"]),
        ("duplicate_names", None, b"\0" * 8, None,
         b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
         b'"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', ["names 'a' twice"]),
        ("duplicate_field", None, b"\0" * 4, None,
         b'{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', ["names 'dtype' twice"]),
        ("short_file", None, None, None, None, ["too short"]),
        ("deep_json", None, b"", None, b'{"a":' + b"[" * 100000 + b"]" * 100000 + b"}", ["tensor 'a'"]),
    ]
    out = []
    for name, header, data, length, raw, expect in cases:
        path = os.path.join(d, "bad_" + name + ".safetensors")
        if name == "short_file":
            with open(path, "wb") as f:
                f.write(b"\x02\0\0\0")
        else:
            hostile_file(path, header, data, length, raw)
        out.append({"file": path, "expect": expect, "reference_refuses": reference_refuses(path)})
    return out


def make(d):
    os.makedirs(d, exist_ok=True)
    gen = torch.Generator().manual_seed(7)
    read, dtypes = make_read_cases(d, gen)
    manifest = {"safetensors": safetensors.__version__, "torch": torch.__version__,
                "dtypes": sorted(dtypes), "read": read, "convert": make_convert_cases(d, gen),
                "hostile": make_hostile_cases(d)}
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(manifest, f)


def check(d):
    with open(os.path.join(d, "manifest.json")) as f:
        manifest = json.load(f)
    results = {}
    for c in manifest["convert"]:
        r = {"error": None, "load_file": None, "safe_open": None, "identical": None}
        if not c["refused"] and os.path.exists(c["out"]):
            try:
                r["load_file"], r["safe_open"] = read_refs(c["out"])
                with open(c["out"], "rb") as a, open(c["ref"], "rb") as b:
                    r["identical"] = a.read() == b.read()
            except Exception:
                r["error"] = traceback.format_exc(limit=3)
        results[c["name"]] = r
    with open(os.path.join(d, "check.json"), "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    {"make": make, "check": check}[sys.argv[1]](sys.argv[2])
