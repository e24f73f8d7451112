"""Writes the torch 2.x interop checkpoints with the real torch.save: one file per save option
the running torch offers, and one per dtype it has, plus the reference of what torch.load
reads back from each.

  make_torch2_cases.py DIR     DIR/NAME.pt, DIR/NAME.ref.json for every case, DIR/cases.json
  make_torch2_cases.py --list  print the names of the option cases (torch2_test.cc has them)

cases.json: {"torch": version, "options": [NAME, ...] (the fixed option cases),
"dtypes": [NAME, ...] (one "dtype_<name>" per dtype this torch has, found at run time)}.

A ref.json is one of
  {"skip": why}                   this torch cannot make the case (1.13 lacks the option)
  {"refuse": text, "why": ...}    ckptio must refuse the file in one line containing text
  {"root", "ties", "facts", "storages", "weights_only", "zip"}: what torch.load (weights_only
                                  False) read, as encode.py and check_torch2_outputs.py encode
                                  it; "zip" holds the records, data offsets and alignment
plus "crafted": true for a file torch.save refuses to write but torch.load reads (the
uint1..7 / int1..7 shell dtypes: a float8 file whose dtype GLOBAL was renamed).
"""
import collections
import contextlib
import inspect
import io
import json
import os
import sys
import zipfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_torch2_outputs as check  # noqa: E402
import case_args  # noqa: E402
import encode  # noqa: E402

OPTION_CASES = collections.OrderedDict()


def option_case(fn):
    OPTION_CASES[fn.__name__] = fn
    return fn


class Skip(Exception):
    """This torch cannot make the case; the message says why."""


def sample():
    """A small checkpoint with what a writer can get wrong: views, a tie, an empty storage, a
    zero-dim tensor, 11 storages (record order 0,1,...,10,11 vs 0,1,10,11,2,...)."""
    g = torch.Generator().manual_seed(7)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    out = collections.OrderedDict()
    out["base"] = base
    out["rows"] = base[1:3]
    out["t"] = base.t()
    out["tied"] = base
    out["i64"] = torch.arange(5)
    out["empty"] = torch.empty(0)
    out["scalar"] = torch.tensor(2.5, dtype=torch.float64)
    out["bf16"] = torch.randn(3, generator=g).to(torch.bfloat16)
    out["c64"] = torch.tensor([1 + 2j, -3j], dtype=torch.complex64)
    out["list"] = [torch.full((i + 1,), float(i)) for i in range(5)]
    return out


def config():
    try:
        from torch.utils.serialization import config as c
    except ImportError:
        raise Skip("torch %s has no torch.utils.serialization.config" % torch.__version__)
    return c


@contextlib.contextmanager
def alignment(n):
    c = config()
    if not hasattr(c.save, "storage_alignment"):
        raise Skip("torch %s has no config.save.storage_alignment" % torch.__version__)
    old = c.save.storage_alignment
    c.save.storage_alignment = n
    try:
        yield
    finally:
        c.save.storage_alignment = old


def save_aligned(n):
    def save(path):
        with alignment(n):
            torch.save(sample(), path)
    return save


# config.save.storage_alignment: 64 by default; torch takes any positive number, a
# non-power of two too. Past 32768 the padding may not fit miniz's 16-bit extra field.
for _n in (1, 3, 8, 4096, 32768, 65536):
    OPTION_CASES["align_%d" % _n] = save_aligned(_n)


@option_case
def default_2x(path):
    torch.save(sample(), path)


@option_case
def no_crc32(path):
    if not hasattr(torch.serialization, "set_crc32_options"):
        raise Skip("torch %s has no set_crc32_options" % torch.__version__)
    torch.serialization.set_crc32_options(False)
    try:
        torch.save(sample(), path)
    finally:
        torch.serialization.set_crc32_options(True)


@option_case
def pinned_d2h(path):
    # Only changes how accelerator storages reach the CPU; here it must change nothing.
    c = config()
    if not hasattr(c.save, "use_pinned_memory_for_d2h"):
        raise Skip("torch %s has no config.save.use_pinned_memory_for_d2h" % torch.__version__)
    c.save.use_pinned_memory_for_d2h = True
    try:
        torch.save(sample(), path)
    finally:
        c.save.use_pinned_memory_for_d2h = False


