"""What the exponent byte of bf16 weights costs to code, for comparing codecs' ratios
(results/<machine>.notes.md): the plane ckptio's torch-zip-zstd and ZipNN both separate
(ckptio's rot16 grouping: y = x << 1 | x >> 15, exponent = y >> 8), its order-0 entropy and
the exact cost of a static Huffman code; optionally writes the plane for zstd's CLI.

  bf16_planes.py FILE.pt [--out PLANE] [--max-elements N]
"""
import argparse
import heapq

import numpy as np
import torch


def huffman_bits(counts):
    """Mean code length of a static Huffman code for these symbol counts."""
    heap = [(c, s, [s]) for s, c in enumerate(counts) if c]
    depth = dict.fromkeys(range(len(counts)), 0)
    heapq.heapify(heap)
    tie = len(counts)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            depth[s] += 1
        tie += 1
        heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
    return sum(counts[s] * d for s, d in depth.items()) / counts.sum()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--out")
    ap.add_argument("--max-elements", type=int, default=64 << 20)
    a = ap.parse_args()
    planes, n = [], 0
    for t in torch.load(a.file, mmap=True).values():
        if t.dtype != torch.bfloat16 or n >= a.max_elements:
            continue
        x = t.contiguous().view(torch.int16).numpy().view(np.uint16).ravel()
        y = ((x.astype(np.uint32) << 1) | (x >> 15)) & 0xFFFF
        planes.append((y >> 8).astype(np.uint8))
        n += x.size
    e = np.concatenate(planes)[: a.max_elements]
    counts = np.bincount(e, minlength=256)
    p = counts[counts > 0] / counts.sum()
    print(f"{e.size} exponent bytes: entropy {float(-(p * np.log2(p)).sum()):.3f} bits, "
          f"static Huffman {huffman_bits(counts):.3f} bits per element")
    if a.out:
        e.tofile(a.out)


if __name__ == "__main__":
    main()
