# Writes the compressed-format benchmark inputs with real PyTorch:
#   python3 make_compress_bench.py OUT_DIR [MiB]
# OUT_DIR/compress_bf16.pt and compress_fp32.pt: a transformer-like state_dict (embedding,
# attention q/k/v/o, MLP, norms; d_model 1024) of about MiB mebibytes each, weights drawn
# from normal(0, 0.02) as at initialisation, norms ones, biases zeros.
import collections
import sys

import torch

out = sys.argv[1]
mib = int(sys.argv[2]) if len(sys.argv) > 2 else 256
d, vocab = 1024, 8192
for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
    torch.manual_seed(0)
    esize = torch.finfo(dtype).bits // 8
    budget = mib * (1 << 20) // esize
    sd = collections.OrderedDict()
    sd["embed.weight"] = (torch.randn(vocab, d) * 0.02).to(dtype)
    budget -= vocab * d
    layer = 0
    while budget >= 12 * d * d:
        p = f"layers.{layer}."
        for w in ("q", "k", "v", "o"):
            sd[p + "attn." + w + ".weight"] = (torch.randn(d, d) * 0.02).to(dtype)
        sd[p + "mlp.up.weight"] = (torch.randn(4 * d, d) * 0.02).to(dtype)
        sd[p + "mlp.up.bias"] = torch.zeros(4 * d, dtype=dtype)
        sd[p + "mlp.down.weight"] = (torch.randn(d, 4 * d) * 0.02).to(dtype)
        sd[p + "norm1.weight"] = torch.ones(d, dtype=dtype)
        sd[p + "norm2.weight"] = torch.ones(d, dtype=dtype)
        budget -= 12 * d * d
        layer += 1
    if budget > 0:
        sd["lm_head.weight"] = (torch.randn(budget // d, d) * 0.02).to(dtype)
    torch.save(sd, f"{out}/compress_{name}.pt")
