"""Compares two `ckptio inspect --json` outputs: same tree, and every tensor bit-identical.

Usage: same_tensors.py A.json B.json LABEL [--str-keys]   (exit 1 when they differ)

--str-keys: compare dict keys as text (str(key)), as a torch.distributed.checkpoint
round trip gives them back: DCP stores every key of a state dict as str(key).
"""
import json
import sys

CONTRACT_TENSOR_KEYS = ("dtype", "shape", "device", "sha256")


def strip(v, str_keys=False):
    """Keeps only the contract's keys inside tensor objects."""
    if isinstance(v, list):
        return [strip(x, str_keys) for x in v]
    if isinstance(v, dict):
        if set(v) == {"tensor"}:
            return {"tensor": {k: v["tensor"][k] for k in CONTRACT_TENSOR_KEYS if k in v["tensor"]}}
        if str_keys and set(v) == {"dict"}:
            return {"dict": [[k if isinstance(k, str) else json.dumps(k), strip(x, str_keys)]
                             for k, x in v["dict"]]}
        return {k: strip(x, str_keys) for k, x in v.items()}
    return v


def count_tensors(v):
    if isinstance(v, list):
        return sum(count_tensors(x) for x in v)
    if isinstance(v, dict):
        return 1 if set(v) == {"tensor"} else sum(count_tensors(x) for x in v.values())
    return 0


def main():
    a, b = (json.load(open(p))["root"] for p in sys.argv[1:3])
    str_keys = "--str-keys" in sys.argv[4:]
    if strip(a, str_keys) != strip(b, str_keys):
        print(f"DIFFERENT: {sys.argv[3]}")
        sys.exit(1)
    print(f"bit-identical: {sys.argv[3]}: {count_tensors(a)} tensors, same tree")


if __name__ == "__main__":
    main()
