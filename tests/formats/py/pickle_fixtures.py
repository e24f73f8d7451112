"""Fixtures for tests/formats/pickle_*_test.cc, produced by real Python / PyTorch.

  pickle_fixtures.py gen OUTDIR
      Writes, for every plain case and protocol 0-5, OUTDIR/plain_<case>.p<N> (pickle.dumps)
      and OUTDIR/plain_<case>.txt (its description); Python-2-style string pickles
      OUTDIR/py2_<case>.p (validated with pickle.loads); and for every torch case
      OUTDIR/torch_<case>.pt (torch.save legacy format) with OUTDIR/torch_<case>.txt.
      Finally OUTDIR/cases.txt lists the case names, one per line.
  pickle_fixtures.py check_plain OURS CASE [OURS CASE ...]
      pickle.loads each of our pickles and compares its description with the case's.
  pickle_fixtures.py check_torch OURS ORIG [OURS ORIG ...]
      torch.load both legacy files; compares descriptions and tensor values.

The description is a canonical text both sides can produce: the C++ test prints the value
tree the same way (see describe() in pickle_fixtures_test.cc).
"""
import collections
import io
import math
import os
import pickle
import struct
import sys
import warnings

# torch 2.x warns once (on stderr) that TypedStorage is deprecated when t.storage() is used;
# check_torch's output is compared exactly, so that warning is silenced.
warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated")


def describe(v, st=None):
    """Canonical text of a value; `st` maps storage identity -> index (first appearance)."""
    if st is None:
        st = {}
    import_torch = 'torch' in sys.modules
    if v is None:
        return 'None'
    if v is True:
        return 'True'
    if v is False:
        return 'False'
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return 'f' + struct.pack('>d', v).hex()
    if isinstance(v, str):
        return "s'" + v.encode('utf-8', 'surrogatepass').hex() + "'"
    if isinstance(v, bytes):
        return "b'" + v.hex() + "'"
    if isinstance(v, list):
        return '[' + ','.join(describe(x, st) for x in v) + ']'
    if isinstance(v, tuple):
        return '(' + ','.join(describe(x, st) for x in v) + ')'
    if isinstance(v, collections.Counter):
        return 'obj(collections.Counter,(' + describe(dict(v), st) + '))'
    if isinstance(v, dict):
        body = ','.join(describe(k, st) + ':' + describe(x, st) for k, x in v.items())
        if isinstance(v, collections.OrderedDict):
            attrs = dict(vars(v))
            s = 'O{' + body + '}'
            if attrs:
                s += '@' + describe(attrs, st)
            return s
        return '{' + body + '}'
    if isinstance(v, (set, frozenset)):
        name = 'builtins.set' if isinstance(v, set) else 'builtins.frozenset'
        return 'obj(' + name + ',(' + describe(list(v), st) + '))'
    if isinstance(v, complex):
        return 'obj(builtins.complex,(' + describe(v.real, st) + ',' + describe(v.imag, st) + '))'
    if isinstance(v, bytearray):
        return 'obj(builtins.bytearray,(' + describe(bytes(v), st) + '))'
    if import_torch:
        import torch
        if isinstance(v, torch.Tensor):
            s = v.storage()
            ident = s._cdata if hasattr(s, '_cdata') else s._storage._cdata
            idx = st.setdefault(ident, len(st))
            return 'T(%s,%s,%s,%d,%d,%d,S%d,%d,%s)' % (
                str(v.dtype)[6:], list(v.shape), list(v.stride()), v.storage_offset(),
                int(v.requires_grad), int(isinstance(v, torch.nn.Parameter)), idx,
                s.nbytes(), 'cpu')
        if isinstance(v, torch.device):
            args = (v.type,) if v.index is None else (v.type, v.index)
            return 'obj(torch.device,' + describe(args, st) + ')'
        if isinstance(v, torch.dtype):
            return 'g(' + str(v) + ')'
    raise TypeError('cannot describe %r' % type(v))


