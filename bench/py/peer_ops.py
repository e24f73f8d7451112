"""The Python peers, each in its own format: what a user who picked that tool instead of
ckptio would call. py/timed_op.py times them; bench/run.py lists them per workload.

Each op is Op(kind, fmt, run, prepare): `fmt` names the file it reads or writes (pt,
safetensors, tensors, or shards: a directory of Hugging Face safetensors shards and their
model.safetensors.index.json); `prepare(path)` builds, untimed, what the timed `run(path,
ctx)` needs (a module to load into, tensors to save). Kinds:
  load    returns a state_dict (name -> tensor) whose bytes are in fresh memory
  lazy    returns a state_dict whose tensors alias a mapping of the file (nothing copied)
  module  loads the file into an existing module whose memory is already touched
  save    writes the prepared tensors to `path` (durable ops fsync the file too)
  load_sharded, lazy_sharded, save_sharded: the same for sharded checkpoints (the Hugging
          Face loaders and savers; py/workloads.py's sharded_* workloads)
Each op imports its library itself; py/timed_op.py imports `imports` before timing, so no
run pays for an import, and a process pays only for the peer it runs.
"""
import collections
import json
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


# ---- Hugging Face sharded checkpoints ----------------------------------------------------------

INDEX = "model.safetensors.index.json"


def shard_limit(nbytes):
    """max_shard_size of the sharded files and saves, in decimal MB as transformers parses it:
    28% of the tensor bytes, which is 300MB for the 1 GiB bf16 model and 4 shards at the
    --quick size too. bench/timed_op.cc's shard_limit is the same rule."""
    return f"{max(1, round(nbytes * 0.28 / 1e6))}MB"


def _nbytes(sd):
    return sum(t.nbytes for t in sd.values())


def _shard_files(directory):
    """The shards as transformers' get_checkpoint_shard_files lists them: the index's
    weight_map values, each once, sorted."""
    with open(os.path.join(directory, INDEX)) as f:
        index = json.load(f)
    return [os.path.join(directory, n) for n in sorted(set(index["weight_map"].values()))]


def _transformers_shards(directory, backend="mmap", disable_mmap=False):
    """The state_dict of a sharded checkpoint as transformers 5.24's from_pretrained reads it
    (modeling_utils.PreTrainedModel._load_pretrained_model, then
    core_model_loading.convert_and_load_state_dict_in_model), without the model: each shard
    opened with safe_open and its keys taken as lazy slices into one dict, then every slice
    materialized (`slice[...]`, core_model_loading.spawn_materialize) in a pool of
    GLOBAL_WORKERS threads, in dot_natural_key order. backend='mmap' is its path on Linux:
    the tensors alias a private mapping of the shard; 'pread' the one on Windows and MPS (a
    copy). disable_mmap: its path on hf-mount (or with disable_mmap=True), each shard read
    whole and parsed by safetensors.torch.load (a copy)."""
    from concurrent.futures import ThreadPoolExecutor
    from safetensors import safe_open
    from safetensors.torch import load as load_bytes
    from transformers.core_model_loading import GLOBAL_WORKERS, dot_natural_key, spawn_materialize
    merged, pointers = {}, []
    for file in _shard_files(directory):
        if disable_mmap:
            with open(file, "rb") as fh:
                merged.update(load_bytes(fh.read()))
            continue
        f = safe_open(file, framework="pt", device="cpu", backend=backend)
        pointers.append(f)
        for k in f.keys():
            merged[k] = f.get_slice(k)  # not read yet
    with ThreadPoolExecutor(max_workers=GLOBAL_WORKERS) as pool:
        futures = [(k, spawn_materialize(pool, t, "cpu", None))
                   for k, t in sorted(merged.items(), key=lambda kv: dot_natural_key(kv[0]))]
        sd = {k: fut.result() for k, fut in futures}
    for f in pointers:
        f.__exit__(None, None, None)
    return sd


def _load_file_per_shard(directory, backend="mmap"):
    """The simple way (transformers before 5, and many scripts): load_file each shard of the
    index, merged into one dict."""
    from safetensors.torch import load_file
    sd = {}
    for file in _shard_files(directory):
        sd.update(load_file(file, backend=backend))
    return sd


def _pretrained_model_for(path):
    """A transformers PreTrainedModel whose parameters are the tensors themselves (no copy),
    so that save_pretrained runs whole, as for a real model: its state_dict, the split
    (huggingface_hub's split_torch_state_dict_into_shards), save_file per shard, the index and
    config.json. With the max_shard_size for these tensors."""
    from transformers import PreTrainedConfig, PreTrainedModel
    from transformers.utils import logging
    logging.disable_progress_bar()  # its tqdm bar is stderr noise, not work

    class BenchConfig(PreTrainedConfig):
        model_type = "ckptio_bench"

    class BenchModel(PreTrainedModel):
        config_class = BenchConfig

        def __init__(self, config, sd):
            super().__init__(config)
            for name, child in mirror(sd, copy=False).named_children():
                self.add_module(name, child)

    sd = _tensors_for(path)
    return BenchModel(BenchConfig(), sd), shard_limit(_nbytes(sd))


def _save_pretrained(path, ctx):
    model, limit = ctx
    model.save_pretrained(path, max_shard_size=limit)


def _save_torch_state_dict(path, sd):
    from huggingface_hub import save_torch_state_dict
    os.makedirs(path, exist_ok=True)  # it writes into an existing directory
    save_torch_state_dict(sd, path, max_shard_size=shard_limit(_nbytes(sd)))


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

# Sharded checkpoints (the single-file peers beside them are the safetensors ops above).
_TF = ["safetensors.torch", "transformers", "transformers.core_model_loading"]
_add("transformers shard load (backend='pread', its Windows/MPS path)", "load_sharded",
     "shards", lambda p, _: _transformers_shards(p, backend="pread"), imports=_TF)
_add("transformers shard load (disable_mmap, its hf-mount path)", "load_sharded", "shards",
     lambda p, _: _transformers_shards(p, disable_mmap=True), imports=_TF)
_add("load_file(backend='pread') per shard, merged", "load_sharded", "shards",
     lambda p, _: _load_file_per_shard(p, "pread"), imports=_ST)
_add("transformers shard load (mmap, its Linux path)", "lazy_sharded", "shards",
     lambda p, _: _transformers_shards(p), imports=_TF)
_add("load_file (mmap) per shard, merged", "lazy_sharded", "shards",
     lambda p, _: _load_file_per_shard(p), imports=_ST)
_add("transformers save_pretrained(max_shard_size)", "save_sharded", "shards",
     _save_pretrained, _pretrained_model_for, _TF)
# Its first call in a process imports its serialization module and, through
# get_torch_storage_size, torch.distributed.tensor (over a second here): imported untimed, as
# every op's imports are (transformers imports both itself).
_add("huggingface_hub save_torch_state_dict(max_shard_size)", "save_sharded", "shards",
     _save_torch_state_dict, _tensors_for,
     ["safetensors.torch", "huggingface_hub.serialization._torch", "torch.distributed.tensor"])
