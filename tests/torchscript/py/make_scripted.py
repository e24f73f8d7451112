"""Makes TorchScript archives with Debian's real PyTorch for tests/torchscript.

usage: make_scripted.py prepare WORKDIR
       make_scripted.py check_state_dict WORKDIR SD_FILE      (strict load_state_dict + values)
       make_scripted.py check_swapped WORKDIR SCRIPT_FILE     (torch.jit.load gives new weights)

prepare writes into WORKDIR:
  scripted.pt   torch.jit.script of Net (submodule, BatchNorm buffers, a tensor buffer,
                an exported method) with extra file meta.json
  traced.pt     torch.jit.trace of the same model
  lite.ptl      _save_for_lite_interpreter of the scripted model
  quant.pt      a scripted module with a per-channel qint8 buffer
  input.pt / expected.pt  (torch.save) an input batch and Net's output for it
  new_sd.pt     a different state_dict for Net, legacy format (_use_new_zipfile_serialization=False)
  new_expected.pt  the output with the new weights
  state_dict.json  {key: [dtype, shape]} of Net's state_dict, in order
"""
import json
import os
import sys

import torch
import torch.nn as nn


class Sub(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.bn = nn.BatchNorm1d(3)

    def forward(self, x):
        return torch.relu(self.bn(self.fc(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.sub = Sub()
        self.head = nn.Linear(3, 2)
        self.register_buffer("scale", torch.tensor(2.0))
        self.note = "hi"

    def forward(self, x):
        return self.head(self.sub(x)) * self.scale

    @torch.jit.export
    def embed(self, x):
        return self.sub(x)


class Quant(nn.Module):
    def __init__(self):
        super().__init__()
        w = torch.randn(3, 4)
        q = torch.quantize_per_channel(w, torch.tensor([0.1, 0.2, 0.3], dtype=torch.double),
                                       torch.tensor([0, 1, 2]), 0, torch.qint8)
        self.register_buffer("qweight", q)

    def forward(self, x):
        return x + self.qweight.dequantize().sum()


def make_net(seed):
    torch.manual_seed(seed)
    m = Net()
    # Non-trivial BatchNorm statistics.
    m.train()
    for _ in range(3):
        m(torch.randn(8, 4))
    return m.eval()


def prepare(work):
    os.makedirs(work, exist_ok=True)
    m = make_net(0)
    sm = torch.jit.script(m)
    torch.jit.save(sm, os.path.join(work, "scripted.pt"),
                   _extra_files={"meta.json": '{"trained": "yes"}'})
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    tm = torch.jit.trace(m, x)
    torch.jit.save(tm, os.path.join(work, "traced.pt"))
    sm._save_for_lite_interpreter(os.path.join(work, "lite.ptl"))
    torch.jit.save(torch.jit.script(Quant()), os.path.join(work, "quant.pt"))
    with torch.no_grad():
        torch.save(x, os.path.join(work, "input.pt"))
        torch.save(m(x), os.path.join(work, "expected.pt"))
        m2 = make_net(42)
        torch.save(m2.state_dict(), os.path.join(work, "new_sd.pt"),
                   _use_new_zipfile_serialization=False)
        torch.save(m2(x), os.path.join(work, "new_expected.pt"))
    sd = {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in m.state_dict().items()}
    with open(os.path.join(work, "state_dict.json"), "w") as f:
        json.dump({"keys": list(sd.keys()), "tensors": sd}, f)
    # Raw input/output values for C++ (float32 little-endian).
    with open(os.path.join(work, "input.f32"), "wb") as f:
        f.write(x.contiguous().numpy().tobytes())
    with torch.no_grad():
        with open(os.path.join(work, "expected.f32"), "wb") as f:
            f.write(m(x).contiguous().numpy().tobytes())
        with open(os.path.join(work, "new_expected.f32"), "wb") as f:
            f.write(m2(x).contiguous().numpy().tobytes())


def check_state_dict(work, path):
    sd = torch.load(path, weights_only=True)
    m = Net()
    m.load_state_dict(sd, strict=True)
    ref = torch.jit.load(os.path.join(work, "scripted.pt")).state_dict()
    assert list(sd.keys()) == list(ref.keys()), (list(sd.keys()), list(ref.keys()))
    for k, v in ref.items():
        assert torch.equal(sd[k], v), k
    m.eval()
    x = torch.load(os.path.join(work, "input.pt"))
    with torch.no_grad():
        assert torch.equal(m(x), torch.load(os.path.join(work, "expected.pt")))
    print("ok")


def check_swapped(work, path):
    sm = torch.jit.load(path)
    new = torch.load(os.path.join(work, "new_sd.pt"))
    for k, v in sm.state_dict().items():
        assert torch.equal(v, new[k]), k
    x = torch.load(os.path.join(work, "input.pt"))
    with torch.no_grad():
        assert torch.allclose(sm(x), torch.load(os.path.join(work, "new_expected.pt")), atol=1e-6)
    print("ok")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "prepare":
        prepare(sys.argv[2])
    elif cmd == "check_state_dict":
        check_state_dict(sys.argv[2], sys.argv[3])
    elif cmd == "check_swapped":
        check_swapped(sys.argv[2], sys.argv[3])
    else:
        sys.exit("unknown command " + cmd)
