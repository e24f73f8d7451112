"""ZipNN on the tensors of a torch.save file, tensor by tensor as its torch and safetensors
plugins compress, on one thread: size ratio and encode / decode GB/s per core (bytes per
process CPU-second, as bench/compress_bench.cc reports ckptio's torch-zip-zstd codec, so
other users of a shared machine do not distort it). One JSON line:
  {"file", "raw_bytes", "packed_bytes", "ratio", "encode_GBps_per_core",
   "decode_GBps_per_core", "decode_GBps_wall"}

  zipnn_peer.py FILE [--repeat N]      (decode: best of N passes)

Every decoded tensor is checked against the original. ZipNN's compress rewrites its input
buffer in place (the byte regrouping), so it is given a copy.
"""
import argparse
import json
import time

import torch
import zipnn

DTYPES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    sd = torch.load(a.file, mmap=True)
    raw_total = packed_total = 0
    enc_cpu = 0.0
    packed = []
    for t in sd.values():
        raw = t.contiguous().view(torch.uint8).numpy().tobytes()
        z = zipnn.ZipNN(input_format="byte", bytearray_dtype=DTYPES[t.dtype], threads=1)
        work = bytearray(raw)
        c0 = time.process_time()
        c = z.compress(work)
        enc_cpu += time.process_time() - c0
        packed.append((z, c, raw))
        raw_total += len(raw)
        packed_total += len(c)
    best_cpu = best_wall = float("inf")
    for _ in range(a.repeat):
        cpu = wall = 0.0
        for z, c, raw in packed:
            c0, w0 = time.process_time(), time.perf_counter()
            d = z.decompress(c)
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            if d != raw:
                raise SystemExit(f"zipnn: a tensor of {a.file} did not round-trip")
        best_cpu, best_wall = min(best_cpu, cpu), min(best_wall, wall)
    print(json.dumps({"file": a.file, "raw_bytes": raw_total, "packed_bytes": packed_total,
                      "ratio": packed_total / raw_total,
                      "encode_GBps_per_core": raw_total / enc_cpu / 1e9,
                      "decode_GBps_per_core": raw_total / best_cpu / 1e9,
                      "decode_GBps_wall": raw_total / best_wall / 1e9}))


if __name__ == "__main__":
    main()
