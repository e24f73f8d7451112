"""torch-side checks of DCP checkpoints that ckptio writes or reads, with the real torch of the
tests' Python (torch 2.13 in the venv); used by tests/dcp/dcp_writer_test.cc and
tests/interop/dcp_read_test.cc.

  dcp_check.py make REF.pt          torch.save of a reference state dict: nested dicts, int
                                    keys, lists of dicts, tensors of several dtypes, a 0-dim
                                    and an empty one, a transposed view, a view at an offset,
                                    ints, floats, a str, a tuple, a list of ints
  dcp_check.py check DCP_DIR REF.pt torch.distributed.checkpoint.load into a template of
                                    REF's structure, and format_utils.dcp_to_torch_save, each
                                    equal to REF value by value (DCP gives every key back as
                                    str(key): compared as text)
  dcp_check.py same A.pt B.pt       torch.load of both equal value by value
Exit 0 and "ok ..." when equal; exit 1 and one line saying where they differ.
"""
import os, sys, warnings
warnings.filterwarnings("ignore")
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

def reference():
    g = torch.Generator().manual_seed(7)
    base = torch.randn(6, 8, generator=g)
    return {
        "model": {
            "embed.weight": torch.randn(16, 4, generator=g),
            "layers": [{"w": torch.randn(4, 4, generator=g).to(torch.bfloat16),
                        "b": torch.zeros(4, dtype=torch.float16)} for _ in range(2)],
            "norm.weight": torch.ones(4),
            "transposed": base.t(),            # a non-contiguous view
            "slice": base[2:4],                # a view at an offset into a shared storage
            "steps": torch.arange(5, dtype=torch.int64),
            "mask": torch.tensor([True, False, True]),
            "scalar": torch.tensor(2.5, dtype=torch.float64),
            "empty": torch.zeros(0, 5),
        },
        "optim": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(3, generator=g)}},
                  "param_groups": [{"lr": 0.01, "betas": (0.9, 0.999), "params": [0]}]},
        "step": 7,
        "lr": 0.125,
        "name": "run-1",
        "milestones": [10, 20],
    }

def same(a, b, path="root"):
    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor):
            return "%s: a %s, want a tensor" % (path, type(b).__name__)
        if a.dtype != b.dtype or a.shape != b.shape:
            return "%s: %s %s, want %s %s" % (path, b.dtype, tuple(b.shape), a.dtype, tuple(a.shape))
        if not torch.equal(a, b):
            return "%s: values differ" % path
        return None
    if isinstance(a, dict):
        if not isinstance(b, dict) or set(map(str, a)) != set(map(str, b)):
            return "%s: keys %s, want %s" % (path, sorted(map(str, b)) if isinstance(b, dict) else b,
                                              sorted(map(str, a)))
        bs = {str(k): v for k, v in b.items()}
        for k, v in a.items():
            d = same(v, bs[str(k)], "%s[%r]" % (path, k))
            if d:
                return d
        return None
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return "%s: %r, want %r" % (path, b, a)
        for i, (x, y) in enumerate(zip(a, b)):
            d = same(x, y, "%s[%d]" % (path, i))
            if d:
                return d
        return None
    return None if a == b else "%s: %r, want %r" % (path, b, a)

def template(v):
    """REF's structure with zeroed tensors and None for every other leaf: dcp.load must fill
    all of them."""
    if isinstance(v, torch.Tensor):
        return torch.zeros_like(v.contiguous())
    if isinstance(v, dict):
        return {k: template(x) for k, x in v.items()}
    if isinstance(v, list) and any(isinstance(x, (torch.Tensor, dict, list)) for x in v):
        return [template(x) for x in v]
    return None

if sys.argv[1] == "make":
    torch.save(reference(), sys.argv[2])
    sys.exit(0)
if sys.argv[1] == "same":
    diff = same(torch.load(sys.argv[2], weights_only=False), torch.load(sys.argv[3], weights_only=False))
    if diff:
        print(diff)
        sys.exit(1)
    print("ok", torch.__version__)
    sys.exit(0)
d, ref_path = sys.argv[2], sys.argv[3]
ref = torch.load(ref_path, weights_only=False)
# dcp.load fills the template's tensors in place and replaces its other leaves.
t = template(ref)
dcp.load(t, checkpoint_id=d, no_dist=True)
diff = same(ref, t, "dcp.load")
if diff:
    print(diff)
    sys.exit(1)
out = os.path.join(d + ".consolidated.pt")
dcp_to_torch_save(d, out)
got = torch.load(out, weights_only=False)
diff = same(ref, got, "dcp_to_torch_save")
if diff:
    print(diff)
    sys.exit(1)
print("ok", torch.__version__)
