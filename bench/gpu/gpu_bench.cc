// GPU benchmark: in one process, cudaMemcpy's host<->device bandwidth from pinned and from
// pageable memory (the limits), then for each checkpoint file: loading it to cuda:0 through
// libckptio_cuda (file -> pinned ring -> device) and through libckptio_torch with
// map_location "cuda:0", and into an existing model on cuda:0 (load_state_dict(module, file),
// which reads whole storages straight into the parameters), and saving it back from cuda:0.
// Writes a markdown table.
//
//   gpu_bench [--reps N] [--out results.md] [--tmp DIR] NAME=PATH ...
//
// Times are the best of N runs after a warm-up run (the file is then in the page cache, as
// for the memcpy limits, which do not touch storage); saves skip fsync (page-cache write
// speed, not the disk's). GB/s are 1e9 bytes of storage data per second.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "ckptio/ckptio.h"
#include "ckptio/cuda.h"

#ifdef CKPTIO_BENCH_TORCH
#include <torch/cuda.h>

#include "../mirror_module.h"
#include "ckptio/torch.h"
#endif

namespace {

using Clock = std::chrono::steady_clock;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "gpu_bench: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(2);
  }
}

// Best seconds of `reps` timed runs after one warm-up.
double best_of(int reps, const std::function<void()>& fn) {
  fn();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = Clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

std::string fmt(double v, int prec = 2) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

struct Limits {
  double h2d_pinned, h2d_pageable, d2h_pinned, d2h_pageable;  // GB/s
};

Limits measure_limits(uint64_t bytes, int reps) {
  void* dev = nullptr;
  void* pinned = nullptr;
  check(cudaMalloc(&dev, bytes), "cudaMalloc");
  check(cudaHostAlloc(&pinned, bytes, cudaHostAllocDefault), "cudaHostAlloc");
  std::vector<uint8_t> pageable(bytes, 1);  // touched: no first-fault cost inside the timing
  std::memset(pinned, 1, bytes);
  auto copy = [&](void* dst, const void* src, cudaMemcpyKind kind) {
    return [=] {
      check(cudaMemcpy(dst, src, bytes, kind), "cudaMemcpy");
      check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    };
  };
  Limits l;
  double gb = bytes / 1e9;
  l.h2d_pinned = gb / best_of(reps, copy(dev, pinned, cudaMemcpyHostToDevice));
  l.h2d_pageable = gb / best_of(reps, copy(dev, pageable.data(), cudaMemcpyHostToDevice));
  l.d2h_pinned = gb / best_of(reps, copy(pinned, dev, cudaMemcpyDeviceToHost));
  l.d2h_pageable = gb / best_of(reps, copy(pageable.data(), dev, cudaMemcpyDeviceToHost));
  cudaFreeHost(pinned);
  cudaFree(dev);
  return l;
}

struct Row {
  std::string name, format;
  uint64_t bytes = 0;
  // GB/s; 0: not measured
  double load = 0, load_torch = 0, load_module = 0, save = 0, save_torch = 0;
  bool module_in_place = true;  // every tensor read straight into the module's memory
};

std::vector<uint32_t> all_storages(const ckptio::Reader& r) {
  std::vector<uint32_t> v(r.tree().storages.size());
  for (uint32_t i = 0; i < v.size(); ++i) v[i] = i;
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 3;
  std::string out = "bench/results/gpu.md";
  std::string tmp = "/tmp";
  std::vector<std::pair<std::string, std::string>> files;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--out" && i + 1 < argc) {
      out = argv[++i];
    } else if (a == "--tmp" && i + 1 < argc) {
      tmp = argv[++i];
    } else if (a.find('=') != std::string::npos) {
      files.emplace_back(a.substr(0, a.find('=')), a.substr(a.find('=') + 1));
    } else {
      std::cerr << "usage: gpu_bench [--reps N] [--out FILE.md] [--tmp DIR] NAME=PATH ...\n";
      return 2;
    }
  }
  std::string why;
  if (!ckptio::cuda::cuda_device_available(&why)) {
    std::cerr << "gpu_bench: " << why << "\n";
    return 3;
  }
  check(cudaSetDevice(0), "cudaSetDevice");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");

  try {
    // The limits, over as many bytes as the largest checkpoint holds.
    uint64_t max_bytes = 256ull << 20;
    for (const auto& [name, path] : files) {
      auto r = ckptio::Reader::open(path);
      uint64_t b = 0;
      for (const auto& s : r->tree().storages) b += s.nbytes;
      max_bytes = std::max(max_bytes, b);
    }
    std::cerr << "gpu_bench: " << prop.name << "; cudaMemcpy limits over " << max_bytes
              << " bytes\n";
    Limits lim = measure_limits(max_bytes, reps);

    bool torch_cuda = false;
#ifdef CKPTIO_BENCH_TORCH
    torch_cuda = torch::cuda::is_available();
#endif
    std::vector<Row> rows;
    for (const auto& [name, path] : files) {
      Row row;
      row.name = name;
      std::vector<ckptio::cuda::DeviceStorage> kept;
      std::unique_ptr<ckptio::Reader> kept_reader;
      double t = best_of(reps, [&] {
        kept.clear();  // frees the previous run's device memory first
        auto r = ckptio::Reader::open(path);
        kept = ckptio::cuda::load_to_device(*r, all_storages(*r), 0);
        kept_reader = std::move(r);
      });
      row.format = kept_reader->format();
      for (const auto& d : kept) row.bytes += d.size;
      double gb = row.bytes / 1e9;
      row.load = gb / t;
      std::cerr << "gpu_bench: " << name << " (" << row.format << ") load " << fmt(row.load)
                << " GB/s\n";

      ckptio::SaveOptions so;
      so.format = row.format;
      so.fsync = false;
      std::string save_path = tmp + "/gpu_bench_save_" + name + ".pt";
      row.save = gb / best_of(reps, [&] {
                   ckptio::cuda::save_from_device(save_path, kept_reader->tree(), kept, so);
                 });
      std::cerr << "gpu_bench: " << name << " save " << fmt(row.save) << " GB/s\n";
      kept.clear();
      kept_reader.reset();

#ifdef CKPTIO_BENCH_TORCH
      if (torch_cuda) {
        ckptio::TorchLoadOptions to;
        to.map_location = "cuda:0";
        ckptio::StateDict sd;
        row.load_torch = gb / best_of(reps, [&] {
                           sd = ckptio::StateDict();
                           sd = ckptio::load(path, to).state_dict();
                           torch::cuda::synchronize(0);
                         });
        row.save_torch = gb / best_of(reps, [&] { ckptio::save(save_path, sd, so); });
        std::cerr << "gpu_bench: " << name << " torch adapter load " << fmt(row.load_torch)
                  << " GB/s, save " << fmt(row.save_torch) << " GB/s\n";
        auto model = ckptio_bench::mirror_module(sd);
        sd = ckptio::StateDict();
        row.load_module = gb / best_of(reps, [&] {
                            ckptio::LoadStateDictReport r = ckptio::load_state_dict(*model, path);
                            torch::cuda::synchronize(0);
                            if (r.read_in_place.size() != model->parameters().size())
                              row.module_in_place = false;
                          });
        std::cerr << "gpu_bench: " << name << " into a cuda:0 model " << fmt(row.load_module)
                  << " GB/s" << (row.module_in_place ? "" : " (not all read in place)") << "\n";
      }
#endif
      std::remove(save_path.c_str());
      rows.push_back(row);
    }

    std::ostringstream md;
    md << "GPU: " << prop.name << " (" << fmt(prop.totalGlobalMem / double(1ull << 30), 0)
       << " GiB); best of " << reps << " runs after a warm-up, files in the page cache, saves "
       << "without fsync. GB/s = 1e9 bytes of tensor data per second.\n\n";
    md << "cudaMemcpy over " << fmt(max_bytes / double(1ull << 30)) << " GiB: host->device "
       << fmt(lim.h2d_pinned) << " GB/s pinned, " << fmt(lim.h2d_pageable)
       << " GB/s pageable; device->host " << fmt(lim.d2h_pinned) << " GB/s pinned, "
       << fmt(lim.d2h_pageable) << " GB/s pageable.\n\n";
    md << "| file | format | GiB | load to cuda:0 GB/s | x pinned H2D | x pageable H2D | "
          "load via libckptio_torch GB/s | into a cuda:0 model GB/s | x pinned H2D | "
          "save from cuda:0 GB/s | save via libckptio_torch GB/s |\n";
    md << "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const Row& r : rows) {
      auto opt = [](double v) { return v > 0 ? fmt(v) : std::string("n/a"); };
      md << "| " << r.name << " | " << r.format << " | " << fmt(r.bytes / double(1ull << 30))
         << " | " << fmt(r.load) << " | " << fmt(r.load / lim.h2d_pinned) << " | "
         << fmt(r.load / lim.h2d_pageable) << " | " << opt(r.load_torch) << " | "
         << opt(r.load_module) << (r.module_in_place ? "" : " (staged)") << " | "
         << (r.load_module > 0 ? fmt(r.load_module / lim.h2d_pinned) : std::string("n/a")) << " | "
         << fmt(r.save) << " | " << opt(r.save_torch) << " |\n";
    }
    if (!torch_cuda) md << "\nlibckptio_torch columns: n/a (this build's LibTorch has no CUDA).\n";
    std::ofstream f(out);
    f << md.str();
    std::cout << md.str();
    // For the script: the acceptance ratio of the first (uncompressed) file.
    for (const Row& r : rows)
      std::cout << "RATIO " << r.name << " " << fmt(r.load / lim.h2d_pinned, 3) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "gpu_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
