"""Hugging Face sharded checkpoints for tests/interop/hf_sharded_test.cc, made at test time
with the real transformers, huggingface_hub, safetensors and torch of the tests' Python.

  make_hf_cases.py make OUT_DIR    writes the models, the cases and OUT_DIR/manifest.json

Exits 3 with "no transformers module" on stderr where transformers (or safetensors) is not
installed (Debian's python3 with torch 1.13), which the test turns into a skip.

Two tiny models with random weights (fixed seeds): a LlamaForCausalLM (hidden 64, 2 layers,
vocab 128, tied embeddings: save_pretrained drops lm_head.weight) and a BertModel in
bfloat16 (hidden 64, 2 layers, vocab 128; its 512x64 position embedding is bigger than the
40KB shard limit, so huggingface_hub's splitter gives it a shard of its own ahead of the
shard it interrupted).

Safetensors cases are save_pretrained(dir, max_shard_size=...) as transformers writes them.
transformers 5.24's save_pretrained writes safetensors only (it has no safe_serialization
argument any more), while its from_pretrained still reads pytorch_model.bin and
pytorch_model.bin.index.json; the .bin cases are therefore written the way transformers 4's
save_pretrained(safe_serialization=False) wrote them: the same state_dict (tied weights
removed), huggingface_hub.split_torch_state_dict_into_shards with the pattern
"pytorch_model{suffix}.bin", torch.save of {name: tensor.contiguous()} per shard, and the
index as json.dumps({"metadata": split.metadata, "weight_map": ...}, indent=2,
sort_keys=True) + "\n" (no index for a single shard).

manifest.json:
  "versions": {"transformers", "safetensors", "torch", "huggingface_hub"}
  "bin_by":   how the .bin cases were written (the paragraph above, in one line)
  "models":   {name: {"class", "config_dir" (config.json and the rest save_pretrained writes
               besides the weights), "pt" (torch.save of the saved state_dict, in the model's
               order), "original" (torch.save of the whole model.state_dict(), tied keys
               included), "keys" (the saved state_dict's keys in order), "dtype"}}
  "cases":    [{"name", "model", "kind": "safetensors" | "bin", "format" (ckptio's name:
               "safetensors" | "torch-zip"), "dir", "index" (path or null), "max_shard_size"
               (as given to save_pretrained; null for the default), "files" (the weight files,
               sorted), "weight_map" ({name: file}; a single file maps every name to it),
               "total_size" (the index's, or null), "expected" (a safetensors file of the
               merged shards as safetensors.load_file / torch.load read them), "inspect"
               (encode.py's encoding of that merged dict)}]
  "bad":      [{"name", "path" (a directory or an index), "expect" (fragments the one-line
               error must hold), "expect_any" (at least one of these must be in it)}]
"""
import json
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import safetensors
    import safetensors.torch as st
    import transformers
    import huggingface_hub
    from huggingface_hub import split_torch_state_dict_into_shards
except ImportError as e:
    print("no transformers module in %s (%s)" % (sys.executable, e), file=sys.stderr)
    sys.exit(3)

import warnings  # noqa: E402

import torch  # noqa: E402

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()
try:
    transformers.utils.logging.disable_progress_bar()
except AttributeError:
    pass

from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM  # noqa: E402
from transformers.modeling_utils import remove_tied_weights_from_state_dict  # noqa: E402

import encode  # noqa: E402

BIN_BY = ("transformers %s's save_pretrained writes safetensors only (no safe_serialization);"
          " .bin shards are written as transformers 4 did: huggingface_hub"
          " split_torch_state_dict_into_shards + torch.save per shard + the index json"
          % transformers.__version__)

# The models' classes by name, for check_hf_load.py too.
CLASSES = {"llama": LlamaForCausalLM, "bert": BertModel}


