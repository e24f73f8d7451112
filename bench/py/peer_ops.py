"""The Python peers, each in its own format: what a user who picked that tool instead of
ckptio would call. py/timed_op.py times them; bench/run.py lists them per workload.

Each op is Op(kind, fmt, run, prepare): `fmt` names the file it reads or writes (pt,
safetensors, tensors); `prepare(path)` builds, untimed, what the timed `run(path, ctx)`
needs (a module to load into, tensors to save). Kinds:
  load    returns a state_dict (name -> tensor) whose bytes are in fresh memory
  lazy    returns a state_dict whose tensors alias a mapping of the file (nothing copied)
  module  loads the file into an existing module whose memory is already touched
  save    writes the prepared tensors to `path` (durable ops fsync the file too)
Each op imports its library itself; py/timed_op.py imports `imports` before timing, so no
run pays for an import, and a process pays only for the peer it runs.
"""
import collections
import os


class Op:
    def __init__(self, kind, fmt, run, prepare=None, imports=()):
        self.kind, self.fmt, self.run, self.prepare = kind, fmt, run, prepare
        self.imports = ("torch",) + tuple(imports)  # imported before timing


def _torch():
    import torch
    return torch


def mirror(sd, copy=True):
    """A module whose parameters mirror a state_dict's keys: copies of its tensors (the
    module's memory touched, as a constructed model's is), or with copy=False the tensors
    themselves."""
    torch = _torch()
    root = torch.nn.Module()
    for key, value in sd.items():
        *path, leaf = key.split(".")
        m = root
        for name in path:
            if name not in m._modules:
                m.add_module(name, torch.nn.Module())
            m = m._modules[name]
        m.register_parameter(leaf, torch.nn.Parameter(value.clone() if copy else value,
                                                      requires_grad=False))
    return root


def _source_pt(path):
    """The .pt beside a peer-format file: every peer starts from the same tensors."""
    return os.path.splitext(path)[0] + ".pt"


def _module_for(path):
    return mirror(_torch().load(_source_pt(path)))


def _tensors_for(path):
    return _torch().load(_source_pt(path))


# ---- loads into fresh memory ---------------------------------------------------------------

def _tensorizer_file(path):
    """The path, or why py/make_bench_files.py could not write it."""
    if not os.path.exists(path) and os.path.exists(path + ".error"):
        with open(path + ".error") as f:
            raise RuntimeError(f.read())
    return path


def _tensorizer_load(path, lazy=False):
    from tensorizer import TensorDeserializer
    path = _tensorizer_file(path)
    # The README's speed options are its defaults: num_readers=None picks 8 concurrent
    # readers for a local file, no hash verification, plaid_mode is now automatic.
    d = TensorDeserializer(path, device="cpu", lazy_load=lazy)
    sd = dict(d.items())  # lazy: every tensor is read here, on access
    d.close()
    return sd


def _runai_load(path):
    from runai_model_streamer import SafetensorsStreamer
    with SafetensorsStreamer() as s:
        s.stream_file(path, device="cpu")
        return {name: t for name, t in s.get_tensors()}


def _fastsafetensors_load(path, buffered=False):
    # Its CPU path: nogds=True (GDS needs a GPU and cuFile) reads through host bounce
    # buffers into one buffer for the file, with O_DIRECT by default on local filesystems,
    # so even a warm load reads the disk; `buffered` turns that off, as its own hint says.
    if buffered:
        os.environ["FASTSAFETENSORS_ODIRECT"] = "0"
    else:
        os.environ.pop("FASTSAFETENSORS_ODIRECT", None)
    from fastsafetensors import fastsafe_open
    with fastsafe_open(path, framework="pt", device="cpu", nogds=True) as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def _safe_open(path):
    from safetensors import safe_open
    with safe_open(path, framework="pt", device="cpu") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def _load_file(path, backend="mmap"):
    from safetensors.torch import load_file
    return load_file(path, backend=backend)


# ---- into an existing module ---------------------------------------------------------------

def _into_module_torch(path, model, mmap=False):
    model.load_state_dict(_torch().load(path, mmap=mmap))
    return model


