"""One small torch.save file per global that torch.load(weights_only=True) accepts by default,
and per kind of object that reaches one, for tests/interop/weights_only_test.cc.

  make_weights_only_cases.py OUTDIR

Writes OUTDIR/<case>.pt and OUTDIR/manifest.json:
  {"torch": version, "allow_list": [every global the installed torch accepts by default],
   "cases": [{"name", "file", "covers": [globals], "expect": "read" | "refused",
              "root": reference encoding (read), "facts": encode.tensor_facts (read),
              "tensor_keys": {key: value} the first tensor must carry (read, optional),
              "refused_global": [names, one of which the message must give] (refused),
              "reason": a substring of the message (refused),
              "skip": why this torch cannot produce the case (then nothing else),
              "error": why generating it failed (the test fails)}]}

The allow-list is torch's own (_weights_only_unpickler._get_allowed_globals) plus what
`import torch` registers with add_safe_globals; the C++ test checks that every entry has a
case or a documented exclusion, so a newer torch that accepts more fails there first.

Most cases are what torch.save writes for an ordinary object. Some allow-listed callables
are never emitted by torch's own pickling (legacy tensor-type constructors, storage
constructors, _rebuild_tensor of pre-0.4 files, the device-from-CPU/numpy rebuilds of XLA-like
backends, the wrapper-subclass rebuild without its subclass): those cases are pickle-level
tests written through torch.save with an object whose __reduce__ returns the call, so the
file is byte-for-byte what a pickle naming that global would be.
"""
import collections
import copyreg
import io
import json
import os
import sys
import traceback
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import encode  # noqa: E402
import torch  # noqa: E402

warnings.filterwarnings("ignore")
# Importing these registers more safe globals (nested jagged tensors, DTensor): what any
# process that used torch.compile or torch.distributed accepts by default. Import them first
# so that the allow-list does not depend on which cases ran.
for _module in ("torch.nested", "torch._dynamo", "torch.distributed.tensor"):
    try:
        __import__(_module)
    except Exception:  # an older torch or a build without it
        pass
TORCH = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])


class Unavailable(Exception):
    """This torch cannot produce the case (an older version): the test skips it."""


def need(cond, why):
    if not cond:
        raise Unavailable(why)