def build_model(name):
    torch.manual_seed({"llama": 1234, "bert": 4321}[name])
    if name == "llama":
        cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
                          max_position_embeddings=64, tie_word_embeddings=True)
        model = LlamaForCausalLM(cfg)
    else:
        cfg = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=128, vocab_size=128, max_position_embeddings=512)
        model = BertModel(cfg).to(torch.bfloat16)
    model.eval()
    # Random, distinct values everywhere (LayerNorm/RMSNorm weights start as all ones and
    # biases as zeros: a shard mix-up between them would go unseen).
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, dtype=torch.float32).to(p.dtype))
    return model


def saved_state_dict(model):
    """What save_pretrained saves: model.state_dict() without the tied aliases."""
    sd = remove_tied_weights_from_state_dict(model.state_dict(), model)
    return {k: v.detach().contiguous() for k, v in sd.items()}


def weight_files(d):
    return sorted(f for f in os.listdir(d)
                  if f.endswith(".safetensors") or f.endswith(".bin") or f.endswith(".index.json"))


def save_bin(model, d, max_shard_size):
    """save_pretrained(safe_serialization=False) as transformers 4 wrote it."""
    os.makedirs(d, exist_ok=True)
    model.config.save_pretrained(d)
    sd = saved_state_dict(model)
    kw = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    split = split_torch_state_dict_into_shards(sd, filename_pattern="pytorch_model{suffix}.bin",
                                               **kw)
    for fname, names in split.filename_to_tensors.items():
        torch.save({k: sd[k].contiguous() for k in names}, os.path.join(d, fname))
    if split.is_sharded:
        index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
        with open(os.path.join(d, "pytorch_model.bin.index.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")


def read_merged(d, kind):
    """The merged state_dict of a directory as the reference libraries read its shards."""
    index = os.path.join(d, "model.safetensors.index.json" if kind == "safetensors"
                         else "pytorch_model.bin.index.json")
    if os.path.exists(index):
        with open(index) as f:
            idx = json.load(f)
        files = sorted(set(idx["weight_map"].values()))
        weight_map, total = idx["weight_map"], idx["metadata"]["total_size"]
    else:
        files = ["model.safetensors" if kind == "safetensors" else "pytorch_model.bin"]
        weight_map, total, index = None, None, None
    merged = {}
    for fname in files:
        p = os.path.join(d, fname)
        part = st.load_file(p) if kind == "safetensors" else \
            torch.load(p, map_location="cpu", weights_only=True)
        for k, v in part.items():
            assert k not in merged, (k, fname)
            merged[k] = v
    if weight_map is None:
        weight_map = {k: files[0] for k in merged}
    assert set(weight_map) == set(merged), (sorted(set(weight_map) ^ set(merged)))
    return merged, files, weight_map, total, index


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(
        a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


def make_models(d):
    models = {}
    objs = {}
    for name in ("llama", "bert"):
        model = build_model(name)
        md = os.path.join(d, "models", name)
        os.makedirs(md, exist_ok=True)
        cfg_dir = os.path.join(md, "config")
        # config.json and generation_config.json as save_pretrained writes them (weights
        # removed again: config_dir holds what the tests copy beside ckptio's shards).
        model.save_pretrained(cfg_dir)
        for f in weight_files(cfg_dir):
            os.remove(os.path.join(cfg_dir, f))
        sd = saved_state_dict(model)
        torch.save(sd, os.path.join(md, "state_dict.pt"))
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()},
                   os.path.join(md, "original.pt"))
        models[name] = {"class": CLASSES[name].__name__, "config_dir": cfg_dir,
                        "pt": os.path.join(md, "state_dict.pt"),
                        "original": os.path.join(md, "original.pt"), "keys": list(sd),
                        "dtype": encode.dtype_name(next(iter(sd.values())).dtype)}
        objs[name] = (model, sd)
    return models, objs


