"""Writes the interop checkpoints with the real torch.save, in both formats, plus the
reference encoding of what torch.load reads back from each.

  make_cases.py DIR             for every case NAME: DIR/NAME.zip.pt, DIR/NAME.legacy.pt and
                                DIR/NAME.{zip,legacy}.ref.json; DIR/cases.json lists NAMEs.
                                Where this torch cannot write a case in a format, or cannot
                                read back what it wrote, the ref.json is {"save_error": why}
  make_cases.py --list          print the case names

A ref.json holds {"root": encoding, "ties": encode.ties(obj), "facts":
encode.tensor_facts(obj), "storages": count of storage records in the file, "weights_only":
encode.weights_only_error(path)}. Each case builds its object from a fixed seed, so files are
the same on every run (up to the memory-address keys torch does not write in zip files anyway).

The dtypes newer than torch 1.13 (float8_*, uint16/32/64) are in case newer_dtypes when the
torch running this has them (CMake's CKPTIO_TEST_PYTHON chooses it); with Debian's 1.13 that
case holds one float32 tensor. Storages saved from a GPU are simulated by patching
torch.serialization.location_tag (case cuda_location).
"""
import collections
import json
import os
import pickle
import pickletools
import sys
import zipfile

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import case_args  # noqa: E402
import encode  # noqa: E402

CASES = collections.OrderedDict()


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def trained(model, opt_cls, steps=2, **kw):
    """Runs a couple of real optimizer steps so the optimizer has state."""
    opt = opt_cls(model.parameters(), **kw)
    for _ in range(steps):
        opt.zero_grad()
        x = torch.randn(4, 8)
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
    return opt, float(loss)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.bn = nn.BatchNorm1d(16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 5 * 5, 2))

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))))


