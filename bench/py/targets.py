"""ckptio's performance targets, checked against one run's results (bench/run.py): each is
a ratio against a peer or a limit measured in the same run, so it means the same on any
machine. Missed by: how far the measured ratio is from the goal, in percent of the goal.
"""

def _best(results, wkey, op):
    runs = results["workloads"].get(wkey, {}).get("peers", {}).get(op, [])
    secs = [r["seconds"] for r in runs if "seconds" in r]
    return min(secs) if secs else None


def _peak(results, wkey, op):
    runs = results["workloads"].get(wkey, {}).get("peers", {}).get(op, [])
    peaks = [r["peak_bytes"] for r in runs if "peak_bytes" in r]
    return max(peaks) if peaks else None


def _fastest_peer(results, wkey):
    peers = results["workloads"].get(wkey, {}).get("peers", {})
    best = [(_best(results, wkey, n), n) for n in peers if not n.startswith("ckptio")]
    best = [b for b in best if b[0] is not None]
    return min(best) if best else (None, None)


def _limit(results, wkey, name):
    return results["workloads"].get(wkey, {}).get("limits", {}).get(name)


def _missed(percent):
    return f"missed by {percent:.1f}%" if percent < 10 else f"missed by {percent:.0f}%"


def _at_least(value, goal):
    if value is None:
        return "not measured"
    return "met" if value >= goal else _missed((1 - value / goal) * 100)


def _at_most(value, goal):
    if value is None:
        return "not measured"
    return "met" if value <= goal else _missed((value / goal - 1) * 100)


def _x(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}x"


def targets(results):
    out = []

    def add(target, measured, goal, result):
        out.append({"target": target, "measured": measured, "goal": goal, "result": result})

    for wkey, kind in (("load_fp32", "fp32"), ("load_bf16", "bf16")):
        if wkey not in results["workloads"]:
            continue
        ck = _best(results, wkey, "ckptio load")
        ps, pn = _fastest_peer(results, wkey)
        r = ps / ck if ck and ps else None
        add(f"{kind} copy load into fresh memory vs the fastest peer",
            f"{_x(r)} ({pn})", "≥ 1.5x", _at_least(r, 1.5))
        lim = _limit(results, wkey, "fresh-memory limit")
        r = lim / ck if ck and lim else None
        add(f"{kind} copy load vs the fresh-memory limit", _x(r), "≥ 0.9x", _at_least(r, 0.9))
        peak = _peak(results, wkey, "ckptio load")
        r = peak / results["facts"][kind]["bytes"] if peak is not None else None
        add(f"{kind} copy load peak memory / tensor bytes", _x(r, 3), "≤ 1.05x",
            _at_most(r, 1.05))
    if "module" in results["workloads"]:
        ck = _best(results, "module", "ckptio load_state_dict(module, file)")
        mc = _limit(results, "module", "memcpy limit")
        r = mc / ck if ck and mc else None
        add("into an existing module vs memcpy", _x(r), "≥ 0.9x", _at_least(r, 0.9))
    if "lazy" in results["workloads"]:
        ck = _best(results, "lazy", "ckptio load (zero_copy)")
        for peer in ("safe_open + get_tensor per key", "torch.load(mmap=True)"):
            p = _best(results, "lazy", peer)
            r = p / ck if ck and p else None
            add(f"zero-copy vs {peer} (their time / ckptio's)", _x(r), "≥ 1.0x",
                _at_least(r, 1.0))
    for wkey, label in (("save", "save (no fsync)"), ("save_durable", "durable save")):
        if wkey not in results["workloads"]:
            continue
        ck = _best(results, wkey, "ckptio save" if wkey == "save" else "ckptio save + fsync")
        ps, pn = _fastest_peer(results, wkey)
        r = ps / ck if ck and ps else None
        add(f"{label} vs the fastest peer", f"{_x(r)} ({pn})", "≥ 2x", _at_least(r, 2.0))
    if "load_small" in results["workloads"]:
        ck = _best(results, "load_small", "ckptio load")
        n = results["facts"]["small"]["tensors"]
        us = ck / n * 1e6 if ck else None
        add(f"{n} small tensors, per tensor", "-" if us is None else f"{us:.2f} µs", "≤ 3 µs",
            _at_most(us, 3.0))
    comp = (results.get("compression") or {}).get("bf16")
    if comp and "ratio" in comp.get("ckptio", {}) and "ratio" in comp.get("zipnn", {}):
        ck, zp = comp["ckptio"], comp["zipnn"]
        add("bf16 compression ratio vs ZipNN's (lower is smaller)",
            f"{ck['ratio']:.4f} vs {zp['ratio']:.4f}", "≤ ZipNN's",
            _at_most(ck["ratio"] / zp["ratio"], 1.0))
        r = ck["decode_GBps_per_core"] / zp["decode_GBps_per_core"]
        add("bf16 decode GB/s per core vs ZipNN's",
            f"{ck['decode_GBps_per_core']:.2f} vs {zp['decode_GBps_per_core']:.2f} ({_x(r)})",
            "≥ 1.0x", _at_least(r, 1.0))
    if "load_cold" in results["workloads"]:
        ck = _best(results, "load_cold", "ckptio load")
        disk = _limit(results, "load_cold", "disk sequential read")
        r = disk / ck if ck and disk else None
        add("cold copy load vs the disk's sequential read", _x(r), "≥ 0.9x", _at_least(r, 0.9))
        ps, pn = _fastest_peer(results, "load_cold")
        r = ps / ck if ck and ps else None
        add("cold copy load vs the fastest peer", f"{_x(r)} ({pn})", "> 1.0x",
            "met" if r and r > 1.0 else _at_least(r, 1.0))
        peak = _peak(results, "load_cold", "ckptio load")
        r = peak / results["facts"]["fp32"]["bytes"] if peak is not None else None
        add("cold copy load peak memory / tensor bytes", _x(r, 3), "≤ 1.05x", _at_most(r, 1.05))
    return out