CASES = [  # (name, model, kind, max_shard_size)
    ("llama_st_sharded", "llama", "safetensors", "100KB"),
    ("llama_st_2shards", "llama", "safetensors", "200KB"),
    ("bert_st_sharded", "bert", "safetensors", "40KB"),
    ("llama_st_single", "llama", "safetensors", None),
    ("llama_bin_sharded", "llama", "bin", "100KB"),
    ("bert_bin_sharded", "bert", "bin", "40KB"),
    ("llama_bin_single", "llama", "bin", None),
]


def make_cases(d, objs):
    out = []
    for name, mname, kind, max_size in CASES:
        model, sd = objs[mname]
        cd = os.path.join(d, "cases", name)
        kw = {} if max_size is None else {"max_shard_size": max_size}
        if kind == "safetensors":
            model.save_pretrained(cd, **kw)
        else:
            save_bin(model, cd, max_size)
        merged, files, weight_map, total, index = read_merged(cd, kind)
        # What the reference read is the model's saved state_dict, bit for bit.
        assert set(merged) == set(sd), sorted(set(merged) ^ set(sd))
        for k in sd:
            assert same(merged[k], sd[k]), k
        assert (len(files) > 1) == (max_size is not None), (name, files)
        expected = os.path.join(d, "cases", name + ".expected.safetensors")
        st.save_file({k: v.contiguous() for k, v in merged.items()}, expected)
        inspect_ref = os.path.join(d, "cases", name + ".inspect.json")
        with open(inspect_ref, "w") as f:
            json.dump(encode.encode(merged), f)
        out.append({"name": name, "model": mname, "kind": kind,
                    "format": "safetensors" if kind == "safetensors" else "torch-zip",
                    "dir": cd, "index": index, "max_shard_size": max_size,
                    "files": weight_files(cd), "weight_map": weight_map, "total_size": total,
                    "expected": expected, "inspect": inspect_ref})
    # The BERT case must show the splitter's quirk: an oversized tensor's own shard comes
    # before the shard it interrupted.
    bert = next(c for c in out if c["name"] == "bert_st_sharded")
    assert bert["weight_map"]["embeddings.position_embeddings.weight"] == \
        "model-00001-of-%05d.safetensors" % (len(bert["files"]) - 1), bert["weight_map"]
    return out


# ---- bad input ---------------------------------------------------------------------------


def write_index(d, weight_map, name="model.safetensors.index.json", total=0, raw=None):
    with open(os.path.join(d, name), "w") as f:
        if raw is not None:
            f.write(raw)
        else:
            f.write(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map},
                               indent=2, sort_keys=True) + "\n")


def shard_name(i, n=3, kind="safetensors"):
    if kind == "safetensors":
        return "model-%05d-of-%05d.safetensors" % (i, n)
    return "pytorch_model-%05d-of-%05d.bin" % (i, n)


def base_tensors():
    g = torch.Generator().manual_seed(99)
    return [
        {"a.weight": torch.randn(4, 4, generator=g), "a.bias": torch.randn(4, generator=g)},
        {"b.weight": torch.randn(4, 4, generator=g), "b.bias": torch.randn(4, generator=g)},
        {"c.weight": torch.randn(4, 4, generator=g), "c.bias": torch.randn(4, generator=g)},
    ]


def good_dir(d, kind="safetensors", shards=None):
    """A small valid sharded checkpoint of 3 shards (returns its weight_map)."""
    os.makedirs(d, exist_ok=True)
    shards = shards or base_tensors()
    wm = {}
    for i, part in enumerate(shards, 1):
        fname = shard_name(i, len(shards), kind)
        p = os.path.join(d, fname)
        if kind == "safetensors":
            st.save_file(part, p, metadata={"format": "pt"})
        else:
            torch.save(part, p)
        for k in part:
            wm[k] = fname
    write_index(d, wm, "model.safetensors.index.json" if kind == "safetensors"
                else "pytorch_model.bin.index.json")
    return wm


