// libckptio_torch with map_location on CUDA, through libckptio_cuda: tensors land on the
// device with the file's bytes, shared storages stay shared, lazy loads work, and CUDA
// tensors save. Skips, saying why, unless LibTorch has CUDA and a device is present.
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/nn/modules/linear.h>


#include "ckptio/cuda.h"
#include "ckptio/torch.h"
#include "support/scratch.h"

namespace ckptio {
namespace {

#define SKIP_WITHOUT_TORCH_CUDA()                                                  \
  do {                                                                             \
    std::string why;                                                               \
    if (!cuda::cuda_device_available(&why)) GTEST_SKIP() << why;                   \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "this LibTorch has no CUDA"; \
  } while (0)

using test_support::ScratchDir;

StateDict sample() {
  torch::manual_seed(0);
  StateDict sd;
  auto w = torch::randn({300, 257});
  sd.insert("w", w);
  sd.insert("w_t", w.t());  // shares w's storage
  sd.insert("b", torch::arange(1000, torch::kInt64));
  sd.insert("h", torch::randn({5000, 1000}).to(torch::kFloat16));  // 10 MB: several chunks
  sd.insert("empty", torch::empty({0}));
  return sd;
}

// Queues on LibTorch's stream ~0.1-1 s of matmuls and then a write of their result into `t`
// (2-D, at most 8192 x 8192): work that streams of ckptio's own must wait for.
void queue_slow_write(torch::Tensor t) {
  torch::NoGradGuard no_grad;
  torch::Tensor a = torch::randn({8192, 8192}, torch::kCUDA);
  for (int i = 0; i < 10; ++i) a = torch::tanh(a.matmul(a));
  t.copy_(a.narrow(0, 0, t.size(0)).narrow(1, 0, t.size(1)));
}

class TorchCuda : public ::testing::TestWithParam<std::string> {};

TEST_P(TorchCuda, LoadsToCudaLikeToCpu) {
  SKIP_WITHOUT_TORCH_CUDA();
  ScratchDir dir("torch-cuda");
  StateDict sd = sample();
  SaveOptions so;
  so.format = GetParam();
  so.fsync = false;
  save(dir.file("m.pt"), sd, so);
  for (bool lazy : {false, true}) {
    TorchLoadOptions o;
    o.map_location = "cuda:0";
    o.lazy = lazy;
    TorchCheckpoint ck = load(dir.file("m.pt"), o);
    StateDict got = ck.state_dict();
    ASSERT_EQ(got.size(), sd.size());
    for (const auto& item : sd) {
      torch::Tensor t = got[item.key()];
      EXPECT_TRUE(t.is_cuda()) << item.key();
      EXPECT_EQ(t.device().index(), 0);
      EXPECT_TRUE(torch::equal(t.cpu(), item.value())) << item.key() << " lazy=" << lazy;
    }
    EXPECT_EQ(got["w"].storage().unsafeGetStorageImpl(),
              got["w_t"].storage().unsafeGetStorageImpl())
        << "sharing lost";
    got["w"].add_(1);  // memory is ordinary LibTorch CUDA memory
    EXPECT_TRUE(torch::equal(got["w_t"].cpu(), sd["w"].t() + 1));
  }
}

TEST_P(TorchCuda, SavesCudaTensors) {
  SKIP_WITHOUT_TORCH_CUDA();
  ScratchDir dir("torch-cuda");
  StateDict sd = sample();
  StateDict on_gpu;
  for (const auto& item : sd) on_gpu.insert(item.key(), item.value().to(torch::kCUDA));
  SaveOptions so;
  so.format = GetParam();
  so.fsync = false;
  save(dir.file("g.pt"), on_gpu, so);
  TorchLoadOptions o;
  o.map_location = "cpu";
  StateDict back = load(dir.file("g.pt"), o).state_dict();
  for (const auto& item : sd)
    EXPECT_TRUE(torch::equal(back[item.key()], item.value())) << item.key();

  // Storages go to the host through the pinned ring on streams of our own: a write queued on
  // LibTorch's stream behind slow work must be in the file.
  queue_slow_write(on_gpu["h"]);
  save(dir.file("queued.pt"), on_gpu, so);
  back = load(dir.file("queued.pt"), o).state_dict();
  EXPECT_TRUE(torch::equal(back["h"], on_gpu["h"].cpu()));
  EXPECT_FALSE(torch::equal(back["h"], sd["h"]));
}

// load_state_dict(module, file) into a CUDA module: whole-storage tensors go from the file
// into the parameters' own device memory; a transposed view goes through a checkpoint tensor.
TEST_P(TorchCuda, StateDictFileReadsIntoCudaModuleInPlace) {
  SKIP_WITHOUT_TORCH_CUDA();
  ScratchDir dir("torch-cuda");
  torch::manual_seed(1);
  torch::nn::Linear ref(2500, 2100);  // 21 MB of weight: several ring slots
  SaveOptions so;
  so.format = GetParam();
  so.fsync = false;
  StateDict whole;
  whole.insert("weight", ref->weight.detach());
  whole.insert("bias", ref->bias.detach());
  save(dir.file("whole.pt"), whole, so);
  StateDict views;
  torch::Tensor w_t = ref->weight.detach().t().contiguous();
  views.insert("weight", w_t.t());  // column-major: not readable in place
  views.insert("bias", ref->bias.detach());
  save(dir.file("views.pt"), views, so);

  for (const auto& [name, expected_in_place] :
       std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"whole.pt", {"weight", "bias"}}, {"views.pt", {"bias"}}}) {
    torch::nn::Linear lin(2500, 2100);
    lin->to(torch::kCUDA);
    void* weight_memory = lin->weight.data_ptr();
    // The load must land after this queued write, or the write would overwrite it.
    queue_slow_write(lin->weight);
    int64_t version = lin->weight._version();
    // One rising progress sequence over every byte read: here the whole file, whether a
    // storage went to the device in place or through a staged host copy.
    std::vector<std::pair<uint64_t, uint64_t>> progress;
    StateDictFileOptions o;
    o.load.base.progress = [&](uint64_t d, uint64_t t) { progress.emplace_back(d, t); };
    LoadStateDictReport r = load_state_dict(*lin, dir.file(name), o);
    EXPECT_TRUE(r.ok()) << name;
    const uint64_t file_bytes = (2500 * 2100 + 2100) * 4;
    ASSERT_FALSE(progress.empty()) << name;
    EXPECT_EQ(progress.back(), std::make_pair(file_bytes, file_bytes)) << name;
    for (size_t i = 0; i < progress.size(); ++i) {
      EXPECT_EQ(progress[i].second, file_bytes) << name << " call " << i;
      EXPECT_GE(progress[i].first, i ? progress[i - 1].first : 0) << name << " call " << i;
    }
    EXPECT_EQ(r.read_in_place, expected_in_place) << name;
    EXPECT_EQ(lin->weight.data_ptr(), weight_memory) << name;
    EXPECT_GT(lin->weight._version(), version) << name;
    EXPECT_TRUE(torch::equal(lin->weight.cpu(), ref->weight.detach())) << name;
    EXPECT_TRUE(torch::equal(lin->bias.cpu(), ref->bias.detach())) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, TorchCuda, ::testing::Values("torch-zip", "torch-legacy"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace ckptio
