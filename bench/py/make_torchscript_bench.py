"""Writes the TorchScript benchmark inputs (bench/torchscript_bench.cc) with Debian's PyTorch.

usage: /usr/bin/python3 bench/py/make_torchscript_bench.py OUTDIR
  ts_small.pt  torch.jit.script of a small MLP (3 Linear layers + BatchNorm, ~0.2 MiB)
  ts_large.pt  torch.jit.script of a stack of 32 Linear(2048, 2048) + LayerNorm (~512 MiB float32)
Files already present are kept.
"""
import os
import sys

import torch
import torch.nn as nn


def small():
    return nn.Sequential(nn.Linear(128, 256), nn.BatchNorm1d(256), nn.ReLU(),
                         nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


def large():
    layers = []
    for _ in range(32):
        layers += [nn.Linear(2048, 2048), nn.LayerNorm(2048)]
    return nn.Sequential(*layers)


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    for name, make in (("ts_small.pt", small), ("ts_large.pt", large)):
        path = os.path.join(out, name)
        if os.path.exists(path):
            continue
        with torch.no_grad():
            torch.jit.save(torch.jit.script(make().eval()), path)
        print(path, os.path.getsize(path))


if __name__ == "__main__":
    main(sys.argv[1])
