"""Reports what Python sees in files ckptio wrote: for zips, zipfile's verdict (testzip
checks every CRC) and each record's data offset taken from its local header; then what
torch.load(weights_only=True) returns (common.describe + common.tensor_lines).
Usage: inspect_ckpt.py [--no-torch] [--no-testzip] FILE...
--no-testzip reads (and so CRC-checks) only records under 1 MiB: for sparse multi-GiB files."""
import struct
import sys
import zipfile

args = sys.argv[1:]
use_torch = '--no-torch' not in args
full_test = '--no-testzip' not in args
files = [a for a in args if not a.startswith('--')]
if use_torch:
    import torch
    from common import describe, tensor_lines

for path in files:
    print('FILE|' + path)
    with open(path, 'rb') as f:
        head = f.read(4)
    if head == b'PK\x03\x04':
        with zipfile.ZipFile(path) as z, open(path, 'rb') as f:
            if full_test:
                print('ZIP|testzip=%s' % z.testzip())
            else:
                for info in z.infolist():
                    if info.file_size < (1 << 20):
                        z.read(info.filename)  # raises BadZipFile on a CRC mismatch
                print('ZIP|testzip=small-ok')
            for info in z.infolist():
                f.seek(info.header_offset)
                local = f.read(30)
                nlen, xlen = struct.unpack('<HH', local[26:30])
                data_offset = info.header_offset + 30 + nlen + xlen
                print('REC|%s|%d|%d|%d|%08x' % (info.filename, data_offset, info.file_size,
                                              info.compress_type, info.CRC))
    if use_torch:
        # weights_only=True first (what our writer targets); torch 1.13's restricted
        # unpickler lacks BINFLOAT (it fails on torch.save's own floats), so on failure the
        # reason is reported as WOERR and the file is loaded again without the restriction.
        try:
            obj = torch.load(path, weights_only=True)
        except Exception as e:
            print('WOERR|%s: %s' % (type(e).__name__, str(e).replace('\n', ' ')[-200:]))
            try:
                obj = torch.load(path, weights_only=False)
            except Exception as e2:  # reported, the C++ test decides
                print('LOADERR|%s: %s' % (type(e2).__name__, str(e2).replace('\n', ' ')[:300]))
                continue
        print('D|' + describe(obj))
        for line in tensor_lines(obj):
            print(line)
sys.stdout.flush()
