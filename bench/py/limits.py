"""The disk's limits for bench/run.py's cold loads, and the compression comparison (ckptio's
torch-zip-zstd codec against ZipNN). The memory and write limits are timed_op's (limit_ops.h),
run in the same rounds as the peers.

  disk reads: the file read with preads after evicting its pages, in one stream of 16 MiB
    reads (the disk's sequential read) and by 16 threads taking 4 MiB chunks in turn (what a
    deep device queue gets)
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import memstat  # noqa: E402


def gbench(cmd):
    """Best real seconds of each Google Benchmark run name in one program run."""
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    best = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type") != "iteration" or b.get("error_occurred"):
            continue
        secs = b["real_time"] * {"ms": 1e-3, "us": 1e-6, "ns": 1e-9, "s": 1.0}[b["time_unit"]]
        name = b["run_name"]
        if name not in best or secs < best[name][0]:
            best[name] = (secs, b)
    return best


def disk_read_seconds(path, threads=1, chunk=16 << 20):
    """Seconds to read the whole file with its pages evicted first, as buffered reads (with
    the kernel's readahead) see the disk: one sequential stream by default; with threads,
    that many readers taking the next chunk in turn (a deeper device queue, as loaders with
    many reader threads keep)."""
    import threading
    memstat.evict(path)
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    next_off, lock = [0], threading.Lock()

    def reader():
        view = memoryview(bytearray(chunk))
        while True:
            with lock:
                off = next_off[0]
                next_off[0] += chunk
            if off >= size or os.preadv(fd, [view], off) <= 0:
                return

    try:
        t0 = time.perf_counter()
        pool = [threading.Thread(target=reader) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return time.perf_counter() - t0
    finally:
        os.close(fd)


def compression(build_bin, python, here, pt_file, repeat):
    """ckptio's chunked zstd codec (torch-zip-zstd's) and ZipNN on the same tensors, one
    thread each: {"ckptio": {...}, "zipnn": {...}} with ratio and GB/s per core."""
    best = gbench([os.path.join(build_bin, "compress_bench"), "--benchmark_format=json",
                   "--benchmark_filter=^(encode|decode)/.*/threads:1/", pt_file])
    ck = {}
    for run_name, (_, b) in best.items():
        op = run_name.split("/", 1)[0]
        if op == "encode":
            ck["ratio"] = b["ratio"]
            ck["encode_GBps_per_core"] = b["GBps_per_cpu_s"]
        elif op == "decode":
            ck["decode_GBps_per_core"] = b["GBps_per_cpu_s"]
            ck["decode_GBps_wall"] = b["bytes_per_second"] / 1e9
    zp = subprocess.run([python, os.path.join(here, "py", "zipnn_peer.py"), pt_file,
                         "--repeat", str(repeat)], check=True, capture_output=True, text=True)
    return {"ckptio": ck, "zipnn": json.loads(zp.stdout.strip().splitlines()[-1])}