def plain_cases():
    od = collections.OrderedDict([('w', 1), ('b', 2)])
    od._metadata = {'': {'version': 1}, 'fc': {'version': 2}}
    shared = [1, 2]
    return {
        'ints': [0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -2**31, 2**31, -2**31 - 1,
                 2**63 - 1, -2**63, 2**63, -2**63 - 1, 2**64, 2**100, -2**100,
                 119547037146038801333356, -(2**2000) + 12345],
        'floats': [0.0, -0.0, 1.5, -2.25, 1e-300, 1e300, math.inf, -math.inf, math.nan,
                   0.1, 123456789.123],
        'strings': ['', 'abc', 'a\nb\\c', 'caf\u00e9', '\u1234\U0001F600', 'x' * 300],
        'bytes': [b'', b'\x00\xff', bytes(range(256)), b'abc'],
        'nested': [1, (2, 3), {'a': [None, True, False]}, (), (1,), (1, 2, 3),
                   (1, 2, 3, 4, 5), [[[[]]]]],
        'int_keys': {0: {'step': 1.0, 'exp_avg': [0.5]}, 1: {'step': 2.0}, -7: 'neg',
                     2**40: 'big'},
        'batches': {'list': list(range(2500)), 'dict': {str(i): i for i in range(2100)},
                    'one': [7], 'onedict': {'k': 'v'}},
        'ordered_attrs': {'sd': od, 'empty': collections.OrderedDict()},
        'shared': [shared, shared, 'tail'],
        'specials': [{1, 2, 3}, frozenset([4]), complex(1.5, -2.0), bytearray(b'ab\xff'),
                     collections.Counter({'a': 3, 'b': 1}), set()],
        'optimizer': {'state': {0: {'step': 3, 'momentum_buffer': None}},
                      'param_groups': [{'lr': 0.001, 'betas': (0.9, 0.999), 'eps': 1e-08,
                                        'weight_decay': 0, 'amsgrad': False,
                                        'params': [0]}]},
    }


def py2_cases():
    """Python-2-era string opcodes, assembled from pickle's opcode constants and checked
    against Python's own unpickler (encoding='utf-8', as torch.load passes)."""
    P = pickle
    cases = {
        'short_binstring': P.PROTO + b'\x02' + P.SHORT_BINSTRING + b'\x05hello' + P.STOP,
        'binstring_utf8': P.PROTO + b'\x02' + P.BINSTRING + struct.pack('<i', 5) +
        'caf\u00e9'.encode('utf-8') + P.STOP,
        'string_escaped': P.STRING + b"'a\\nb\\x41\\'c'\n" + P.STOP,
        'binstring_pid_tuple': P.PROTO + b'\x02' + P.MARK + P.SHORT_BINSTRING + b'\x07storage' +
        P.SHORT_BINSTRING + b'\x03cpu' + P.TUPLE + P.STOP,
        'int_bools': P.MARK + P.INT + b'01\n' + P.INT + b'00\n' + P.INT + b'-42\n' +
        P.LONG + b'119547037146038801333356L\n' + P.TUPLE + P.STOP,
    }
    out = {}
    for name, data in cases.items():
        value = pickle.loads(data, encoding='utf-8')
        out[name] = (data, value)
    return out


def torch_cases():
    import torch
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    w = torch.arange(12.0).reshape(3, 4)
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    dtypes = {}
    for name in ['float16', 'bfloat16', 'float64', 'int8', 'uint8', 'int16', 'int32', 'int64',
                 'bool', 'complex64', 'complex128']:
        dt = getattr(torch, name)
        dtypes[name] = (torch.arange(6) % 2 == 1).to(dt) if name == 'bool' else \
            torch.arange(6).to(dt).reshape(2, 3)
    return {
        'state_dict': lin.state_dict(),
        'tied_views': {'w': w, 'again': w, 'row': w[1], 'tail': w[1:], 't': w.t(),
                       'expand': torch.ones(3).expand(2, 3)},
        'dtypes': dtypes,
        'params': {'p': torch.nn.Parameter(torch.ones(2)),
                   'frozen': torch.nn.Parameter(torch.zeros(3), requires_grad=False),
                   'rg': torch.ones(2, requires_grad=True)},
        'scalars': {'s': torch.tensor(3.5), 'empty': torch.zeros(0, 3), 'i': 7, 'f': 0.5},
        'optimizer': opt.state_dict(),
        'bare_storage': {'st': torch.arange(4.0).storage(), 'x': 1},
        'proto4': (lin.state_dict(), 4),
        'proto5': ({'a': torch.arange(3), 'b': [1, 2, 3]}, 5),
        'from_type': {'p': FromTypeV2(torch.arange(4.0))},
        'tensor_attrs': {'t': tensor_with_attr(), 'd': torch.device('cpu'),
                         'dt': torch.float64, 'size': torch.Size([2, 3])},
    }


class FromTypeV2:
    """Pickles as torch 2.x does a tensor subclass: _rebuild_from_type_v2 wrapping
    _rebuild_tensor_v2 (torch 1.13 has the function; this makes it emit the call)."""

    def __init__(self, t):
        self.t = t

    def __reduce__(self):
        import torch
        t = self.t
        args = (t.storage(), t.storage_offset(), tuple(t.size()), t.stride(), False,
                collections.OrderedDict())
        return (torch._tensor._rebuild_from_type_v2,
                (torch._utils._rebuild_tensor_v2, torch.nn.Parameter, args, {}))


def tensor_with_attr():
    import torch
    t = torch.ones(2)
    t.note = 'kept by torch, dropped by ckptio'
    return t


