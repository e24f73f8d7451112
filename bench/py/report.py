"""Turns bench/run.py's results (<machine>.json) into <machine>.md: a summary, one table and
one chart per workload, the compression comparison and the targets. Hand-written analysis
(profiles of missed targets) lives in <machine>.notes.md beside it and is appended, so a
rerun regenerates the figures without losing it.

  report.py RESULTS.json [OUT_DIR]     regenerate from saved results
"""
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from targets import targets  # noqa: E402
from workloads import WORKLOADS  # noqa: E402

PACKAGES = ("torch", "safetensors", "tensorizer", "runai-model-streamer", "fastsafetensors",
            "zipnn", "transformers", "huggingface_hub")
FORMATS = {"": ".pt (torch.save zip)", ".libtorch_pickle.pt": "LibTorch pickle_save",
           ".libtorch_archive.pt": "LibTorch serialize archive",
           ".libtorch_jit.pt": "TorchScript archive", ".pt": ".pt (torch.save zip)",
           ".safetensors": ".safetensors", ".tensors": "tensorizer .tensors",
           ".shards": "Hugging Face shards + index"}


def ckptio_revision():
    """The commit the build came from, and whether the library's sources differ from it."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    git = lambda *args: subprocess.run(["git", "-C", root, *args], capture_output=True,
                                       text=True).stdout.strip()
    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "host", "formats", "plugins", "sdk")
    return rev + (" with uncommitted changes to the library" if dirty else "")


def machine_facts(name):
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            versions[p] = "not installed"
    return {"name": name, "cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
            "ckptio": ckptio_revision(),
            "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_average": os.getloadavg()[0], "versions": versions}


def summarize(runs):
    ok = [r for r in runs if "seconds" in r]
    if not ok:
        return {"error": next((r["error"] for r in runs if "error" in r), "no runs")}
    secs = [r["seconds"] for r in ok]
    return {"best": min(secs), "median": statistics.median(secs), "runs": len(ok),
            "peak": max(r["peak_bytes"] for r in ok)}


def format_of(path):
    for suffix in (".libtorch_pickle.pt", ".libtorch_archive.pt", ".libtorch_jit.pt"):
        if path.endswith(suffix):
            return FORMATS[suffix]
    return FORMATS.get(os.path.splitext(path)[1], os.path.splitext(path)[1])


def workload_limits(results, w):
    lim = results["workloads"][w.key].get("limits", {})
    return {k: lim[k] for k in w.limits if k in lim}


def table(results, w):
    """Markdown lines for one workload, and the rows (label, seconds) for its chart."""
    data = results["workloads"][w.key]
    facts = results["facts"][w.file]
    nbytes, ntensors = facts["bytes"], facts["tensors"]
    stats = {n: summarize(r) for n, r in data["peers"].items()}
    ref = stats.get(w.ckptio, {}).get("best")
    small = w.file == "small"
    per_tensor = " | µs per tensor" if small else ""
    size = f"{nbytes / 2**20:.0f} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:.0f} KiB"
    lines = [f"### {w.title}", "",
             f"{size} of tensor bytes in {ntensors} tensors; each run in a new process "
             f"(a peer over 5x ckptio's time in its first run, or failing, runs once). GB/s: "
             f"tensor bytes / best seconds. Peak RSS: what the run added to its process's "
             f"resident set at its peak.", "",
             f"| peer | format | best s | median s | runs | GB/s{per_tensor} | × ckptio's time | "
             f"peak RSS MiB | peak / tensor bytes |",
             "|---|---|---:|---:|---:|---:|" + ("---:|" if small else "") + "---:|---:|---:|"]
    order = sorted(stats, key=lambda n: (n != w.ckptio, stats[n].get("best", float("inf"))))
    chart = []
    for n in order:
        s = stats[n]
        label = f"**{n}**" if n == w.ckptio else n
        fmt = format_of(data["paths"][n])
        if "error" in s:
            lines.append(f"| {label} | {fmt} | failed: {s['error'].replace('|', '/')} |"
                         + " |" * (6 + small))
            continue
        us = f" | {s['best'] / ntensors * 1e6:.2f}" if small else ""
        ratio = f"{s['best'] / ref:.2f}" if ref else "-"
        lines.append(f"| {label} | {fmt} | {s['best']:.4f} | {s['median']:.4f} | {s['runs']} | "
                     f"{nbytes / s['best'] / 1e9:.2f}{us} | {ratio} | {s['peak'] / 2**20:.1f} | "
                     f"{s['peak'] / nbytes:.3f} |")
        chart.append((n, s["best"]))
    lim = workload_limits(results, w)
    for name, secs in lim.items():
        us = f" | {secs / ntensors * 1e6:.2f}" if small else ""
        lines.append(f"| *{name}* | | {secs:.4f} | | | {nbytes / secs / 1e9:.2f}{us} | "
                     f"{secs / ref:.2f} | | |" if ref else f"| *{name}* | | {secs:.4f} | | | |")
    return lines + [""], chart, lim


def chart(results, w, rows, lim, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    facts = results["facts"][w.file]
    small, lazy = w.file == "small", w.kind.startswith("lazy")
    if small:
        value = lambda s: s / facts["tensors"] * 1e6
        ylabel = "µs per tensor (lower is better)"
    elif lazy:
        value = lambda s: s * 1e3
        ylabel = "milliseconds (lower is better)"
    else:
        value = lambda s: facts["bytes"] / s / 1e9
        ylabel = "GB/s of tensor bytes (higher is better)"
    fig, ax = plt.subplots(figsize=(10, 4.8))
    names = [n for n, _ in rows]
    colors = ["tab:red" if n == w.ckptio else "tab:blue" for n in names]
    ax.bar(range(len(rows)), [value(s) for _, s in rows], color=colors)
    ax.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=7)
    styles = iter(["--", ":", "-.", (0, (5, 1))])
    for name, secs in lim.items():
        ax.axhline(value(secs), color="black", linestyle=next(styles), linewidth=1, label=name)
    if small:
        ax.axhline(3.0, color="tab:green", linestyle="--", linewidth=1, label="target: 3 µs")
    if lazy or small:  # spans of 100x and more between peers
        ax.set_yscale("log")
    if lim or small:
        ax.legend(fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(w.title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def compression_lines(results):
    comp = results.get("compression") or {}
    if not comp:
        return []
    lines = ["### Compression: ckptio's torch-zip-zstd codec and ZipNN on the same tensors", "",
             "One thread each; per-core rates are raw bytes / process CPU-seconds. Ratio: "
             "compressed / raw bytes (lower is better).", "",
             "| weights | codec | ratio | encode GB/s per core | decode GB/s per core | "
             "decode GB/s wall (1 thread) |", "|---|---|---:|---:|---:|---:|"]
    for kind, c in comp.items():
        for codec, label in (("ckptio", "**ckptio torch-zip-zstd**"), ("zipnn", "ZipNN")):
            v = c.get(codec, {})
            if "ratio" not in v:
                lines.append(f"| {kind} | {label} | failed | | | |")
                continue
            lines.append(f"| {kind} | {label} | {v['ratio']:.4f} | "
                         f"{v['encode_GBps_per_core']:.2f} | {v['decode_GBps_per_core']:.2f} | "
                         f"{v['decode_GBps_wall']:.2f} |")
    return lines + [""]


def summary_lines(results):
    lines = ["| workload | ckptio s | fastest peer | its s | ckptio's speedup | "
             "ckptio vs limit |", "|---|---:|---|---:|---:|---|"]
    for w in WORKLOADS:
        if w.key not in results["workloads"]:
            continue
        stats = {n: summarize(r) for n, r in results["workloads"][w.key]["peers"].items()}
        ref = stats.get(w.ckptio, {}).get("best")
        peers = [(s["best"], n) for n, s in stats.items()
                 if "best" in s and not n.startswith("ckptio")]
        if not ref or not peers:
            continue
        best_s, best_n = min(peers)
        lim = workload_limits(results, w)
        lim_txt = ", ".join(f"{secs / ref:.2f}x {k}" for k, secs in lim.items()) or "-"
        lines.append(f"| {w.key} | {ref:.4f} | {best_n} | {best_s:.4f} | {best_s / ref:.2f}x | "
                     f"{lim_txt} |")
    return lines + ["", "ckptio vs limit: the limit's seconds / ckptio's (1.00x = at the "
                    "limit)."]


def rerun_lines(results):
    """Which workloads (and the compression comparison) a later `--only` run measured, and
    how that run differed from the one in the header: its time, load, ckptio and packages."""
    runs = {}
    for w in WORKLOADS:
        run = results["workloads"].get(w.key, {}).get("run")
        if run:
            runs.setdefault(json.dumps(run, sort_keys=True), []).append(w.key)
    if results.get("compression_run"):
        runs.setdefault(json.dumps(results["compression_run"], sort_keys=True),
                        []).append("compression")
    lines = []
    base = results["machine"]["versions"]
    for run_json, keys in runs.items():
        run = json.loads(run_json)
        changed = [f"{k} {v}" for k, v in run["versions"].items() if base.get(k) != v]
        if run.get("kernel") != results["machine"].get("kernel"):
            changed.insert(0, f"Linux {run.get('kernel')}")
        lines.append(f"Rerun later with `--only` on the same machine: {', '.join(keys)}, on "
                     f"{run['when']} (load average {run['load_average']:.1f} at the start); "
                     f"ckptio {run.get('ckptio', '?')}; {run['repeat']} runs per peer"
                     + "".join("; " + c for c in changed)
                     + ". Its ratios are against peers of that run.")
    return lines + [""] if lines else []


def write(results, out_dir, name):
    m = results["machine"]
    v = m["versions"]
    lines = [f"# CPU benchmarks: ckptio and the alternatives ({name})", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}; run "
             f"{m['when']} (load average {m['load_average']:.1f} at the start); ckptio "
             f"{m.get('ckptio', '?')}. Peers: "
             + ", ".join(f"{k} {x}" for k, x in v.items()) + "; LibTorch is the torch wheel's. "
             f"Checkpoint size {results['gib']:g} GiB, {results['repeat']} runs per peer "
             "(round-robin, each in a new process, so every load goes into fresh memory, with "
             "the allocator's defaults). Warm: the file's pages resident; cold: evicted "
             "with posix_fadvise(DONTNEED) before each run. Saves write a new file after an "
             "untimed sync. Produced by `.venv/bin/python bench/run.py`.", ""]
    lines += rerun_lines(results)
    if results.get("quick"):
        lines += ["**--quick run: tiny files, one run, Python peers in one process, no "
                  "eviction. A smoke test; the figures mean nothing.**", ""]
    lines += ["## Summary", ""] + summary_lines(results) + [""]
    lines += ["## Targets", ""]
    lines += ["| target | measured | goal | result |", "|---|---|---|---|"]
    for t in targets(results):
        lines.append(f"| {t['target']} | {t['measured']} | {t['goal']} | {t['result']} |")
    lines += ["", "## Workloads", ""]
    for w in WORKLOADS:
        if w.key not in results["workloads"]:
            continue
        tl, rows, lim = table(results, w)
        png = f"{name}-{w.key}.png"
        try:
            chart(results, w, rows, lim, os.path.join(out_dir, png))
            tl += [f"![{w.title}]({png})", ""]
        except ImportError:
            pass
        lines += tl
    lines += compression_lines(results)
    notes = os.path.join(out_dir, name + ".notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            lines += ["", f.read().rstrip()]
    md = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, name + ".md"), "w") as f:
        f.write(md)
    return md


if __name__ == "__main__":
    with open(sys.argv[1]) as fh:
        res = json.load(fh)
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(sys.argv[1]))
    print(write(res, out, res["machine"]["name"]))
