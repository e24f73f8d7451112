# python3 check_load.py ORIGINAL CANDIDATE...: torch.load all; every tensor bit-identical.
import sys
import torch

def flat(x, p=""):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from flat(v, p + "/" + str(k))
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            yield from flat(v, p + "/" + str(i))
    else:
        yield p, x

def raw(t):
    return t.contiguous().view(torch.uint8) if t.numel() and t.dtype != torch.bool else t

# weights_only=False: the same load on torch 1.13 and on 2.6+ (whose default is True).
a = dict(flat(torch.load(sys.argv[1], weights_only=False)))
for cand in sys.argv[2:]:
    b = dict(flat(torch.load(cand, weights_only=False)))
    assert a.keys() == b.keys(), (cand, a.keys(), b.keys())
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, (cand, k)
            assert torch.equal(raw(a[k]), raw(b[k])), (cand, k)
        else:
            assert a[k] == b[k], (cand, k)
print("OK", len(sys.argv) - 2)