@option_case
def no_byteorder_flag(path):
    # 2.x's _disable_byteorder_record: Python skips the record, and the C++ writer then
    # appends it at the end of the archive (2.13), so the file is still marked.
    if "_disable_byteorder_record" not in inspect.signature(torch.save).parameters:
        raise Skip("torch %s's torch.save has no _disable_byteorder_record" % torch.__version__)
    torch.save(sample(), path, _disable_byteorder_record=True)


@option_case
def byteorder_big(path):
    # What a big-endian host writes, as a little-endian one reads it: torch.save records
    # sys.byteorder and stores native bytes, so pretending to be big-endian gives a file that
    # torch.load byte-swaps (except the _rebuild_tensor_v3 dtypes, loaded as bytes).
    obj = sample()
    extra = {"complex32": lambda: torch.tensor([1 + 2j, 3], dtype=torch.complex32)}
    for name in ("uint16", "complex32", "float8_e4m3fn", "uint64"):
        if not hasattr(torch, name):
            continue
        make = extra.get(name, lambda n=name: torch.arange(4.0).to(getattr(torch, n)))
        try:
            torch.save(make(), io.BytesIO())  # 1.13 has complex32 but cannot save it
        except Exception:
            continue
        obj[name] = make()
    real = sys.byteorder
    sys.byteorder = "big"
    try:
        torch.save(obj, path)
    finally:
        sys.byteorder = real
    with zipfile.ZipFile(path) as z:
        if not any(n.endswith("/byteorder") for n in z.namelist()):
            raise Skip("torch %s writes no byteorder record (and never swaps)" %
                       torch.__version__)


@option_case
def legacy_format(path):
    torch.save(sample(), path, _use_new_zipfile_serialization=False)


def save_protocol(p):
    def save(path):
        torch.save(sample(), path, pickle_protocol=p)
    return save


for _p in (1, 3, 5):
    OPTION_CASES["protocol_%d" % _p] = save_protocol(_p)


@option_case
def protocol_0(path):
    # torch.save takes protocol 0, but its text persistent ids are strings: torch.load
    # refuses its own file, and ckptio must too.
    torch.save(sample(), path, pickle_protocol=0)
    return {"refuse": "persistent id", "why": "protocol 0 persistent ids are strings"}


@option_case
def bytesio(path):
    # A buffer has no name: the archive prefix is "archive".
    buf = io.BytesIO()
    torch.save(sample(), buf)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


@option_case
def non_ascii_name(path):
    # 2.x writes a non-ASCII path through a Python stream: prefix "archive" again.
    odd = os.path.join(os.path.dirname(path), "модель_ü.pt")
    torch.save(sample(), odd)
    os.replace(odd, path)


@option_case
def unknown_dtype(path):
    # A dtype newer than ckptio (a float8 file whose dtype GLOBAL names one that does not
    # exist): ckptio refuses it by name rather than guess its element size.
    if not hasattr(torch, "float8_e5m2"):
        raise Skip("torch %s has no float8_e5m2 to rename" % torch.__version__)
    craft(path, {"t": torch.zeros(4, dtype=torch.float8_e5m2)}, torch.float8_e5m2,
          "float6_e3m2fn")
    return {"refuse": "torch.float6_e3m2fn", "why": "no such dtype"}


