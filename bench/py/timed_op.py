"""Times Python peers (py/peer_ops.py) the way bench/timed_op.cc times ckptio and LibTorch:
one JSON line per timed run,
  {"op", "file", "run", "seconds", "peak_bytes"}   (or {"op", "file", "error"})
peak_bytes is what the run added to the process's resident set at its peak (py/memstat.py);
pages of a file mapping count too (page cache a mapping made resident in the process).

  timed_op.py [--repeat N] OP=FILE...

bench/run.py starts one process per timed run (--repeat 1; its --quick gives one process
all its specs), so every load goes into fresh memory, as a process's first load of a checkpoint does, and its peak is its own; it warms
or evicts the file's pages before. Untimed: the op's imports and prepare, and for saves
removing the previous output and flushing dirty pages (os.sync), so each save writes a new
file into a settled page cache.
"""
import argparse
import gc
import importlib
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import memstat  # noqa: E402
from peer_ops import OPS  # noqa: E402


def out_path(path):
    """x.pt -> x.bench-out.pt (x.shards -> x.bench-out.shards, a directory)."""
    stem, ext = os.path.splitext(path)
    return stem + ".bench-out" + ext


def remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def run_op(name, path, repeat):
    op = OPS[name]
    for m in op.imports:
        importlib.import_module(m)
    ctx = op.prepare(path) if op.prepare else None
    saving = op.kind.startswith("save")
    target = out_path(path) if saving else path
    for i in range(repeat):
        if saving:
            remove(target)
            os.sync()
        gc.collect()
        rss0 = memstat.start_peak()
        t0 = time.perf_counter()
        result = op.run(target, ctx)
        seconds = time.perf_counter() - t0
        peak = memstat.peak_since(rss0)
        del result
        print(json.dumps({"op": name, "file": path, "run": i, "seconds": seconds,
                          "peak_bytes": peak}), flush=True)
    if saving:
        remove(target)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("specs", nargs="+", help="OP=FILE")
    a = ap.parse_args()
    for spec in a.specs:
        name, path = spec.rsplit("=", 1)
        try:
            run_op(name, path, a.repeat)
        except Exception as e:  # one broken peer must not hide the others' results
            print(json.dumps({"op": name, "file": path, "error": f"{type(e).__name__}: {e}"}),
                  flush=True)


if __name__ == "__main__":
    main()
