// Tensor kernels and the pickle writer and reader, all in libtorch_cpu: what ckptio's torch
// adapter needs from LibTorch.
#include <torch/serialize.h>
#include <torch/types.h>

#include <cstdio>

int main() {
  const torch::Tensor t = torch::arange(6, torch::kFloat32).reshape({2, 3});
  const std::vector<char> bytes = torch::pickle_save(t);
  const torch::Tensor back = torch::pickle_load(bytes).toTensor();
  std::printf("sum=%g equal=%d\n", back.sum().item<double>(), static_cast<int>(torch::equal(t, back)));
  return 0;
}
