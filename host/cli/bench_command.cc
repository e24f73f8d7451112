#include "host/cli/bench_command.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "ckptio/ckptio.h"

namespace ckptio::cli {

int run_bench(const BenchArgs& a) {
  if (a.repeat < 1) throw Error(Code::kInvalidArgument, "--repeat must be at least 1");
  if (a.device != "cpu")
    throw Error(Code::kUnsupported,
                "--device " + a.device +
                    ": this ckptio command loads into host memory only; use the LibTorch API "
                    "(TorchLoadOptions::map_location) or bench/gpu on a CUDA host");
  LoadOptions opts;
  opts.zero_copy = a.zero_copy;
  opts.threads = a.threads;
  uint64_t bytes = 0;
  std::vector<double> secs;
  for (int i = 0; i < a.repeat; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    Checkpoint c = load(a.file, opts);
    auto t1 = std::chrono::steady_clock::now();
    secs.push_back(std::chrono::duration<double>(t1 - t0).count());
    bytes = 0;
    for (const auto& s : c.storages) bytes += s.size;
  }
  std::sort(secs.begin(), secs.end());
  double best = secs.front();
  double median = secs.size() % 2 ? secs[secs.size() / 2]
                                  : (secs[secs.size() / 2 - 1] + secs[secs.size() / 2]) / 2;
  double gbps = best > 0 ? bytes / best / 1e9 : 0;
  if (a.json)
    std::printf("{\"best_s\": %.9g, \"median_s\": %.9g, \"bytes\": %llu, \"gbps\": %.9g}\n", best,
                median, static_cast<unsigned long long>(bytes), gbps);
  else
    std::printf("%s: %d loads into %s memory: best %.4f s, median %.4f s, %.3f GB/s (%llu bytes)\n",
                a.file.c_str(), a.repeat, a.device.c_str(), best, median, gbps,
                static_cast<unsigned long long>(bytes));
  return 0;
}

}  // namespace ckptio::cli
