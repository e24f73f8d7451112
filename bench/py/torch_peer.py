"""Times Python's torch.load on the given files, in the same run as the C++ benchmarks.

  torch_peer.py --repeat N FILE...   -> one JSON object per line:
  {"file", "op": "torch.load", "best_s", "median_s", "bytes"}
Each measurement loads the whole file into memory (map_location='cpu'); the page cache is
warm (one untimed load first); freeing the loaded object is not timed. torch.save is timed too, to a temporary file beside the
input, without fsync (as ckptio's save benchmark).
"""
import argparse
import json
import os
import statistics
import tempfile
import time

import torch


def storage_bytes(obj, seen=None):
    seen = set() if seen is None else seen
    if isinstance(obj, torch.Tensor):
        s = obj.storage()
        key = s.data_ptr()
        if key in seen:
            return 0
        seen.add(key)
        return s.size() * s.element_size()
    if isinstance(obj, dict):
        return sum(storage_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(storage_bytes(v, seen) for v in obj)
    return 0


def timed(fn, repeat):
    """Best and median seconds of fn(); freeing its result is not timed (as in C++)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        del result
    return min(times), statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--save", action="store_true", help="also time torch.save")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    for f in a.files:
        obj = torch.load(f, map_location="cpu")  # warm the page cache
        nbytes = storage_bytes(obj)
        best, med = timed(lambda: torch.load(f, map_location="cpu"), a.repeat)
        print(json.dumps({"file": f, "op": "torch.load", "best_s": best, "median_s": med,
                          "bytes": nbytes}), flush=True)
        if a.save:
            legacy = f.endswith(".legacy.pt")
            with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(f))) as d:
                out = os.path.join(d, "out.pt")
                best, med = timed(lambda: torch.save(
                    obj, out, _use_new_zipfile_serialization=not legacy), a.repeat)
            print(json.dumps({"file": f, "op": "torch.save", "best_s": best, "median_s": med,
                              "bytes": nbytes}), flush=True)
        del obj


if __name__ == "__main__":
    main()
