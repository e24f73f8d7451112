"""Checks a file ckptio saved from the C++ tutorial CNN: Python's model.load_state_dict
accepts torch.load(file) strictly, and the values equal the reference checkpoint's.

  check_saved_cnn.py SAVED.pt REFERENCE_cnn.pt
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "data"))
from make_example import Net  # noqa: E402


def main():
    saved = torch.load(sys.argv[1])
    ref = torch.load(sys.argv[2])["model_state_dict"]
    net = Net()
    net.load_state_dict(saved, strict=True)
    assert list(saved.keys()) == list(ref.keys()), (list(saved.keys()), list(ref.keys()))
    assert hasattr(saved, "_metadata") and "conv1" in saved._metadata, "no _metadata"
    for k, v in ref.items():
        assert torch.equal(saved[k], v), k
    print("ok")


if __name__ == "__main__":
    main()