class TiedLm(nn.Module):
    """Embedding and output projection share one weight (weight tying)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 6)
        self.norm = nn.LayerNorm(6)
        self.out = nn.Linear(6, 10, bias=False)
        self.out.weight = self.embed.weight


# ---- models -------------------------------------------------------------------------------

@case
def sd_linear():
    return nn.Linear(5, 3).state_dict()


@case
def sd_mlp_batchnorm():
    m = Mlp()
    m.train()
    m(torch.randn(4, 8))  # num_batches_tracked becomes 1, running stats move
    return m.state_dict()


@case
def sd_cnn():
    m = Cnn()
    m(torch.randn(2, 3, 5, 5))
    return m.state_dict()


@case
def sd_lstm():
    return nn.LSTM(4, 5, num_layers=2, bidirectional=True).state_dict()


@case
def sd_transformer_layer():
    # Many parameters: more than 10 storages, so record order is lexicographic (0,1,10,...).
    return nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16).state_dict()


@case
def sd_tied_weights():
    return TiedLm().state_dict()


@case
def sd_keep_vars():
    # keep_vars=True: the values are the nn.Parameter objects themselves.
    return nn.Linear(3, 2).state_dict(keep_vars=True)


# ---- optimizers ---------------------------------------------------------------------------

@case
def opt_sgd_momentum():
    return trained(Mlp(), torch.optim.SGD, lr=0.1, momentum=0.9, nesterov=True)[0].state_dict()


@case
def opt_adam_amsgrad():
    return trained(Mlp(), torch.optim.Adam, lr=1e-3, amsgrad=True)[0].state_dict()


@case
def opt_rmsprop():
    return trained(Mlp(), torch.optim.RMSprop, lr=1e-2, momentum=0.5, centered=True)[0] \
        .state_dict()


@case
def opt_adagrad():
    return trained(Mlp(), torch.optim.Adagrad, lr=0.1)[0].state_dict()


@case
def general_checkpoint():
    m = Mlp()
    opt, loss = trained(m, torch.optim.Adam, lr=1e-3)
    return {"epoch": 7, "model_state_dict": m.state_dict(),
            "optimizer_state_dict": opt.state_dict(), "loss": loss}


@case
def several_models():
    g, d = Mlp(), Cnn()
    opt_g, _ = trained(g, torch.optim.SGD, lr=0.1, momentum=0.9)
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.StepLR(opt_g, step_size=3, gamma=0.5)
    opt_g.step()  # the scheduler expects an optimizer step before its own
    sched.step()
    return {"generator": g.state_dict(), "discriminator": d.state_dict(),
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            "sched_g": sched.state_dict(), "step": 12345, "name": "gan"}


# ---- tensors ------------------------------------------------------------------------------

@case
def all_dtypes():
    vals = [0, 1, -1, 2.5, -3.75, 100, 127, -128]
    out = collections.OrderedDict()
    for dt in [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64,
               torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool]:
        src = torch.tensor(vals, dtype=torch.float64)
        if dt == torch.uint8:
            src = src.abs()
        out[encode.dtype_name(dt)] = src.to(dt).reshape(2, 4)
    out["int64_extremes"] = torch.tensor([2**63 - 1, -2**63, 0], dtype=torch.int64)
    out["complex64"] = torch.tensor([1 + 2j, -0.5 - 0.25j, 3j], dtype=torch.complex64)
    out["complex128"] = torch.tensor([[1e300 + 1j, -2.5j]], dtype=torch.complex128)
    out["float32_random"] = torch.randn(3, 4)
    out["bfloat16_random"] = torch.randn(5, dtype=torch.bfloat16)
    return out


@case
def views():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return {"base": base, "rows": base[1:3], "cols_step": base[:, ::2], "t": base.t(),
            "t_slice": base.t()[1:], "row2": base[2], "elem": base[3, 5],
            "narrow": base.narrow(1, 2, 3), "permute": base.reshape(2, 3, 4).permute(2, 0, 1),
            "diag": torch.as_strided(base, (4,), (7,), 0)}


@case
def expanded():
    # expand() makes stride-0 views; torch 1.13 saves them as they are (strides (0, 1)).
    row = torch.arange(3, dtype=torch.float64)
    return {"row": row, "rows": row.expand(4, 3), "col": torch.ones(2, 1).expand(2, 5),
            "scalar_expanded": torch.tensor(7).expand(3)}


@case
def view_without_base():
    base = torch.arange(100, dtype=torch.int32).reshape(10, 10)
    # Only the view is saved; torch writes the whole storage and an offset.
    return {"window": base[3:5, 2:7], "column": base[:, 4]}


@case
def tied_same_tensor():
    t = torch.randn(3, 3)
    u = torch.randn(2)
    return {"a": t, "b": t, "list": [u, t, u], "other": torch.randn(3, 3)}


@case
def tied_two_views():
    base = torch.randn(6, 4)
    return {"first": base[:3], "second": base[3:], "flat": base.view(-1)[5:9]}


@case
def zero_dim_and_empty():
    big = torch.arange(5, dtype=torch.float64)
    return {"scalar_f": torch.tensor(3.5), "scalar_i": torch.tensor(7),
            "scalar_b": torch.tensor(True), "scalar_view": big[2],
            "empty": torch.empty(0), "empty_3x0": torch.empty(3, 0, dtype=torch.int16),
            "empty_0x5": torch.zeros(0, 5, dtype=torch.bfloat16),
            "empty_view": big[2:2], "num_batches_tracked": torch.tensor(0, dtype=torch.long)}


@case
def parameters():
    w = nn.Parameter(torch.randn(2, 3))
    frozen = nn.Parameter(torch.randn(4), requires_grad=False)
    leaf = torch.ones(3, requires_grad=True)
    return {"w": w, "frozen": frozen, "leaf_requires_grad": leaf, "params": [w, frozen],
            "int_param": nn.Parameter(torch.arange(3), requires_grad=False)}


@case
def bare_tensor():
    return torch.linspace(-1, 1, 7).reshape(7, 1)


@case
def bare_parameter():
    return nn.Parameter(torch.randn(2, 2))


@case
def bare_list_of_tensors():
    return [torch.randn(2), torch.zeros(3, dtype=torch.uint8), torch.tensor([True, False])]


@case
def bare_storage():
    t = torch.arange(6, dtype=torch.int16)
    return {"storage": t.storage(), "tensor": t[1:4], "empty_storage": torch.FloatStorage()}


@case
def special_floats():
    nan, inf = float("nan"), float("inf")
    return {"py": [nan, inf, -inf, -0.0, 0.0, 1.0, 0.1, 1e300, 5e-324, 1e16, -2.5e-8,
                   2.0**53 + 2, 123456789.125],
            "f32": torch.tensor([nan, inf, -inf, -0.0, 1.0, 3.4e38]),
            "f64": torch.tensor([nan, -inf, 1e-310], dtype=torch.float64),
            "f16": torch.tensor([nan, inf, 65504.0, 6e-8], dtype=torch.float16),
            "bf16": torch.tensor([nan, -inf, 3e38], dtype=torch.bfloat16)}


@case
def many_storages():
    # 13 distinct storages: zip records sort as 0,1,10,11,12,2,...; legacy keys likewise.
    return collections.OrderedDict(("t%02d" % i, torch.full((i + 1,), float(i)))
                                   for i in range(13))


@case
def cuda_location():
    # Written by the real torch.save with location_tag patched: the file says 'cuda:1'.
    w = torch.randn(3, 2)
    return {"w": w, "b": torch.arange(4), "w_t": w.t()}


# ---- plain Python values ------------------------------------------------------------------

@case
def big_ints():
    return {"big": 2**100, "neg": -2**70, "int64_max": 2**63 - 1, "int64_min": -2**63,
            "just_over": 2**63, "just_under": -2**63 - 1, "int32_edge": [2**31 - 1, -2**31,
                                                                          2**31, 255, 256],
            "zero": 0, "huge": 10**40 + 1}


@case
def unicode_text():
    return {"π": "pi", "日本": "日本語テキスト", "emoji 🎉": "🚀 rocket", "": "",
            "esc": 'quote " backslash \\ newline \n tab \t nul \x00',
            "latin": "café ñ ü", "keys": ["ä", "Ω", "𝔘"]}


@case
def bytes_values():
    return {"empty": b"", "bin": b"\x00\xff", "all": bytes(range(256)), "text": b"hello",
            "list": [b"a", b"", b"\x80"]}


@case
def tuples_and_keys():
    # True == 1 as a dict key, so there is no key 1 here.
    return {0: "zero", 10: (), 2: (1,), 3: (1, 2), 4: (1, 2, 3), 5: (1, (2, (3, 4)), [5]),
            -7: None, 2**40: True, "s": False, (1, "a"): "tuple key", None: "none key",
            1.5: "float key", True: [True, False, None], 2**70: "big int key"}


@case
def nested_30_deep():
    v = torch.tensor([1.0, 2.0])
    for depth in range(30):
        kind = depth % 3
        v = {"level%d" % depth: v} if kind == 0 else [v, depth] if kind == 1 else (depth, v)
    return v


@case
def large_containers():
    # Past the pickler's batch size (1000 items per SETITEMS/APPENDS) and 256 memo entries
    # (LONG_BINPUT/LONG_BINGET); a long string; one multi-megabyte tensor.
    names = ["key%04d" % i for i in range(1500)]
    return {"dict": {n: i for i, n in enumerate(names)}, "list": list(range(2500)),
            "again": names[:300], "long_str": "x" * 70000, "long_bytes": bytes(300),
            "big": torch.arange(1 << 20, dtype=torch.float32)}


@case
def misc_objects():
    # Outside the JSON contract proper, but ckptio documents these encodings.
    return {"dtypes": [torch.float32, torch.int64, torch.bfloat16, torch.bool],
            "devices": [torch.device("cpu"), torch.device("cuda", 1), torch.device("cuda")],
            "size": torch.Size([2, 3]), "set": {3, 1, 2}, "complex": complex(1.5, -2.0),
            "bytearray": bytearray(b"ab")}


@case
def pickle_protocol_4():
    # Saved with pickle_protocol=4 (see PROTOCOL): FRAME, MEMOIZE, STACK_GLOBAL, BINBYTES.
    return {"t": torch.randn(2, 2), "s": "text", "b": b"\x01\x02", "i": 2**40, "f": 0.5,
            "l": [1, 2, 3], "shared": [torch.ones(1)] * 2}


@case
def newer_dtypes():
    # What this torch has of the dtypes added after 1.13 (uint16/32/64 in 2.3, float8 in 2.1).
    out = {"float32": torch.arange(3, dtype=torch.float32)}
    for name in ("float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz", "float8_e4m3fnuz",
                 "float8_e8m0fnu", "uint16", "uint32", "uint64"):
        dtype = getattr(torch, name, None)
        if dtype is not None:
            out[name] = torch.arange(4, dtype=torch.float32).to(dtype)
    return out


PROTOCOL = {"pickle_protocol_4": 4}
LOCATION = {"cuda_location": "cuda:1"}


def build(name):
    torch.manual_seed(sum(map(ord, name)))
    return CASES[name]()


def save(obj, path, legacy, protocol, location):
    orig = torch.serialization.location_tag
    if location:
        torch.serialization.location_tag = lambda storage: location
    try:
        torch.save(obj, path, pickle_protocol=protocol,
                   _use_new_zipfile_serialization=not legacy)
    finally:
        torch.serialization.location_tag = orig


def storage_records(path):
    """How many storages the file holds: data/ records (zip) or legacy key-list length."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return sum(1 for n in z.namelist() if n.split("/")[1:2] == ["data"])
    with open(path, "rb") as f:
        for _ in range(4):  # magic, protocol version, sys_info, the object: skip unexecuted
            for _ in pickletools.genops(f):
                pass
        return len(pickle.load(f))


