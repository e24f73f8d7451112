"""Writes the benchmark checkpoints with real PyTorch (run with /usr/bin/python3).

  make_bench_files.py OUT_DIR [--gib 1.0] [--small 20000]

transformer_fp32.pt / .legacy.pt : a transformer-like state_dict (embeddings, per-layer
    attention and MLP weights, layer norms; random normal, std 0.02) of about --gib GiB
transformer_bf16.pt              : the same layout in bfloat16
small_tensors.pt                 : --small tiny tensors (per-tensor overhead)
optimizer.pt                     : model + Adam state after one step (general checkpoint)
Existing files of the right size are kept, so reruns are quick.
"""
import argparse
import collections
import os

import torch


def transformer_state_dict(target_bytes, dtype):
    d, vocab = 1024, 32000
    elem = torch.tensor([], dtype=dtype).element_size()
    sd = collections.OrderedDict()
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return (torch.randn(*shape, generator=g) * 0.02).to(dtype)

    sd["embed.weight"] = randn(vocab, d)
    used = vocab * d * elem
    layer = 0
    per_layer = (4 * d * d + 2 * 4 * d * d + 4 * d) * elem
    while used + per_layer <= target_bytes:
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


def save(obj, path, legacy=False):
    if os.path.exists(path):
        return
    tmp = path + ".tmp"
    torch.save(obj, tmp, _use_new_zipfile_serialization=not legacy)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--small", type=int, default=20000)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    target = int(a.gib * (1 << 30))
    tag = f"{a.gib:g}g"
    fp32 = os.path.join(a.out, f"transformer_fp32_{tag}.pt")
    if not (os.path.exists(fp32) and os.path.exists(fp32[:-3] + ".legacy.pt")):
        sd = transformer_state_dict(target, torch.float32)
        save(sd, fp32)
        save(sd, fp32[:-3] + ".legacy.pt", legacy=True)
        del sd
    bf16 = os.path.join(a.out, f"transformer_bf16_{tag}.pt")
    if not os.path.exists(bf16):
        save(transformer_state_dict(target, torch.bfloat16), bf16)
    small = collections.OrderedDict(
        (f"t{i}", torch.full((4,), float(i))) for i in range(a.small))
    save(small, os.path.join(a.out, "small_tensors.pt"))
    model = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(8, 512)).sum().backward()
    opt.step()
    save({"epoch": 1, "model_state_dict": model.state_dict(),
          "optimizer_state_dict": opt.state_dict(), "loss": 0.5},
         os.path.join(a.out, "optimizer.pt"))


if __name__ == "__main__":
    main()
