"""Writes the benchmark checkpoints with real PyTorch (run with the project's .venv python).

  make_bench_files.py OUT_DIR [--gib 1.0] [--small 20000] [--which fp32,bf16,small]

transformer_fp32_<gib>g.pt : a transformer-like state_dict (embeddings, per-layer attention
    and MLP weights, layer norms; random normal, std 0.02) of about --gib GiB
transformer_bf16_<gib>g.pt : the same layout in bfloat16
small_tensors_<n>.pt       : --small tiny tensors (per-tensor overhead)
Each also in the peers' own formats, from the same tensors: <stem>.safetensors
(safetensors.torch.save_file) and <stem>.tensors (tensorizer's TensorSerializer.write_module,
which its README recommends over write_state_dict; <stem>.tensors.error says why where it
cannot). The bf16 model also as Hugging Face shards, <stem>.shards/ (model-0000i-of-0000N
.safetensors and model.safetensors.index.json, written by huggingface_hub's
save_torch_state_dict, the split transformers' save_pretrained uses, with max_shard_size
peer_ops.shard_limit: 4 shards). Prints the paths (--which: of those files only) as one
JSON object. Existing files are kept, so reruns are quick.
"""
import argparse
import collections
import json
import os

import torch

from peer_ops import mirror, shard_limit  # mirror: the modules the benchmarks load into


def transformer_state_dict(target_bytes, dtype):
    d, vocab = 1024, 32000
    elem = torch.tensor([], dtype=dtype).element_size()
    sd = collections.OrderedDict()
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return (torch.randn(*shape, generator=g) * 0.02).to(dtype)

    # The embedding shrinks with the target, so a --quick run still has many layers.
    vocab = max(256, min(vocab, target_bytes // (8 * d * elem)))
    sd["embed.weight"] = randn(vocab, d)
    used = vocab * d * elem
    layer = 0
    per_layer = (4 * d * d + 2 * 4 * d * d + 4 * d) * elem
    while used + per_layer <= target_bytes or layer == 0:
        p = f"layers.{layer}."
        for name in ("q", "k", "v", "o"):
            sd[p + f"attn.{name}.weight"] = randn(d, d)
        sd[p + "mlp.up.weight"] = randn(4 * d, d)
        sd[p + "mlp.down.weight"] = randn(d, 4 * d)
        sd[p + "ln1.weight"] = torch.ones(d, dtype=dtype)
        sd[p + "ln1.bias"] = torch.zeros(d, dtype=dtype)
        sd[p + "ln2.weight"] = torch.ones(d, dtype=dtype)
        sd[p + "ln2.bias"] = torch.zeros(d, dtype=dtype)
        used += per_layer
        layer += 1
    return sd


def write_all(make_sd, pt, shards=False):
    """pt and its peer-format twins, each written only when missing (via a temporary)."""
    stem = pt[:-3]
    outs = {"pt": pt, "safetensors": stem + ".safetensors", "tensors": stem + ".tensors"}
    if shards:
        outs["shards"] = stem + ".shards"
    missing = [k for k, p in outs.items()
               if not os.path.exists(p) and not os.path.exists(p + ".error")]
    if not missing:
        return outs
    sd = torch.load(pt) if os.path.exists(pt) else make_sd()
    for kind in missing:
        tmp = outs[kind] + ".tmp"
        if kind == "pt":
            torch.save(sd, tmp)
        elif kind == "shards":
            import shutil
            from huggingface_hub import save_torch_state_dict
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            save_torch_state_dict(sd, tmp, max_shard_size=shard_limit(
                sum(t.nbytes for t in sd.values())))
        elif kind == "safetensors":
            from safetensors.torch import save_file
            save_file(sd, tmp)
        else:
            from tensorizer import TensorSerializer
            try:
                s = TensorSerializer(tmp)
                s.write_module(mirror(sd, copy=False))
                s.close()
            except RuntimeError as e:
                # tensorizer reserves 256 KiB for its tensor index and refuses more tensors
                # than fit ("Metadata overflow" for 20,000): its loads then report this.
                os.remove(tmp)
                with open(outs[kind] + ".error", "w") as f:
                    f.write(f"tensorizer cannot write this file: {type(e).__name__}: {e}")
                continue
        os.replace(tmp, outs[kind])
    return outs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--small", type=int, default=20000)
    ap.add_argument("--which", default="fp32,bf16,small",
                    help="comma-separated: the files to write and print")
    a = ap.parse_args()
    which = set(a.which.split(","))
    os.makedirs(a.out, exist_ok=True)
    target = int(a.gib * (1 << 30))
    tag = f"{a.gib:g}g"
    makers = {
        "fp32": lambda: write_all(lambda: transformer_state_dict(target, torch.float32),
                                  os.path.join(a.out, f"transformer_fp32_{tag}.pt")),
        "bf16": lambda: write_all(lambda: transformer_state_dict(target, torch.bfloat16),
                                  os.path.join(a.out, f"transformer_bf16_{tag}.pt"), shards=True),
        "small": lambda: write_all(lambda: collections.OrderedDict(
            (f"t{i}", torch.full((4,), float(i))) for i in range(a.small)),
            os.path.join(a.out, f"small_tensors_{a.small}.pt")),
    }
    print(json.dumps({k: make() for k, make in makers.items() if k in which}))


if __name__ == "__main__":
    main()