def error_cases():
    """Files ckptio must refuse, with the code and a message fragment it must give."""
    import torch
    q = torch.quantize_per_tensor(torch.ones(4), 0.5, 1, torch.quint8)
    return {
        'qtensor': ({'q': q}, 'unsupported', 'quantized tensors are not supported yet'),
        'sparse': ({'s': torch.eye(3).to_sparse()}, 'unsupported', 'sparse tensors'),
        'meta': ({'m': torch.empty(2, device='meta')}, 'unsupported', 'meta tensors'),
        'module': (torch.nn.Linear(2, 2), 'forbidden',
                   "refusing pickle global 'torch.nn.modules.linear.Linear' at offset"),
    }


def gen(outdir):
    os.makedirs(outdir, exist_ok=True)
    names = []
    for name, value in plain_cases().items():
        for proto in range(6):
            with open(os.path.join(outdir, 'plain_%s.p%d' % (name, proto)), 'wb') as f:
                f.write(pickle.dumps(value, protocol=proto))
        with open(os.path.join(outdir, 'plain_%s.txt' % name), 'w') as f:
            f.write(describe(value))
        names.append('plain_' + name)
    for name, (data, value) in py2_cases().items():
        with open(os.path.join(outdir, 'py2_%s.p' % name), 'wb') as f:
            f.write(data)
        with open(os.path.join(outdir, 'py2_%s.txt' % name), 'w') as f:
            f.write(describe(value))
        names.append('py2_' + name)
    import torch
    for name, value in torch_cases().items():
        proto = 2
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
            value, proto = value
        path = os.path.join(outdir, 'torch_%s.pt' % name)
        torch.save(value, path, _use_new_zipfile_serialization=False, pickle_protocol=proto)
        loaded = torch.load(path, weights_only=False)  # builds sets, devices, ...
        with open(os.path.join(outdir, 'torch_%s.txt' % name), 'w') as f:
            f.write(describe_loaded(loaded))
        names.append('torch_' + name)
    for name, (value, code, fragment) in error_cases().items():
        torch.save(value, os.path.join(outdir, 'err_%s.pt' % name),
                   _use_new_zipfile_serialization=False)
        with open(os.path.join(outdir, 'err_%s.txt' % name), 'w') as f:
            f.write(code + '\n' + fragment)
        names.append('err_' + name)
    with open(os.path.join(outdir, 'cases.txt'), 'w') as f:
        f.write('\n'.join(names) + '\n')


def describe_loaded(v):
    import torch
    if isinstance(v, dict) and 'st' in v and isinstance(v['st'], torch.storage.TypedStorage):
        # A bare storage: the C++ side describes it as a 1-D tensor view of all of it.
        s = v['st']
        return '{' + describe('st') + ':ST(%s,%d,S0,%d,cpu),' % (
            str(s.dtype)[6:], s.size(), s.nbytes()) + describe('x') + ':' + describe(v['x']) + '}'
    return describe(v)


def check_plain(args):
    fixtures = os.environ['FIXTURES']
    bad = 0
    for ours, case in zip(args[0::2], args[1::2]):
        with open(ours, 'rb') as f:
            value = pickle.loads(f.read())
        with open(os.path.join(fixtures, case + '.txt')) as f:
            expected = f.read()
        got = describe(value)
        if got != expected:
            bad += 1
            print('MISMATCH %s:\n  got      %s\n  expected %s' % (case, got[:400], expected[:400]))
    print('OK' if not bad else 'FAILED')


def check_torch(args):
    import torch
    bad = 0
    for ours, orig in zip(args[0::2], args[1::2]):
        a = torch.load(ours, weights_only=False)
        b = torch.load(orig, weights_only=False)
        da, db = describe_loaded(a), describe_loaded(b)
        if da != db:
            bad += 1
            print('MISMATCH %s:\n  ours %s\n  orig %s' % (orig, da[:600], db[:600]))
            continue
        ta, tb = [], []
        walk_tensors(a, ta)
        walk_tensors(b, tb)
        for x, y in zip(ta, tb):
            if x.dtype != y.dtype or not torch.equal(x.detach(), y.detach()):
                bad += 1
                print('VALUES DIFFER in %s' % orig)
                break
    print('OK' if not bad else 'FAILED')


def walk_tensors(v, out):
    import torch
    if isinstance(v, torch.Tensor):
        out.append(v)
    elif isinstance(v, dict):
        for x in v.values():
            walk_tensors(x, out)
    elif isinstance(v, (list, tuple)):
        for x in v:
            walk_tensors(x, out)


if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'gen':
        gen(sys.argv[2])
    elif cmd == 'check_plain':
        check_plain(sys.argv[2:])
    elif cmd == 'check_torch':
        check_torch(sys.argv[2:])
    else:
        sys.exit('unknown command ' + cmd)