def _into_module_safetensors(path, model):
    from safetensors.torch import load_model
    load_model(model, path)
    return model


def _into_module_tensorizer(path, model):
    from tensorizer import TensorDeserializer
    # load_into_module replaces the module's parameters with the tensors it read (it does
    # not copy into the existing ones), as its README recommends.
    with TensorDeserializer(_tensorizer_file(path), device="cpu") as d:
        d.load_into_module(model)
    return model


# ---- saves ---------------------------------------------------------------------------------

def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save_torch(path, sd):
    _torch().save(sd, path)


def _save_safetensors(path, sd):
    from safetensors.torch import save_file
    save_file(sd, path)


def _save_tensorizer(path, model):
    from tensorizer import TensorSerializer
    s = TensorSerializer(path)
    s.write_module(model)
    s.close()


def _durable(save):
    def run(path, ctx):
        save(path, ctx)
        _fsync(path)
    return run


def _module_of_tensors(path):
    """A module holding the tensors themselves, for tensorizer's write_module."""
    return mirror(_tensors_for(path), copy=False)


OPS = collections.OrderedDict()


def _add(name, kind, fmt, run, prepare=None, imports=()):
    OPS[name] = Op(kind, fmt, run, prepare, imports)


_ST, _TZ = ["safetensors.torch"], ["tensorizer"]
_add("torch.load", "load", "pt", lambda p, _: _torch().load(p))
_add("torch.load(map_location='cpu')", "load", "pt",
     lambda p, _: _torch().load(p, map_location="cpu"))
_add("safetensors load_file(backend='pread')", "load", "safetensors",
     lambda p, _: _load_file(p, "pread"), imports=_ST)
_add("tensorizer TensorDeserializer", "load", "tensors", lambda p, _: _tensorizer_load(p),
     imports=_TZ)
_add("tensorizer lazy_load, every key read", "load", "tensors",
     lambda p, _: _tensorizer_load(p, lazy=True), imports=_TZ)
_add("runai-model-streamer SafetensorsStreamer", "load", "safetensors",
     lambda p, _: _runai_load(p), imports=["runai_model_streamer"])
_add("fastsafetensors (nogds)", "load", "safetensors", lambda p, _: _fastsafetensors_load(p),
     imports=["fastsafetensors"])
_add("fastsafetensors (nogds, FASTSAFETENSORS_ODIRECT=0)", "load", "safetensors",
     lambda p, _: _fastsafetensors_load(p, buffered=True), imports=["fastsafetensors"])

_add("torch.load(mmap=True)", "lazy", "pt", lambda p, _: _torch().load(p, mmap=True))
_add("safetensors load_file (mmap)", "lazy", "safetensors", lambda p, _: _load_file(p),
     imports=_ST)
_add("safe_open + get_tensor per key", "lazy", "safetensors", lambda p, _: _safe_open(p),
     imports=["safetensors"])

_add("model.load_state_dict(torch.load(f))", "module", "pt", _into_module_torch, _module_for)
_add("model.load_state_dict(torch.load(f, mmap=True))", "module", "pt",
     lambda p, m: _into_module_torch(p, m, mmap=True), _module_for)
_add("safetensors load_model", "module", "safetensors", _into_module_safetensors, _module_for,
     _ST)
_add("tensorizer load_into_module", "module", "tensors", _into_module_tensorizer, _module_for,
     _TZ)

_add("torch.save", "save", "pt", _save_torch, _tensors_for)
_add("safetensors save_file", "save", "safetensors", _save_safetensors, _tensors_for, _ST)
_add("tensorizer write_module", "save", "tensors", _save_tensorizer, _module_of_tensors, _TZ)
_add("torch.save + fsync", "save_durable", "pt", _durable(_save_torch), _tensors_for)
_add("safetensors save_file + fsync", "save_durable", "safetensors",
     _durable(_save_safetensors), _tensors_for, _ST)
_add("tensorizer write_module + fsync", "save_durable", "tensors", _durable(_save_tensorizer),
     _module_of_tensors, _TZ)