class Call:
    """Pickles as `fn(*args)`: a REDUCE of exactly that global."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


# id(tensor) -> (the tensor, what its __reduce_ex__ answers instead). NEWOBJ pickles need the
# object to be an instance of the class it names, so the override sits on torch's own
# classes. The entry holds the tensor itself: were it freed, a later tensor could get its id
# and pickle as the stale NEWOBJ ("args[0] from __newobj__ args has the wrong class").
REDUCE_AS = {}


def _patch_reduce(cls):
    original = cls.__reduce_ex__

    def reduce_ex(self, proto):
        entry = REDUCE_AS.get(id(self))
        return entry[1] if entry is not None and entry[0] is self else original(self, proto)
    cls.__reduce_ex__ = reduce_ex


_patch_reduce(torch.Tensor)
_patch_reduce(torch.nn.Parameter)


def new_obj(obj, args, state=None):
    """obj, pickled as type(obj).__new__(type(obj), *args) (NEWOBJ), then BUILD with state."""
    REDUCE_AS[id(obj)] = (obj, (copyreg.__newobj__, (type(obj),) + tuple(args), state))
    return obj


# ---- the reference encoding, extended to the values encode.py has no need for ----------

_encode, _encode_tensor = encode.encode, encode.encode_tensor


def global_name(v):
    if isinstance(v, (torch.dtype, torch.layout, torch.qscheme)):
        return str(v)
    return "%s.%s" % (v.__module__, v.__qualname__)


def encode_tensor(t, locs):
    # ckptio hashes the stored elements and reports the conj / neg bits beside them.
    if t.is_conj():
        t = t.conj()
    if t.is_neg():
        t = torch._neg_view(t)
    return _encode_tensor(t, locs)



def encode_value(v, locs=None, depth=0):
    locs = locs or encode.Locations()
    if isinstance(v, (type, torch.layout, torch.qscheme)) or callable(v) and \
            not isinstance(v, (torch.Tensor, torch.nn.Module)):
        return {"global": global_name(v)}
    if isinstance(v, torch.UntypedStorage):
        return encode.encode_storage(torch.storage.TypedStorage(
            wrap_storage=v, dtype=torch.uint8, _internal=True), locs)
    return _encode(v, locs, depth)


encode.encode = encode_value  # encode() recurses through the module attribute
encode.encode_tensor = encode_tensor

# ---- the allow-list --------------------------------------------------------------------


def allow_list():
    from torch import _weights_only_unpickler as wo
    names = set(wo._get_allowed_globals())
    get = getattr(torch.serialization, "get_safe_globals", lambda: [])
    for g in get():  # registered by `import torch` itself (nested, distributed)
        names.add(g[1] if isinstance(g, tuple) else "%s.%s" % (g.__module__, g.__qualname__))
    return sorted(names)


def allowed_objects():
    """name -> the object torch maps it to (classes, functions, dtypes, qschemes)."""
    from torch import _weights_only_unpickler as wo
    out = dict(wo._get_allowed_globals())
    for g in getattr(torch.serialization, "get_safe_globals", lambda: [])():
        if not isinstance(g, tuple):
            out["%s.%s" % (g.__module__, g.__qualname__)] = g
    return out


def real_object(name, obj):
    """The object whose pickle is GLOBAL `name`: torch's weights-only table holds a
    StorageType stand-in for each legacy storage class."""
    if type(obj).__name__ == "StorageType":
        module, _, cls = name.rpartition(".")
        return getattr(sys.modules[module], cls)
    return obj


# ---- the cases -------------------------------------------------------------------------

# (name, covers, expect, make, legacy, ref): expect is "read" or (refused globals, reason);
# ref, when set, replaces the reference encoding of what torch.load returns.
CASES = []


def case(name, covers, expect="read", legacy=False):
    def wrap(make):
        CASES.append((name, covers, expect, make, legacy, None))
        return make
    return wrap


def add_bare_globals():
    """Every allow-listed global saved as a plain reference (a class, function, dtype or
    qscheme object is data too): ckptio reads each as {"global": name}."""
    for name, obj in allowed_objects().items():
        obj = real_object(name, obj)
        if global_name(obj) != name:
            continue  # an alias torch.save never writes under this name
        refused = {
            "torch.nested._internal.nested_tensor.NestedTensor": "nested jagged tensors",
            "torch.nested._internal.nested_tensor._rebuild_njt": "nested jagged tensors",
            # torch._dynamo allow-lists it for the dynamic dimensions of jagged tensors
            "torch._dynamo.decorators._DimRange": "nested jagged tensors",
        }
        expect = "read"
        if name in refused:
            expect = ([name], refused[name])
        elif name.startswith("torch.distributed."):
            expect = ([name], "distributed tensors and device meshes")
        # torch.load turns every storage class into a dtype stand-in (StorageType) without
        # the module; the reference is the name the file holds.
        ref = {"dict": [["v", {"global": name}]]} if "Storage" in name else None
        CASES.append(("ref_" + name.replace(".", "_"), [name], expect,
                      lambda obj=obj: {"v": obj}, False, ref))


@case("dense_v2", ["torch._utils._rebuild_tensor_v2", "collections.OrderedDict"])
def _():
    m = torch.nn.Linear(3, 2)
    torch.manual_seed(0)
    return m.state_dict()  # OrderedDict + BUILD of _metadata


@case("dense_v2_legacy", ["torch._utils._rebuild_tensor_v2"], legacy=True)
def _():
    t = torch.arange(12.0).reshape(3, 4)
    return {"t": t, "view": t[1:, ::2], "tied": t}


QUANTIZED = {"torch.qint8", "torch.quint8", "torch.qint32", "torch.quint4x2", "torch.quint2x4"}


def dtype_tensor(dt):
    """8 elements of dt from counting bytes (bool: alternating)."""
    if dt == torch.bool:
        return torch.arange(8) % 2 == 1
    size = torch.empty(0, dtype=dt).element_size()
    return torch.arange(8 * size, dtype=torch.uint8).view(dt)


def add_dtype_tensors():
    """A tensor of every dtype torch can make one of (v2 for the legacy dtypes, v3 for the
    2.x ones; quantized dtypes only exist as quantized tensors, below)."""
    for name in sorted(n for n in allow_list() if n.startswith("torch.") and
                       isinstance(allowed_objects()[n], torch.dtype)):
        dt = allowed_objects()[name]
        if name in QUANTIZED:
            continue  # only as quantized tensors (qtensor cases)
        legacy_ok = dt in torch.storage._dtype_to_storage_type_map() if hasattr(
            torch.storage, "_dtype_to_storage_type_map") else True
        fn = "torch._utils._rebuild_tensor_v2" if legacy_ok else "torch._utils._rebuild_tensor_v3"

        def make(dt=dt):
            try:
                t = dtype_tensor(dt)
            except (RuntimeError, TypeError) as e:
                raise Unavailable("torch %s cannot make a %s tensor: %s" % (
                    torch.__version__, dt, str(e).split("\n")[0][:100]))
            try:
                torch.save(t, io.BytesIO())
            except KeyError as e:  # the sub-byte int1..7 / uint1..7 have no storage type
                raise Unavailable("torch %s cannot save a %s tensor: %s" % (
                    torch.__version__, dt, e))
            return {"t": t}
        CASES.append(("tensor_" + name[6:], [name, fn], "read", make, False, None))


@case("parameter", ["torch._utils._rebuild_parameter", "torch.nn.parameter.Parameter"])
def _():
    return {"p": torch.nn.Parameter(torch.ones(2, 3)),
            "frozen": torch.nn.Parameter(torch.zeros(2), requires_grad=False),
            "rg": torch.ones(2, requires_grad=True)}


@case("parameter_with_state", ["torch._utils._rebuild_parameter_with_state"])
def _():
    # ckptio keeps the data and drops the Python attributes (the value tree has no place
    # for them): decided and documented, checked by formats_test too.
    need(TORCH >= (2, 0), "torch 1.13 drops a Parameter's attributes on save")
    p = torch.nn.Parameter(torch.arange(4.0))
    p.note = "attribute"
    return {"p": p}


@case("tensor_with_attr", ["torch._tensor._rebuild_from_type_v2", "torch.Tensor"])
def _():
    need(TORCH >= (2, 0), "torch 1.13 drops a tensor's attributes on save")
    t = torch.arange(3.0)
    t.note = "attribute"
    return {"t": t}


class MyTensor(torch.Tensor):
    pass


@case("tensor_subclass", ["torch._tensor._rebuild_from_type_v2"],
      expect=(["__main__.MyTensor"], "not in the allow-list"))
def _():
    return {"t": torch.arange(3.0).as_subclass(MyTensor)}


@case("conj_bit", ["torch._utils._rebuild_tensor_v2"])
def _():
    need(TORCH >= (2, 0), "torch 1.13 does not save the conj bit")
    return {"c": torch.tensor([1 + 2j, 3 - 4j]).conj()}


@case("neg_bit", ["torch._utils._rebuild_tensor_v2"])
def _():
    need(TORCH >= (2, 0), "torch 1.13 does not save the neg bit")
    return {"n": torch._neg_view(torch.tensor([1 + 2j, 3 - 4j]))}


@case("rebuild_tensor_v1", ["torch._utils._rebuild_tensor"])
def _():
    # Pre-0.4 files; torch.save stopped writing it. Pickle level, through Call.
    t = torch.arange(6.0)
    return {"t": Call(torch._utils._rebuild_tensor, t.storage(), 1, (2, 2), (2, 1))}


@case("size", ["torch.Size"])
def _():
    return {"s": torch.Size([2, 3]), "empty": torch.Size([])}


@case("device", ["torch.device"])
def _():
    return {"cpu": torch.device("cpu"), "cuda1": torch.device("cuda", 1),
            "meta": torch.device("meta")}


@case("counter", ["collections.Counter"])
def _():
    return {"c": collections.Counter({"a": 2, "b": 1})}


@case("set", ["builtins.set"])
def _():
    return {"s": {1, 2, 3}, "empty": set()}


@case("complex", ["builtins.complex"])
def _():
    return {"z": 1.5 - 2j}


@case("bytes", ["_codecs.encode"])
def _():
    return {"b": b"\x00\x01\xffabc"}


@case("bytearray", ["builtins.bytearray", "_codecs.encode"])
def _():
    return {"b": bytearray(b"\x00\x02xyz")}


@case("dtype_values", ["torch.float32", "torch.bfloat16"])
def _():
    return {"f": torch.float32, "b": torch.bfloat16, "l": [torch.int64, torch.bool]}


def add_layouts():
    names = ["strided", "sparse_coo", "sparse_csr", "sparse_csc", "sparse_bsr", "sparse_bsc",
             "_mkldnn", "jagged"]
    for n in names:
        def make(n=n):
            need(hasattr(torch, n), "torch %s has no layout torch.%s" % (torch.__version__, n))
            return {"layout": getattr(torch, n)}
        CASES.append(("layout_" + n.strip("_"), ["torch.serialization._get_layout"], "read",
                      make, False, None))


def add_storages():
    """Storages saved directly: the legacy classes, TypedStorage and UntypedStorage."""
    for cls in ["FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage",
                "LongStorage", "IntStorage", "ShortStorage", "CharStorage", "ByteStorage",
                "BoolStorage", "ComplexFloatStorage", "ComplexDoubleStorage"]:
        def make(cls=cls):
            s = getattr(torch, cls)(4)
            s.copy_(torch.arange(4).to(s.dtype).storage() if TORCH < (2, 0) else
                    torch.storage.TypedStorage(list(range(4)), dtype=s.dtype)
                    if s.dtype != torch.bool else torch.arange(4).to(torch.bool).storage())
            return {"s": s}
        CASES.append(("storage_" + cls, ["torch." + cls], "read", make, False, None))
        CASES.append(("storage_" + cls + "_legacy", ["torch." + cls], "read", make, True, None))

    def untyped():
        need(TORCH >= (2, 0), "torch 1.13 cannot save an UntypedStorage")
        return {"u": torch.arange(5, dtype=torch.uint8).untyped_storage()}
    CASES.append(("storage_untyped", ["torch.storage.UntypedStorage"], "read", untyped, False, None))

    def typed_cls():
        s = torch.storage.TypedStorage(4, dtype=torch.float32)
        s.fill_(2.0)
        return {"s": s}
    CASES.append(("storage_typed", ["torch.storage.TypedStorage"], "read", typed_cls, False, None))


def qtensor_per_tensor():
    return {"q": torch.quantize_per_tensor(torch.arange(4.0), 0.5, 1, torch.quint8)}


def qtensor_per_channel():
    return {"q": torch.quantize_per_channel(torch.arange(6.0).reshape(2, 3),
                                            torch.tensor([0.5, 0.25], dtype=torch.float64),
                                            torch.tensor([0, 1]), 0, torch.qint8)}


def sparse(layout):
    def make():
        need(hasattr(torch, layout), "torch %s has no %s" % (torch.__version__, layout))
        d = torch.tensor([[1.0, 0, 0, 2], [0, 0, 3, 0], [0, 0, 0, 0], [4, 0, 0, 0]])
        if layout == "sparse_coo":
            return {"s": d.to_sparse()}
        if TORCH < (2, 0):  # 1.13 writes CSR with its own _rebuild_sparse_csr_tensor
            need(layout == "sparse_csr", "torch 1.13 cannot make a %s tensor" % layout)
            return {"s": d.to_sparse_csr()}
        if layout in ("sparse_bsr", "sparse_bsc"):
            return {"s": d.to_sparse(layout=getattr(torch, layout), blocksize=(2, 2))}
        return {"s": d.to_sparse(layout=getattr(torch, layout))}
    return make


def nested():
    need(TORCH >= (2, 0), "torch 1.13 cannot save nested tensors")
    return {"n": torch.nested.nested_tensor([torch.ones(2), torch.zeros(3)])}


def nested_jagged():
    need(hasattr(torch, "jagged"), "no jagged layout in torch %s" % torch.__version__)
    return {"n": torch.nested.nested_tensor([torch.ones(2, 3), torch.zeros(1, 3)],
                                            layout=torch.jagged)}


def meta():
    return {"m": torch.empty(2, 3, device="meta")}


def wrapper_subclass():
    need(hasattr(torch._utils, "_rebuild_wrapper_subclass"), "no wrapper subclasses")
    return {"w": Call(torch._utils._rebuild_wrapper_subclass, torch.Tensor, torch.float32,
                      (2,), (1,), 0, torch.strided, torch.device("meta"), False)}


def device_from_cpu():
    need(hasattr(torch._utils, "_rebuild_device_tensor_from_cpu_tensor"), "torch < 2.6")
    return {"x": Call(torch._utils._rebuild_device_tensor_from_cpu_tensor, torch.arange(3.0),
                      torch.float32, "xla:0", False)}


def device_from_numpy():
    need(hasattr(torch._utils, "_rebuild_device_tensor_from_numpy"), "no such rebuild")
    import numpy as np
    return {"x": Call(torch._utils._rebuild_device_tensor_from_numpy,
                      np.arange(3, dtype=np.float32), torch.float32, "xla:0", False)}


def legacy_constructor(cls, *args):
    def make():
        return {"x": Call(cls, *args)}
    return make


def tensor_new_and_set():
    # The "legacy unpickling" branch of torch's BUILD: Tensor.__new__ then set_(*state).
    t = torch.arange(4.0)
    return {"x": new_obj(torch.empty(0), (), (t.storage(), 0, torch.Size([4]), (1,)))}


def untyped_from_values():
    need(TORCH >= (2, 0), "torch 1.13 has no UntypedStorage constructor to call")
    return {"x": Call(torch.storage.UntypedStorage, [1, 2, 3])}


def add_refusals():
    R = "torch._utils."
    q = "quantized tensors are not supported yet"
    for name, covers, globals_, reason, make in [
        ("qtensor_per_tensor", [R + "_rebuild_qtensor", "torch.per_tensor_affine"],
         [R + "_rebuild_qtensor"], q, qtensor_per_tensor),
        ("qtensor_per_channel", [R + "_rebuild_qtensor", "torch.per_channel_affine"],
         [R + "_rebuild_qtensor"], q, qtensor_per_channel),
        ("sparse_coo", [R + "_rebuild_sparse_tensor"], [R + "_rebuild_sparse_tensor"],
         "sparse tensors (layout torch.sparse_coo)", sparse("sparse_coo")),
        ("sparse_csr", [R + "_rebuild_sparse_tensor", R + "_rebuild_sparse_csr_tensor"],
         [R + "_rebuild_sparse_tensor", R + "_rebuild_sparse_csr_tensor"],
         "sparse tensors (layout torch.sparse_csr)", sparse("sparse_csr")),
        ("sparse_csc", [R + "_rebuild_sparse_tensor"], [R + "_rebuild_sparse_tensor"],
         "sparse tensors (layout torch.sparse_csc)", sparse("sparse_csc")),
        ("sparse_bsr", [R + "_rebuild_sparse_tensor"], [R + "_rebuild_sparse_tensor"],
         "sparse tensors (layout torch.sparse_bsr)", sparse("sparse_bsr")),
        ("sparse_bsc", [R + "_rebuild_sparse_tensor"], [R + "_rebuild_sparse_tensor"],
         "sparse tensors (layout torch.sparse_bsc)", sparse("sparse_bsc")),
        ("nested", [R + "_rebuild_nested_tensor"], [R + "_rebuild_nested_tensor"],
         "nested tensors", nested),
        ("nested_jagged", ["torch.nested._internal.nested_tensor.NestedTensor",
                           "torch.nested._internal.nested_tensor._rebuild_njt"],
         ["torch.nested._internal.nested_tensor.NestedTensor",
          "torch.nested._internal.nested_tensor._rebuild_njt"],
         "nested jagged tensors", nested_jagged),
        ("meta", [R + "_rebuild_meta_tensor_no_storage"], [R + "_rebuild_meta_tensor_no_storage"],
         "meta tensors", meta),
        ("wrapper_subclass", [R + "_rebuild_wrapper_subclass"], [R + "_rebuild_wrapper_subclass"],
         "wrapper tensor subclasses", wrapper_subclass),
        ("device_from_cpu", [R + "_rebuild_device_tensor_from_cpu_tensor"],
         [R + "_rebuild_device_tensor_from_cpu_tensor"], "xla:0", device_from_cpu),
        # numpy globals are outside torch's default allow-list; ckptio refuses the array or,
        # reading it, the rebuild.
        ("device_from_numpy", [R + "_rebuild_device_tensor_from_numpy"],
         [R + "_rebuild_device_tensor_from_numpy", "numpy.core.multiarray._reconstruct",
          "numpy._core.multiarray._reconstruct"], "", device_from_numpy),
        ("call_FloatTensor", ["torch.FloatTensor"], ["torch.FloatTensor"],
         "legacy tensor constructor", legacy_constructor(torch.FloatTensor, [1.0, 2.0])),
        ("call_sparse_FloatTensor", ["torch.sparse.FloatTensor"], ["torch.sparse.FloatTensor"],
         "legacy tensor constructor", legacy_constructor(torch.sparse.FloatTensor, torch.tensor([[0], [1]]),
                            torch.tensor([1.0]), torch.Size([2, 2]))),
        ("call_Tensor", ["torch.Tensor"], ["torch.Tensor"], "torch.Tensor",
         legacy_constructor(torch.Tensor, [1.0])),
        ("newobj_Tensor_set", ["torch.Tensor"], ["torch.Tensor"], "torch.Tensor",
         tensor_new_and_set),
        ("call_UntypedStorage", ["torch.storage.UntypedStorage"],
         ["torch.storage.UntypedStorage"], "storage constructor", untyped_from_values),
    ]:
        CASES.append((name, covers, (globals_, reason), make, False, None))


@case("parameter_reduce", ["torch.nn.parameter.Parameter"])
def _():
    # What no torch.save writes (it uses _rebuild_parameter): Parameter(data, requires_grad)
    # called directly, and Parameter.__new__ (NEWOBJ), both allow-listed. Pickle level.
    return {"call": Call(torch.nn.Parameter, torch.ones(2), False),
            "new": new_obj(torch.nn.Parameter(torch.ones(1)), (torch.zeros(2),))}


add_bare_globals()
add_dtype_tensors()
add_layouts()
add_storages()
add_refusals()


def generate(outdir):
    os.makedirs(outdir, exist_ok=True)
    out = []
    for name, covers, expect, make, legacy, ref in CASES:
        path = os.path.join(outdir, name + ".pt")
        c = {"name": name, "file": path, "covers": covers}
        try:
            value = make()
            kw = {"_use_new_zipfile_serialization": False} if legacy else {}
            torch.save(value, path, **kw)
            if expect == "read":
                obj, locs = encode.load(path)
                c["expect"] = "read"
                c["root"] = ref or encode.encode(obj, locs)
                c["facts"] = encode.tensor_facts(obj, locs)
                first = encode.tensors_in_order(obj)
                if first and isinstance(first[0], torch.Tensor):
                    keys = {}
                    if first[0].is_conj():
                        keys["conj"] = True
                    if first[0].is_neg():
                        keys["neg"] = True
                    if isinstance(first[0], torch.nn.Parameter):
                        keys["parameter"] = True
                    if keys:
                        c["tensor_keys"] = keys
            else:
                c["expect"] = "refused"
                c["refused_global"], c["reason"] = expect
            c["torch_weights_only"] = encode.weights_only_error(path)
        except Unavailable as e:
            c = {"name": name, "covers": covers, "skip": str(e)}
        except Exception:
            c["error"] = traceback.format_exc(limit=4)
        out.append(c)
    manifest = {"torch": torch.__version__, "allow_list": allow_list(), "cases": out}
    with open(os.path.join(outdir, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    generate(sys.argv[1])
