"""Writes the torch adapter test inputs with real PyTorch: make_torch_cases.py OUT_DIR

cnn.pt       general checkpoint of the tutorial CNN after 3 SGD steps
io.pt        {"input": 2x3x32x32, "output": the trained net's logits (eval mode)}
dp.pt        the CNN state_dict with DataParallel's "module." prefix
cuda_tag.pt  a state_dict whose storages are tagged 'cuda:1' (torch.save's location_tag
             patched: this machine has no GPU, the bytes are ordinary)
tied.pt      {"a": w, "b": w (same tensor), "c": w[1:] (view), "d": other}
cnn_legacy.pt  the CNN state_dict in the legacy (pre-1.6) format
big.pt       nn.Linear(2500, 2100).state_dict() (21 MB: read in several 16 MiB pieces)
views.pt     {"w": a column-major view of a 120x400 tensor, "b": a slice at offset 5}
"""
import collections
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "data"))
from make_example import Net, train_general_checkpoint  # noqa: E402  (shared with the example)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    net, checkpoint = train_general_checkpoint(lr=0.01)
    torch.save(checkpoint, os.path.join(out, "cnn.pt"))
    net.eval()
    inp = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.save({"input": inp, "output": net(inp)}, os.path.join(out, "io.pt"))
    torch.save(collections.OrderedDict(("module." + k, v) for k, v in net.state_dict().items()),
               os.path.join(out, "dp.pt"))

    lin = nn.Linear(3, 2)
    orig = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:1"
    try:
        torch.save(lin.state_dict(), os.path.join(out, "cuda_tag.pt"))
    finally:
        torch.serialization.location_tag = orig
    torch.save(lin.state_dict(), os.path.join(out, "linear.pt"))

    torch.save(net.state_dict(), os.path.join(out, "cnn_legacy.pt"),
               _use_new_zipfile_serialization=False)
    torch.manual_seed(1)
    torch.save(nn.Linear(2500, 2100).state_dict(), os.path.join(out, "big.pt"))
    # fc1's shapes, stored as views that cannot be read straight into a dense tensor.
    torch.save({"weight": torch.randn(400, 120).t(), "bias": torch.randn(125)[5:]},
               os.path.join(out, "views.pt"))

    w = torch.arange(12.0).reshape(3, 4)
    torch.save({"a": w, "b": w, "c": w[1:], "d": torch.ones(2)}, os.path.join(out, "tied.pt"))


if __name__ == "__main__":
    main()
