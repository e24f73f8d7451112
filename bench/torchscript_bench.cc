// TorchScript load times: ckptio's data path (the torchscript plugin: the state_dict's
// tensors in memory, no interpreter), ckptio's runnable path (load_script_module: the same
// torch::jit::load, after reading the storage device tags for map_location) and LibTorch's
// torch::jit::load, on the same archives.
//
//   /usr/bin/python3 bench/py/make_torchscript_bench.py build/bench-data
//   build/bench/torchscript_bench build/bench-data/ts_small.pt build/bench-data/ts_large.pt
//
// Figures go into bench/results/torchscript.md.
#include <benchmark/benchmark.h>
#include <torch/csrc/jit/serialization/import.h>

#include <filesystem>
#include <string>
#include <vector>

#include "ckptio/ckptio.h"
#include "ckptio/script.h"

namespace {

uint64_t state_bytes(const ckptio::Checkpoint& c) {
  uint64_t n = 0;
  for (const auto& s : c.tree.storages) n += s.nbytes;
  return n;
}

void DataPath(benchmark::State& st, std::string path, bool zero_copy) {
  ckptio::LoadOptions o;
  o.format = "torchscript";
  o.zero_copy = zero_copy;
  uint64_t bytes = 0;
  for (auto _ : st) {
    ckptio::Checkpoint c = ckptio::load(path, o);
    bytes = state_bytes(c);
    benchmark::DoNotOptimize(c.storages.data());
  }
  st.SetBytesProcessed(int64_t(bytes) * st.iterations());
}

void CkptioRunnable(benchmark::State& st, std::string path) {
  for (auto _ : st) {
    torch::jit::Module m = ckptio::load_script_module(path);
    benchmark::DoNotOptimize(m);
  }
  st.SetBytesProcessed(int64_t(std::filesystem::file_size(path)) * st.iterations());
}

void JitLoad(benchmark::State& st, std::string path) {
  for (auto _ : st) {
    torch::jit::Module m = torch::jit::load(path);
    benchmark::DoNotOptimize(m);
  }
  st.SetBytesProcessed(int64_t(std::filesystem::file_size(path)) * st.iterations());
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    std::string path = argv[i];
    std::string name = std::filesystem::path(path).filename().string();
    benchmark::RegisterBenchmark(("ckptio_data/" + name).c_str(), DataPath, path, false)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("ckptio_data_zero_copy/" + name).c_str(), DataPath, path, true)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("ckptio_runnable/" + name).c_str(), CkptioRunnable, path)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("torch_jit_load/" + name).c_str(), JitLoad, path)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
