"""Checks a directory ckptio wrote against transformers, for tests/interop/hf_sharded_test.cc.

  check_hf_load.py WORK_DIR OUT_DIR MODEL [--like CASE]
  check_hf_load.py WORK_DIR --batch JOBS.json RESULTS.json

The batch form checks several directories in one run (transformers is imported once):
JOBS.json is [{"dir", "model", "like" (a case name or null)}], RESULTS.json gets
[{"dir", "ok": bool, "error": the one line or null}] in the same order; it exits 0 when it
could write the results, whatever they say.

WORK_DIR is what make_hf_cases.py made (its manifest.json); MODEL one of its models
("llama", "bert"). OUT_DIR must hold config.json (the test copies it in) and the weights.

1. MODEL's class .from_pretrained(OUT_DIR, output_loading_info=True) reports no missing,
   unexpected or mismatched keys and no errors, and every entry of its state_dict() (tied
   keys included) equals the original model's bit for bit, with the same dtype and shape.
2. With --like CASE (a case of the manifest: what save_pretrained, or for .bin the
   transformers 4 way, wrote for the same model and max_shard_size), OUT_DIR is split as
   that case is: the same weight files (shards and index), the same weight_map, the same
   metadata.total_size (total_parameters is save_pretrained's count of the model's
   parameters, which a state_dict does not tell: not compared), each shard holding exactly
   the tensors the weight_map gives it, and safetensors shards the same __metadata__ and
   the same bytes (safetensors files of the same tensors are deterministic: the header's
   order is the reference's own sort, not the state_dict's).

Prints "ok" and exits 0; otherwise prints one line saying what differs to stderr and exits 1.
"""
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")

import torch  # noqa: E402
import safetensors  # noqa: E402
import transformers  # noqa: E402

transformers.logging.set_verbosity_error()
try:
    transformers.utils.logging.disable_progress_bar()
except AttributeError:
    pass


class Mismatch(Exception):
    pass


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(
        a.detach().contiguous().view(torch.uint8), b.detach().contiguous().view(torch.uint8))


def weight_files(d):
    return sorted(f for f in os.listdir(d)
                  if f.endswith(".safetensors") or f.endswith(".bin") or f.endswith(".index.json"))


def check_load(out, model_info):
    if not os.path.exists(os.path.join(out, "config.json")):
        raise Mismatch("%s has no config.json" % out)
    cls = getattr(transformers, model_info["class"])
    model, info = cls.from_pretrained(out, output_loading_info=True)
    for what in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        if info.get(what):
            raise Mismatch("from_pretrained(%s): %s %s" % (out, what, sorted(map(str, info[what]))[:5]))
    original = torch.load(model_info["original"], map_location="cpu", weights_only=True)
    got = model.state_dict()
    if set(got) != set(original):
        raise Mismatch("from_pretrained(%s): keys differ from the original model's: %s"
                       % (out, sorted(set(got) ^ set(original))[:5]))
    for k, v in original.items():
        g = got[k]
        if g.dtype != v.dtype or g.shape != v.shape:
            raise Mismatch("from_pretrained(%s): %s is %s %s, the original %s %s"
                           % (out, k, g.dtype, list(g.shape), v.dtype, list(v.shape)))
        if not same(g, v):
            raise Mismatch("from_pretrained(%s): %s differs from the original model's" % (out, k))


def index_of(d):
    for name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            with open(p, encoding="utf-8") as f:
                return name, json.load(f)
    return None, None


def shard_contents(path):
    """(tensor names, __metadata__ or None) of one weight file."""
    if path.endswith(".safetensors"):
        with safetensors.safe_open(path, "pt") as f:
            return sorted(f.keys()), f.metadata()
    return sorted(torch.load(path, map_location="cpu", weights_only=True)), None


def check_like(out, case):
    ref = case["dir"]
    got_files, want_files = weight_files(out), weight_files(ref)
    if got_files != want_files:
        raise Mismatch("%s holds %s; save_pretrained wrote %s for max_shard_size=%s"
                       % (out, got_files, want_files, case["max_shard_size"]))
    got_name, got_idx = index_of(out)
    want_name, want_idx = index_of(ref)
    if got_name != want_name:
        raise Mismatch("%s: index %s, want %s" % (out, got_name, want_name))
    if want_idx is not None:
        if got_idx.get("weight_map") != want_idx["weight_map"]:
            gw, ww = got_idx.get("weight_map") or {}, want_idx["weight_map"]
            diff = sorted(k for k in set(gw) | set(ww) if gw.get(k) != ww.get(k))
            raise Mismatch("%s/%s: weight_map differs from save_pretrained's at %s"
                           % (out, got_name, ["%s: %s vs %s" % (k, gw.get(k), ww.get(k))
                                              for k in diff[:3]]))
        gm = got_idx.get("metadata")
        if not isinstance(gm, dict) or gm.get("total_size") != want_idx["metadata"]["total_size"]:
            raise Mismatch("%s/%s: metadata %s, save_pretrained's total_size is %s"
                           % (out, got_name, gm, want_idx["metadata"]["total_size"]))
        weight_map = want_idx["weight_map"]
    else:
        weight_map = case["weight_map"]
    for fname in sorted(set(weight_map.values())):
        names, meta = shard_contents(os.path.join(out, fname))
        want_names = sorted(k for k, v in weight_map.items() if v == fname)
        if names != want_names:
            raise Mismatch("%s/%s holds %s, its weight_map entries are %s"
                           % (out, fname, names[:5], want_names[:5]))
        _, want_meta = shard_contents(os.path.join(ref, fname))
        if meta != want_meta:
            raise Mismatch("%s/%s: __metadata__ %s, save_pretrained wrote %s"
                           % (out, fname, meta, want_meta))
        if fname.endswith(".safetensors"):
            with open(os.path.join(out, fname), "rb") as a, open(os.path.join(ref, fname), "rb") as b:
                if a.read() != b.read():
                    raise Mismatch("%s/%s differs from the file save_pretrained wrote"
                                   % (out, fname))


def check(manifest, out, model, like):
    """None when `out` passes, else the one-line reason."""
    try:
        if like:
            cases = {c["name"]: c for c in manifest["cases"]}
            check_like(out, cases[like])
        check_load(out, manifest["models"][model])
    except Mismatch as e:
        return " ".join(str(e).split())
    except Exception as e:  # transformers refused the directory
        return "%s: %s" % (type(e).__name__, " ".join(str(e).split())[:500])
    return None


def main(argv):
    batch = len(argv) == 5 and argv[2] == "--batch"
    if not batch and (len(argv) not in (4, 6) or (len(argv) == 6 and argv[4] != "--like")):
        print("usage:\n" + "\n".join(__doc__.strip().split("\n")[2:4]), file=sys.stderr)
        return 2
    with open(os.path.join(argv[1], "manifest.json")) as f:
        manifest = json.load(f)
    if batch:
        with open(argv[3]) as f:
            jobs = json.load(f)
        results = []
        for j in jobs:
            error = check(manifest, j["dir"], j["model"], j.get("like"))
            results.append({"dir": j["dir"], "ok": error is None, "error": error})
        with open(argv[4], "w") as f:
            json.dump(results, f)
        return 0
    error = check(manifest, argv[2], argv[3], argv[5] if len(argv) == 6 else None)
    if error is not None:
        print(error, file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
