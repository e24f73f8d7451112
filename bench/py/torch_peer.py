"""Times Python's torch.load on the given files, in the same run as the C++ benchmarks.

  torch_peer.py --repeat N FILE...   -> one JSON object per line:
  {"file", "op": "torch.load", "best_s", "median_s", "bytes"}
Each measurement loads the whole file into memory (map_location='cpu'); for a state_dict
file, model.load_state_dict(torch.load(f)) into a module mirroring it is timed too (op
"torch.load+load_state_dict"); the page cache is
warm (one untimed load first); freeing the loaded object is not timed. torch.save is timed too, to a temporary file beside the
input, without fsync (as ckptio's save benchmark): before each save, untimed, the previous
output is removed and dirty pages are flushed (os.sync).
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


def mirror(sd):
    """A module whose parameters mirror a state_dict's keys, initialized with copies (its
    memory touched, as a constructed model's is)."""
    root = torch.nn.Module()
    for key, value in sd.items():
        *path, leaf = key.split(".")
        m = root
        for name in path:
            if name not in m._modules:
                m.add_module(name, torch.nn.Module())
            m = m._modules[name]
        m.register_parameter(leaf, torch.nn.Parameter(value.clone(), requires_grad=False))
    return root


def timed(fn, repeat, before=None):
    """Best and median seconds of fn(); freeing its result and before() are not timed (as in
    C++)."""
    times = []
    for _ in range(repeat):
        if before:
            before()
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

                def settle():
                    # A new file into a settled page cache, as ckptio's save benchmark: no
                    # freeing of the previous output, no throttling behind earlier writeback.
                    if os.path.exists(out):
                        os.remove(out)
                    os.sync()

                best, med = timed(lambda: torch.save(
                    obj, out, _use_new_zipfile_serialization=not legacy), a.repeat, settle)
                print(json.dumps({"file": f, "op": "torch.save", "best_s": best,
                                  "median_s": med, "bytes": nbytes}), flush=True)

                def save_fsync():
                    # torch.save to the path (its C++ file writer, as above), then fsync of
                    # the file: the durable save, reported apart from the page-cache one.
                    torch.save(obj, out, _use_new_zipfile_serialization=not legacy)
                    fd = os.open(out, os.O_RDONLY)
                    os.fsync(fd)
                    os.close(fd)

                best, med = timed(save_fsync, a.repeat, settle)
                print(json.dumps({"file": f, "op": "torch.save+fsync", "best_s": best,
                                  "median_s": med, "bytes": nbytes}), flush=True)
        # Last: the model's memory, once freed, stays in this process's heap, where later
        # allocations reuse it without page faults (bench/run.py runs one process per file).
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            model = mirror(obj)
            best, med = timed(lambda: model.load_state_dict(torch.load(f, map_location="cpu")),
                              a.repeat)
            print(json.dumps({"file": f, "op": "torch.load+load_state_dict", "best_s": best,
                              "median_s": med, "bytes": nbytes}), flush=True)
            del model
        del obj


if __name__ == "__main__":
    main()
