// LibTorch's own loaders and savers as peers, on the same bytes as ckptio, in one run:
// torch::pickle_save/pickle_load (LibTorch's zip pickle format) and torch::save/torch::load of
// a tensor list, next to ckptio loading the very file torch::pickle_save wrote.
//
//   libtorch_peer_bench [benchmark flags] TORCH_SAVE_FILE...
//
// Each input (a Python torch.save state_dict) is loaded once with ckptio_torch; its tensors
// are then written by LibTorch to build/…/<name>.pickle_save.pt and .torch_save.pt.
//
// Also: loading the input into an existing model (a module mirroring the state_dict, its
// memory already touched, as a constructed model's is) with ckptio::load_state_dict(module,
// file), against ckptio::load followed by load_state_dict(module, state_dict).
#include <benchmark/benchmark.h>
#include <torch/script.h>
#include <torch/serialize.h>

#include <filesystem>
#include <fstream>

#include "ckptio/torch.h"
#include "mirror_module.h"

namespace {

struct Inputs {
  std::string pickle_file, archive_file;
  int64_t bytes = 0;
  int64_t tensors = 0;
};

Inputs prepare(const std::string& path) {
  ckptio::TorchLoadOptions o;
  o.map_location = "cpu";
  ckptio::TorchCheckpoint ckpt = ckptio::load(path, o);
  ckptio::StateDict sd = ckpt.state_dict();
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  std::vector<torch::Tensor> list;
  Inputs in;
  for (const auto& item : sd) {
    dict.insert(item.key(), item.value());
    list.push_back(item.value());
    in.bytes += item.value().numel() * item.value().element_size();
    ++in.tensors;
  }
  in.pickle_file = path + ".pickle_save.pt";
  in.archive_file = path + ".torch_save.pt";
  if (!std::filesystem::exists(in.pickle_file)) {
    std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
    std::ofstream(in.pickle_file, std::ios::binary).write(bytes.data(), bytes.size());
  }
  if (!std::filesystem::exists(in.archive_file)) torch::save(list, in.archive_file);
  return in;
}

std::vector<char> read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), {});
}

void report(benchmark::State& s, const Inputs& in) {
  s.SetBytesProcessed(s.iterations() * in.bytes);
  s.counters["tensors"] = static_cast<double>(in.tensors);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    std::string path = argv[i];
    std::string name = std::filesystem::path(path).filename().string();
    auto in = std::make_shared<Inputs>(prepare(path));
    auto reg = [&](const std::string& what, auto fn) {
      benchmark::RegisterBenchmark((what + "/" + name).c_str(), fn)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    };
    reg("libtorch_pickle_load", [in](benchmark::State& s) {
      for (auto _ : s) {
        std::vector<char> bytes = read_all(in->pickle_file);  // pickle_load takes memory
        c10::IValue v = torch::pickle_load(bytes);
        benchmark::DoNotOptimize(v);
      }
      report(s, *in);
    });
    reg("ckptio_load_pickle_save_file", [in](benchmark::State& s) {
      ckptio::TorchLoadOptions o;
      o.map_location = "cpu";
      for (auto _ : s) {
        ckptio::TorchCheckpoint c = ckptio::load(in->pickle_file, o);
        ckptio::ValuePtr root = c.tree().root;  // non-const: Benchmark 1.8 deprecates const
        benchmark::DoNotOptimize(root);
      }
      report(s, *in);
    });
    reg("ckptio_load_state_dict_file", [in, path](benchmark::State& s) {
      ckptio::TorchLoadOptions o;
      o.map_location = "cpu";
      auto model = ckptio_bench::mirror_module(ckptio::load(path, o).state_dict());
      for (auto _ : s) {
        ckptio::LoadStateDictReport r = ckptio::load_state_dict(*model, path);
        if (r.read_in_place.size() != static_cast<size_t>(in->tensors))
          s.SkipWithError("not every tensor was read in place");
      }
      report(s, *in);
    });
    reg("ckptio_load_then_load_state_dict", [in, path](benchmark::State& s) {
      ckptio::TorchLoadOptions o;
      o.map_location = "cpu";
      auto model = ckptio_bench::mirror_module(ckptio::load(path, o).state_dict());
      for (auto _ : s) {
        ckptio::StateDict sd = ckptio::load(path, o).state_dict();
        ckptio::load_state_dict(*model, sd);
        s.PauseTiming();  // freeing the loaded copy is not timed (as in every load here)
        sd = ckptio::StateDict();
        s.ResumeTiming();
      }
      report(s, *in);
    });
    reg("libtorch_torch_load", [in](benchmark::State& s) {
      for (auto _ : s) {
        std::vector<torch::Tensor> list;
        torch::load(list, in->archive_file);
        benchmark::DoNotOptimize(list.data());
      }
      report(s, *in);
    });
    reg("libtorch_pickle_save", [in, path](benchmark::State& s) {
      ckptio::TorchLoadOptions o;
      o.map_location = "cpu";
      ckptio::StateDict sd = ckptio::load(path, o).state_dict();
      c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
      for (const auto& item : sd) dict.insert(item.key(), item.value());
      for (auto _ : s) {
        std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
        std::ofstream(in->pickle_file + ".out", std::ios::binary).write(bytes.data(), bytes.size());
      }
      std::filesystem::remove(in->pickle_file + ".out");
      report(s, *in);
    });
    reg("ckptio_torch_save", [in, path](benchmark::State& s) {
      ckptio::TorchLoadOptions o;
      o.map_location = "cpu";
      ckptio::StateDict sd = ckptio::load(path, o).state_dict();
      ckptio::SaveOptions so;
      so.fsync = false;
      for (auto _ : s) ckptio::save(in->pickle_file + ".out", sd, so);
      std::filesystem::remove(in->pickle_file + ".out");
      report(s, *in);
    });
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
