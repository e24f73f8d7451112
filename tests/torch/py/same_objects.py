"""Loads two files with torch.load and checks they hold the same objects: containers of the
same kinds with the same keys in the same order (dict and OrderedDict count as one kind),
equal plain values, tensors equal in dtype, shape, strides and values, and the same storage
sharing. Used on a file ckptio saved from LibTorch values and LibTorch's own
torch::pickle_save of the same values.

  same_objects.py OURS.pt REFERENCE.pt      prints "ok", or the differences and exits 1
"""
import sys

import torch


def storage_address(t):
    # untyped_storage() where torch has it (2.x warns that storage() is deprecated, on the
    # stderr the test compares with "ok"); 1.13 has only storage().
    return (t.untyped_storage() if hasattr(t, "untyped_storage") else t.storage()).data_ptr()


def compare(a, b, path, ties_a, ties_b, out):
    if isinstance(b, torch.Tensor):
        if not isinstance(a, torch.Tensor):
            out.append("%s: %s, want a tensor" % (path, type(a).__name__))
            return
        for what, x, y in (("dtype", a.dtype, b.dtype), ("shape", a.shape, b.shape),
                           ("strides", a.stride(), b.stride())):
            if x != y:
                out.append("%s: %s %s, want %s" % (path, what, x, y))
                return
        if not torch.equal(a, b):
            out.append("%s: values differ" % path)
        ties_a.append(storage_address(a))
        ties_b.append(storage_address(b))
        return
    if isinstance(b, dict):
        if not isinstance(a, dict) or list(a) != list(b):
            out.append("%s: %r, want keys %r" % (path, a if not isinstance(a, dict) else list(a),
                                                 list(b)))
            return
        for k in b:
            compare(a[k], b[k], "%s[%r]" % (path, k), ties_a, ties_b, out)
        return
    if isinstance(b, (list, tuple)):
        if type(a) is not type(b) or len(a) != len(b):
            out.append("%s: %s of %s, want %s of %d" % (
                path, type(a).__name__, len(a) if hasattr(a, "__len__") else "-",
                type(b).__name__, len(b)))
            return
        for i, (x, y) in enumerate(zip(a, b)):
            compare(x, y, "%s[%d]" % (path, i), ties_a, ties_b, out)
        return
    if type(a) is not type(b) or a != b:
        out.append("%s: %r, want %r" % (path, a, b))


def sharing(ptrs):
    first = {}
    return [first.setdefault(p, i) for i, p in enumerate(ptrs)]


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ours = torch.load(argv[0], weights_only=False)
    ref = torch.load(argv[1], weights_only=False)
    out, ties_a, ties_b = [], [], []
    compare(ours, ref, "root", ties_a, ties_b, out)
    if not out and sharing(ties_a) != sharing(ties_b):
        out.append("storage sharing %s, want %s" % (sharing(ties_a), sharing(ties_b)))
    print("\n".join(out[:20]) if out else "ok")
    return 1 if out else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
