"""Writes real torch.save checkpoints for the ckptio reader tests into OUTDIR:
zip and legacy files of the same objects, zip files re-written by Python's zipfile (records
reversed; deflated), a legacy file whose pickle exceeds the 1 MiB first read window, a
protocol-4 legacy file and a tar file. For each object NAME, NAME.txt holds its tensor lines
(common.tensor_lines)."""
import collections
import io
import os
import sys
import tarfile
import zipfile

import torch

from common import tensor_lines

out = sys.argv[1]
torch.manual_seed(0)


def state_dict():
    big = torch.arange(20, dtype=torch.float32)
    w = torch.randn(4, 3)
    d = collections.OrderedDict()
    d['fc1.weight'] = w
    d['fc1.bias'] = torch.arange(4.)
    d['tied.weight'] = w[:]                 # another tensor object, same storage
    d['slice'] = big[3:9]                   # storage offset 3 into a shared 20-element storage
    d['transposed'] = big[:12].view(4, 3).t()  # strides (1, 3)
    d['expand'] = torch.tensor([1., 2.]).expand(3, 2)  # stride 0
    d['empty'] = torch.zeros(0, 5)
    d['scalar'] = torch.tensor(3.5, dtype=torch.float64)
    d['int64'] = torch.arange(5) - 2
    d['bool'] = torch.tensor([True, False, True])
    d['half'] = torch.arange(4, dtype=torch.float16)
    d['bf16'] = torch.arange(3, dtype=torch.bfloat16)
    d['int8'] = torch.tensor([-1, 2], dtype=torch.int8)
    d['uint8'] = torch.tensor([255, 7], dtype=torch.uint8)
    d['complex'] = torch.tensor([1 + 2j, 3 - 4j])
    d['int32'] = torch.tensor([[1, 2], [3, 4]], dtype=torch.int32)[:, 1]
    return d


def checkpoint():
    sd = state_dict()
    p = torch.ones(2, 2)
    return {'model': sd, 'epoch': 7, 'loss': 0.25, 'name': 'run',
            'opt': {'state': {0: {'step': torch.tensor(1.), 'exp_avg': torch.zeros(2, 2)}},
                    'param_groups': [{'lr': 0.001, 'betas': (0.9, 0.999), 'params': [0]}]},
            'nested': [p, (p, 3), None, True]}


def save(obj, name, **kw):
    torch.save(obj, os.path.join(out, name), **kw)


def rezip(src, dst, reverse=False, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, 'w', compression) as zout:
        infos = zin.infolist()
        for info in (reversed(infos) if reverse else infos):
            zout.writestr(info.filename, zin.read(info.filename), compress_type=compression)


objs = {'sd': state_dict(), 'ckpt': checkpoint(), 'tensor': torch.arange(6.).reshape(2, 3)}
for name, obj in objs.items():
    with open(os.path.join(out, name + '.txt'), 'w') as f:
        f.write('\n'.join(tensor_lines(obj)) + '\n')
    save(obj, name + '_zip.pt')
    save(obj, name + '_legacy.pt', _use_new_zipfile_serialization=False)

rezip(os.path.join(out, 'sd_zip.pt'), os.path.join(out, 'sd_reversed.pt'), reverse=True)
rezip(os.path.join(out, 'sd_zip.pt'), os.path.join(out, 'sd_deflated.pt'),
      compression=zipfile.ZIP_DEFLATED)
save(objs['tensor'], 'tensor_legacy_p1.pt', _use_new_zipfile_serialization=False,
     pickle_protocol=1)
save(objs['sd'], 'sd_legacy_p4.pt', _use_new_zipfile_serialization=False, pickle_protocol=4)

# A pickle larger than the reader's first 1 MiB window.
big = {'blob': 'x' * (3 << 20), 't': torch.arange(3.)}
with open(os.path.join(out, 'bigpickle.txt'), 'w') as f:
    f.write('\n'.join(tensor_lines(big)) + '\n')
save(big, 'bigpickle_legacy.pt', _use_new_zipfile_serialization=False)

# A tar file, as pre-0.4 torch wrote them (members named like torch's).
with tarfile.open(os.path.join(out, 'ancient.tar'), 'w', format=tarfile.PAX_FORMAT) as tar:
    for member in ('sys_info', 'pickle', 'tensors', 'storages'):
        data = b'\x80\x02K\x00.'
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
print('ok')