def main(argv):
    out = case_args.output_dir(argv, __doc__, CASES)
    for name in CASES:
        obj = build(name)
        for fmt in ("zip", "legacy"):
            path = os.path.join(out, "%s.%s.pt" % (name, fmt))
            ref_path = os.path.join(out, "%s.%s.ref.json" % (name, fmt))
            try:
                save(obj, path, fmt == "legacy", PROTOCOL.get(name, 2), LOCATION.get(name))
            except Exception as e:  # this torch cannot write the case: the tests say so
                with open(ref_path, "w") as f:
                    json.dump({"save_error": "torch.save: %s: %s" % (type(e).__name__, e)}, f)
                continue
            try:
                loaded, locs = encode.load(path)
            except Exception as e:  # nor read back what it wrote (new dtypes, legacy, 2.x)
                with open(ref_path, "w") as f:
                    json.dump({"save_error": "torch.load of torch's own file: %s: %s" %
                               (type(e).__name__, e)}, f)
                continue
            ref = {"root": encode.encode(loaded, locs), "ties": encode.ties(loaded),
                   "facts": encode.tensor_facts(loaded, locs), "storages": storage_records(path),
                   "weights_only": encode.weights_only_error(path)}
            with open(ref_path, "w") as f:
                json.dump(ref, f)
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(list(CASES), f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
