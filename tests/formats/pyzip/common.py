"""Shared helpers for the ckptio zip/legacy tests: a canonical text description of a
checkpoint object that the C++ side can reproduce from its own decoding."""
import torch


def raw_bytes(t):
    """A contiguous tensor's bytes; without numpy (pip's torch 2.x does not require it)
    through a list of byte values, which is slower."""
    try:
        return t.numpy().tobytes()
    except RuntimeError:
        return bytes(t.reshape(-1).view(torch.uint8).tolist())


def _label(k):
    return "'%s'" % k if isinstance(k, str) else str(k)


def tensor_lines(obj):
    """One line per distinct tensor, depth-first, as ckptio::for_each_tensor visits them:
    T|path|dtype|shape|stride|offset|sid|hex (hex of the contiguous elements)."""
    out, seen, sids = [], set(), {}

    def walk(v, path):
        if id(v) in seen:
            return
        if isinstance(v, (dict, list, tuple, torch.Tensor)):
            seen.add(id(v))
        if isinstance(v, torch.Tensor):
            st = v.storage()
            nbytes = st.size() * v.element_size()
            sid = '-'
            if nbytes:
                sid = str(sids.setdefault(st.data_ptr(), len(sids)))
            c = v.detach().contiguous()
            if c.dtype == torch.bfloat16:
                c = c.view(torch.int16)
            data = raw_bytes(c).hex() if c.numel() else '-'
            out.append('|'.join(['T', path or '<root>', str(v.dtype)[6:],
                                 ','.join(map(str, v.shape)), ','.join(map(str, v.stride())),
                                 str(v.storage_offset()), sid, data]))
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(x, path + '[' + _label(k) + ']')
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(x, path + '[%d]' % i)

    walk(obj, '')
    return out


def describe(v):
    """Structure with tensors as T: {k: v}, [..], (..), repr for scalars."""
    if isinstance(v, torch.Tensor):
        return 'T'
    if isinstance(v, dict):
        return '{' + ', '.join(describe(k) + ': ' + describe(x) for k, x in v.items()) + '}'
    if isinstance(v, list):
        return '[' + ', '.join(describe(x) for x in v) + ']'
    if isinstance(v, tuple):
        return '(' + ', '.join(describe(x) for x in v) + ')'
    return repr(v)