def craft(path, obj, saved_dtype, new_name):
    """torch.save(obj) with every GLOBAL torch.<saved_dtype> renamed torch.<new_name>
    (protocol 2 writes GLOBAL as text lines, so the length may change), re-zipped stored."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    old = b"ctorch\n" + encode.dtype_name(saved_dtype).encode() + b"\n"
    new = b"ctorch\n" + new_name.encode() + b"\n"
    zin = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            # The stand-in's offsets no longer hold once re-zipped unaligned: drop the record
            # that tells torch.load it may predict them.
            if info.filename.endswith("/.format_version"):
                continue
            data = zin.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                if old not in data:
                    raise AssertionError("no GLOBAL %r in %s" % (old, info.filename))
                data = data.replace(old, new)
            zout.writestr(info.filename, data)


# ---- dtypes -------------------------------------------------------------------------------

def all_dtypes():
    """Every torch.dtype this torch has, once each by its canonical name."""
    found = {}
    for name in dir(torch):
        d = getattr(torch, name, None)
        if isinstance(d, torch.dtype):
            found[encode.dtype_name(d)] = d
    return [found[n] for n in sorted(found)]


def dtype_object(dtype):
    """A 4x3 tensor of random bytes viewed as dtype, with views and a second storage."""
    g = torch.Generator().manual_seed(sum(map(ord, str(dtype))))
    size = torch.empty(0, dtype=dtype).element_size()
    if dtype == torch.bool:
        t = torch.randint(0, 2, (4, 3), generator=g, dtype=torch.uint8).bool()
        other = torch.randint(0, 2, (5,), generator=g, dtype=torch.uint8).bool()
    else:
        t = torch.randint(0, 256, (4, 3 * size), generator=g, dtype=torch.uint8).view(dtype)
        other = torch.randint(0, 256, (5 * size,), generator=g, dtype=torch.uint8).view(dtype)
    return {"t": t, "t_T": t.t(), "row": t[2], "other": other}


def make_dtype_case(dtype, path):
    if str(dtype).startswith("torch.q"):  # qint8, quint8, qint32, quint4x2, quint2x4
        try:
            q = torch.quantize_per_tensor(torch.linspace(-1, 1, 6), 0.1, 2, dtype)
            torch.save({"q": q}, path)
        except Exception as e:
            raise Skip("torch cannot save a %s tensor: %s" % (dtype, e))
        return {"refuse": "quantized tensors", "why": "ckptio reads no _rebuild_qtensor"}
    try:
        obj = dtype_object(dtype)
    except Exception as e:
        raise Skip("torch cannot make a %s tensor from bytes: %s" % (dtype, e))
    try:
        torch.save(obj, path)
        return None
    except Exception as e:
        saved_error = "%s: %s" % (type(e).__name__, e)
    # torch.save refuses the shell dtypes (uint1..7, int1..7) that torch.load accepts.
    stand_in = getattr(torch, "float8_e5m2", None)
    if stand_in is None or torch.empty(0, dtype=dtype).element_size() != 1:
        raise Skip("torch.save refuses %s (%s) and there is no stand-in to rename" %
                   (dtype, saved_error))
    craft(path, {k: v.view(stand_in) for k, v in obj.items()}, stand_in,
          encode.dtype_name(dtype))
    return {"crafted": True}


# ---- driver -------------------------------------------------------------------------------

def reference(path):
    """What torch reads of its own file, the same way check_torch2_outputs.py reads ours."""
    ref = check.check(path)
    if ref["error"]:
        raise Skip("torch.load of torch's own file: " + ref["error"].strip().splitlines()[-1])
    return ref


def write_case(out, name, make):
    path = os.path.join(out, name + ".pt")
    try:
        extra = make(path) or {}
    except Skip as e:
        ref = {"skip": str(e)}
    except Exception as e:  # this torch's torch.save refuses the option (1.13: protocol 0)
        ref = {"skip": "torch.save: %s: %s" % (type(e).__name__, e)}
    else:
        if "refuse" in extra:
            ref = extra
        else:
            try:
                ref = reference(path)
                ref.update(extra)
            except Skip as e:
                ref = {"skip": str(e)}
    with open(os.path.join(out, name + ".ref.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f)


def main(argv):
    out = case_args.output_dir(argv, __doc__, OPTION_CASES)
    for name, fn in OPTION_CASES.items():
        write_case(out, name, fn)
    dtypes = []
    for dtype in all_dtypes():
        name = "dtype_" + encode.dtype_name(dtype)
        dtypes.append(name)
        write_case(out, name, lambda path, d=dtype: make_dtype_case(d, path))
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump({"torch": torch.__version__, "options": list(OPTION_CASES),
                   "dtypes": dtypes}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
