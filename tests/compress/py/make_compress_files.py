# Writes the checkpoints the compressed-format tests convert, with Debian's real PyTorch:
#   python3 make_compress_files.py OUT_DIR
# zip.pt / legacy.pt: a small transformer-like state_dict in bf16, fp16, fp32 and int64
# (tied weights, a view, odd sizes) inside a general checkpoint dict.
import sys
import collections
import torch

out = sys.argv[1]
torch.manual_seed(0)
sd = collections.OrderedDict()
sd["emb.weight"] = (torch.randn(300, 64) * 0.02).to(torch.bfloat16)
sd["head.weight"] = sd["emb.weight"]  # tied
sd["block.0.attn.qkv"] = (torch.randn(192, 64) * 0.02).to(torch.bfloat16)
sd["block.0.mlp.fc"] = torch.randn(257, 33) * 0.02  # fp32, odd size
sd["block.0.mlp.big"] = torch.randn(400, 400) * 0.02  # 640 KB: raw planes over 128 KiB
sd["block.0.mlp.fc_half"] = (torch.randn(100, 7) * 0.02).to(torch.float16)
sd["block.0.norm"] = torch.ones(64)
sd["view"] = sd["block.0.mlp.fc"][3:10, 1:5]
sd["steps"] = torch.arange(1000, dtype=torch.int64)
sd["mask"] = torch.rand(50) > 0.5
sd["empty"] = torch.zeros(0)
ckpt = {"model": sd, "epoch": 7, "lr": 1e-3, "name": "tiny"}
torch.save(ckpt, out + "/zip.pt")
torch.save(ckpt, out + "/legacy.pt", _use_new_zipfile_serialization=False)

# big_legacy.pt: 64 MiB in 16 storages, for the test that an inner torch-legacy file is
# streamed (peak memory well under the decompressed size).
big = collections.OrderedDict((f"layer.{i}", torch.randn(1 << 20) * 0.02) for i in range(16))
torch.save(big, out + "/big_legacy.pt", _use_new_zipfile_serialization=False)
