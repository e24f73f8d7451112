// The CNN of PyTorch's "Training a classifier" tutorial, in LibTorch, with the same
// submodule names as the Python class (conv1, pool, conv2, fc1, fc2, fc3), so that a
// Python-trained state_dict loads into it strictly.
#pragma once

#include <torch/torch.h>

struct TutorialNetImpl : torch::nn::Module {
  TutorialNetImpl()
      : conv1(register_module("conv1", torch::nn::Conv2d(3, 6, 5))),
        pool(register_module("pool", torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)))),
        conv2(register_module("conv2", torch::nn::Conv2d(6, 16, 5))),
        fc1(register_module("fc1", torch::nn::Linear(16 * 5 * 5, 120))),
        fc2(register_module("fc2", torch::nn::Linear(120, 84))),
        fc3(register_module("fc3", torch::nn::Linear(84, 10))) {}

  torch::Tensor forward(torch::Tensor x) {
    x = pool(torch::relu(conv1(x)));
    x = pool(torch::relu(conv2(x)));
    x = torch::flatten(x, 1);
    x = torch::relu(fc1(x));
    x = torch::relu(fc2(x));
    return fc3(x);
  }

  torch::nn::Conv2d conv1;
  torch::nn::MaxPool2d pool;
  torch::nn::Conv2d conv2;
  torch::nn::Linear fc1, fc2, fc3;
};
TORCH_MODULE(TutorialNet);
