#!/usr/bin/env python3
"""Inputs for tests/hostile (run with Debian's /usr/bin/python3, which has real PyTorch 1.13).

  make_hostile.py prepare DIR        writes every input below into DIR, and DIR/facts.json
  make_hostile.py check SD REF       loads the state_dict file SD (weights_only) into a fresh
                                     Net with load_state_dict(strict=True) and compares it,
                                     key order included, with the reference file REF

Net is defined here, in __main__, so torch.save(model) pickles the class as '__main__.Net'
(and torch.nn's own classes by their module paths): a whole-model pickle that no allow-list
loader may execute.
"""
import collections
import io
import json
import os
import pickle
import sys
import zipfile

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.register_buffer("scale", torch.tensor([2.0]))
        self.register_buffer("scratch", torch.zeros(3), persistent=False)  # not in state_dict

    def forward(self, x):
        return self.bn(self.conv(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(Block(), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(4 * 6 * 6, 10, bias=False)  # bias None: left out
        self.tail = nn.Linear(10, 10)
        self.tied = nn.Linear(10, 10)
        self.tied.weight = self.tail.weight  # tied weights: two keys, one storage
        self.empty = None  # a None sub-module: left out

    def forward(self, x):
        return self.tied(self.tail(self.head(self.features(x))))


def zip_data_offsets(path):
    """{record name: (data offset, size)} from the local headers."""
    out = {}
    raw = open(path, "rb").read()
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            h = info.header_offset
            nlen = int.from_bytes(raw[h + 26:h + 28], "little")
            xlen = int.from_bytes(raw[h + 28:h + 30], "little")
            out[info.filename] = (h + 30 + nlen + xlen, info.file_size)
    return out


def prepare(d):
    os.makedirs(d, exist_ok=True)
    facts = {}
    torch.manual_seed(0)

    # Whole-model pickles (zip and legacy) and the state_dict PyTorch itself would save.
    model = Net()
    model.train()
    model(torch.randn(2, 3, 8, 8))  # BatchNorm running stats and num_batches_tracked move
    torch.save(model, os.path.join(d, "model_full.pt"))
    torch.save(model, os.path.join(d, "model_full.legacy.pt"), _use_new_zipfile_serialization=False)
    torch.save(model.state_dict(), os.path.join(d, "model_sd_ref.pt"))
    facts["state_dict_keys"] = list(model.state_dict().keys())

    # Shared sub-objects: a list holding the same list twice, nested 40 times (2^40 leaves
    # if expanded), as torch.save writes it (the memo keeps it a DAG), and a dict variant
    # whose leaves are tensors sharing one storage.
    x = [1.5]
    for _ in range(40):
        x = [x, x]
    torch.save(x, os.path.join(d, "bomb_list.pt"))
    t = torch.arange(4.0)
    y = {"t": t}
    for i in range(40):
        y = {"a%d" % i: y, "b%d" % i: y}
    torch.save(y, os.path.join(d, "bomb_dict.pt"))
    torch.save(y, os.path.join(d, "bomb_dict.legacy.pt"), _use_new_zipfile_serialization=False)

    # A clean small checkpoint for verify, with its data records' offsets.
    sd = collections.OrderedDict(
        [("a", torch.randn(64)), ("b", torch.randn(8, 8)), ("c", torch.arange(100))])
    clean = os.path.join(d, "clean.pt")
    torch.save(sd, clean)
    torch.save(sd, os.path.join(d, "clean.legacy.pt"), _use_new_zipfile_serialization=False)
    facts["clean_records"] = zip_data_offsets(clean)

    # A deflated data record that claims far more than DEFLATE can expand to: a ~4 GiB
    # storage promised by a few dozen deflated bytes, refused before anything is allocated.
    # The pickle's storage numel (16, the first BININT1 16: the persistent id comes before
    # the shape) is raised to match, so only the ratio is wrong.
    small = os.path.join(d, "deflate_src.pt")
    torch.save({"w": torch.zeros(16)}, small)
    with zipfile.ZipFile(small) as zin:
        names = zin.namelist()
        recs = {n: zin.read(n) for n in names}
    pkl_name = [n for n in names if n.endswith("data.pkl")][0]
    data_name = [n for n in names if "/data/" in n][0]
    claim = 0xFFFFFFF0
    recs[pkl_name] = recs[pkl_name].replace(b"K\x10", b"J" + (claim // 4).to_bytes(4, "little"), 1)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zout:
        for n in names:
            zout.writestr(n, recs[n])
    raw = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as z:
        lh = z.getinfo(data_name).header_offset
    raw[lh + 22:lh + 26] = claim.to_bytes(4, "little")  # local header: uncompressed size
    pos = raw.find(b"PK\x01\x02")
    while pos >= 0:  # central directory entries
        nlen = int.from_bytes(raw[pos + 28:pos + 30], "little")
        if raw[pos + 46:pos + 46 + nlen].decode() == data_name:
            raw[pos + 24:pos + 28] = claim.to_bytes(4, "little")
        pos = raw.find(b"PK\x01\x02", pos + 4)
    open(os.path.join(d, "deflate_lie.pt"), "wb").write(bytes(raw))
    os.remove(small)

    # Path-like storage keys: a key is a name in the archive, never a path on disk.
    with zipfile.ZipFile(clean) as zin:
        recs = [(i.filename, zin.read(i.filename)) for i in zin.infolist()]
    evil = {"0": "../../../../tmp/ckptio_evil_0", "1": "/tmp/ckptio_evil_1", "2": "a/./b\\c"}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for name, data in recs:
            if name.endswith("data.pkl"):
                for k, v in evil.items():  # BINUNICODE 1-byte keys in the persistent ids
                    data = data.replace(b"X\x01\x00\x00\x00" + k.encode(),
                                        b"X" + len(v).to_bytes(4, "little") + v.encode())
            for k, v in evil.items():
                if name.endswith("/data/" + k):
                    name = name[: -len(k)] + v
            zout.writestr(name, data)
    open(os.path.join(d, "path_keys.pt"), "wb").write(out.getvalue())

    json.dump(facts, open(os.path.join(d, "facts.json"), "w"), indent=1)


def check(sd_path, ref_path):
    sd = torch.load(sd_path, weights_only=True)
    ref = torch.load(ref_path, weights_only=True)
    model = Net()
    model.load_state_dict(sd, strict=True)
    got = model.state_dict()
    assert list(sd.keys()) == list(ref.keys()), (list(sd.keys()), list(ref.keys()))
    for k in ref:
        assert torch.equal(got[k], ref[k]), k
        assert not sd[k].requires_grad, k
    # Tied weights stay tied in the file: one storage behind both keys.
    assert sd["tail.weight"].data_ptr() == sd["tied.weight"].data_ptr()
    print("ok %d keys" % len(sd))


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2])
    elif sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: make_hostile.py prepare DIR | check SD REF")
