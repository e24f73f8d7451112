"""Writes example_checkpoint.pt, the bundled example, with real PyTorch.

Run with Debian's PyTorch: /usr/bin/python3 examples/data/make_example.py
It trains the CIFAR-10 tutorial CNN (conv1, pool, conv2, fc1..fc3) for 3 SGD steps on
random data with a fixed seed and saves the general checkpoint dict PyTorch's tutorial
recommends: epoch, model_state_dict, optimizer_state_dict, loss.
"""
import os
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def train_general_checkpoint(lr):
    """Trains Net for 3 SGD steps on seeded random data; returns (net, the general checkpoint)."""
    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    x = torch.randn(4, 3, 32, 32)
    y = torch.randint(0, 10, (4,))
    for _ in range(3):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
    return net, {"epoch": 3, "model_state_dict": net.state_dict(),
                 "optimizer_state_dict": opt.state_dict(), "loss": loss.item()}


def main():
    _, checkpoint = train_general_checkpoint(lr=0.001)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "example_checkpoint.pt")
    torch.save(checkpoint, out)
    print(out, torch.__version__)


if __name__ == "__main__":
    main()