def st_header(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    return n, json.loads(b[8:8 + n]), b


def make_bad(d):
    bd = os.path.join(d, "bad")
    os.makedirs(bd, exist_ok=True)
    # A valid shard outside every case directory, for traversal, absolute names and symlinks.
    outside = os.path.join(bd, "outside.safetensors")
    st.save_file({"b.weight": torch.ones(4, 4), "b.bias": torch.ones(4)}, outside,
                 metadata={"format": "pt"})
    cases = []

    def case(name, kind="safetensors"):
        cd = os.path.join(bd, name)
        return cd, good_dir(cd, kind)

    def add(name, path, expect, expect_any=()):
        cases.append({"name": name, "path": path, "expect": list(expect),
                      "expect_any": list(expect_any)})

    idx = "model.safetensors.index.json"
    s1, s2, s3 = shard_name(1), shard_name(2), shard_name(3)

    cd, wm = case("missing_shard")
    os.remove(os.path.join(cd, s2))
    add("missing_shard", cd, [s2])
    add("missing_shard_via_index", os.path.join(cd, idx), [s2])

    cd, wm = case("index_names_absent_tensor")
    wm["b.extra"] = s2
    write_index(cd, wm)
    add("index_names_absent_tensor", cd, [s2, "b.extra"])

    cd, wm = case("tensor_in_two_shards")
    st.save_file({"b.weight": torch.zeros(4, 4), "b.bias": torch.zeros(4),
                  "a.bias": torch.zeros(4)}, os.path.join(cd, s2), metadata={"format": "pt"})
    add("tensor_in_two_shards", cd, ["a.bias"], [s1, s2])

    cd, wm = case("shard_holds_unindexed_tensor")
    st.save_file({"b.weight": torch.zeros(4, 4), "b.bias": torch.zeros(4),
                  "z.stray": torch.zeros(2)}, os.path.join(cd, s2), metadata={"format": "pt"})
    # Not part of the brief's list: recorded so the report can say what ckptio does; the
    # test only requires a clean outcome (success or a one-line error naming the shard).
    cases.append({"name": "shard_holds_unindexed_tensor", "path": cd, "expect": [s2],
                  "expect_any": [], "lenient": True})

    cd, wm = case("traversal")
    os.remove(os.path.join(cd, s2))
    for k in ("b.weight", "b.bias"):
        wm[k] = "../outside.safetensors"
    write_index(cd, wm)
    add("traversal", cd, ["../outside.safetensors"])

    cd, wm = case("traversal_inner")
    os.remove(os.path.join(cd, s2))
    for k in ("b.weight", "b.bias"):
        wm[k] = "sub/../../outside.safetensors"
    write_index(cd, wm)
    add("traversal_inner", cd, ["sub/../../outside.safetensors"])

    cd, wm = case("absolute")
    os.remove(os.path.join(cd, s2))
    for k in ("b.weight", "b.bias"):
        wm[k] = outside
    write_index(cd, wm)
    add("absolute", cd, [outside])

    cd, wm = case("symlink_outside")
    os.remove(os.path.join(cd, s2))
    os.symlink(os.path.join("..", "outside.safetensors"), os.path.join(cd, s2))
    add("symlink_outside", cd, [s2])

    cd, wm = case("symlink_dir_outside")  # a member under a symlinked directory
    os.remove(os.path.join(cd, s2))
    os.symlink("..", os.path.join(cd, "up"))
    for k in ("b.weight", "b.bias"):
        wm[k] = "up/outside.safetensors"
    write_index(cd, wm)
    add("symlink_dir_outside", cd, ["up/outside.safetensors"])

    cd, wm = case("lying_header_length")
    n, h, b = st_header(os.path.join(cd, s2))
    with open(os.path.join(cd, s2), "wb") as f:
        f.write(struct.pack("<Q", 10**6) + b[8:])
    add("lying_header_length", cd, [s2])

    cd, wm = case("lying_header_offsets")  # a tensor's offsets past the end of the data
    n, h, b = st_header(os.path.join(cd, s2))
    last = max((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][1])
    h[last]["data_offsets"][1] += 64
    h[last]["shape"] = [h[last]["shape"][0] + 16] if len(h[last]["shape"]) == 1 else \
        [h[last]["shape"][0] + 4, h[last]["shape"][1]]
    raw = json.dumps(h).encode()
    raw += b" " * (-len(raw) % 8)
    with open(os.path.join(cd, s2), "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + b[8 + n:])
    add("lying_header_offsets", cd, [s2, last])

    cd, wm = case("truncated_shard")
    n, h, b = st_header(os.path.join(cd, s3))
    last = max((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][1])
    with open(os.path.join(cd, s3), "wb") as f:
        f.write(b[:-6])
    add("truncated_shard", cd, [s3, last])

    cd, wm = case("truncated_header")
    n, h, b = st_header(os.path.join(cd, s1))
    with open(os.path.join(cd, s1), "wb") as f:
        f.write(b[:8 + n // 2])
    add("truncated_header", cd, [s1])

    cd, wm = case("header_over_limit")
    n, h, b = st_header(os.path.join(cd, s3))
    with open(os.path.join(cd, s3), "wb") as f:
        f.write(struct.pack("<Q", 100_000_001) + b[8:])
    add("header_over_limit", cd, [s3, "100000000"])

    cd, wm = case("index_not_json")
    write_index(cd, None, raw='{"metadata": {"total_size": 0}, "weight_map": {"a.weight": ')
    add("index_not_json", cd, [idx])

    cd, wm = case("index_weight_map_not_object")
    write_index(cd, None, raw='{"metadata": {"total_size": 0}, "weight_map": ["a.weight"]}\n')
    add("index_weight_map_not_object", cd, [idx, "weight_map"])

    cd, wm = case("index_file_not_string")
    write_index(cd, None, raw='{"metadata": {}, "weight_map": {"a.weight": 7}}\n')
    add("index_file_not_string", cd, [idx, "a.weight"])

    # .bin shards
    bidx = "pytorch_model.bin.index.json"
    b2, b3 = shard_name(2, kind="bin"), shard_name(3, kind="bin")
    cd, wm = case("bin_missing_shard", "bin")
    os.remove(os.path.join(cd, b2))
    add("bin_missing_shard", cd, [b2])
    add("bin_missing_shard_via_index", os.path.join(cd, bidx), [b2])

    cd, wm = case("bin_traversal", "bin")
    torch.save({"b.weight": torch.ones(4, 4), "b.bias": torch.ones(4)},
               os.path.join(bd, "outside.bin"))
    os.remove(os.path.join(cd, b2))
    for k in ("b.weight", "b.bias"):
        wm[k] = "../outside.bin"
    write_index(cd, wm, bidx)
    add("bin_traversal", cd, ["../outside.bin"])

    cd, wm = case("bin_index_names_absent_tensor", "bin")
    wm["b.extra"] = b2
    write_index(cd, wm, bidx)
    add("bin_index_names_absent_tensor", cd, [b2, "b.extra"])

    cd, wm = case("bin_truncated_shard", "bin")
    with open(os.path.join(cd, b3), "rb") as f:
        b = f.read()
    with open(os.path.join(cd, b3), "wb") as f:
        f.write(b[:len(b) // 2])
    add("bin_truncated_shard", cd, [b3])

    return cases


def make(d):
    os.makedirs(d, exist_ok=True)
    models, objs = make_models(d)
    manifest = {
        "versions": {"transformers": transformers.__version__,
                     "safetensors": safetensors.__version__, "torch": torch.__version__,
                     "huggingface_hub": huggingface_hub.__version__},
        "bin_by": BIN_BY, "models": models, "cases": make_cases(d, objs), "bad": make_bad(d),
    }
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    {"make": make}[sys.argv[1]](sys.argv[2])
