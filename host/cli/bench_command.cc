#include "host/cli/bench_command.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "ckptio/ckptio.h"
#ifdef CKPTIO_CLI_HAVE_CUDA
#include "ckptio/cuda.h"
#endif

namespace ckptio::cli {
namespace {

// "cpu" -> -1; "cuda" -> 0 (a fresh process's current device); "cuda:N" -> N. Anything else
// is refused.
int parse_device(const std::string& d) {
  if (d == "cpu") return -1;
  if (d == "cuda") return 0;
  if (d.rfind("cuda:", 0) == 0 && d.size() > 5 && d.size() <= 8 &&
      std::all_of(d.begin() + 5, d.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::atoi(d.c_str() + 5);
  throw Error(Code::kInvalidArgument, "--device " + d + ": unknown device (cpu, cuda or cuda:N)");
}

// One timed load of the whole file; returns the storage bytes loaded. What was loaded is
// freed after `seconds` is taken, so freeing is not timed (as in bench/).
uint64_t load_once(const BenchArgs& a, int device, double& seconds) {
  uint64_t bytes = 0;
  auto t0 = std::chrono::steady_clock::now();
  if (device < 0) {
    LoadOptions opts;
    opts.zero_copy = a.zero_copy;
    opts.threads = a.threads;
    Checkpoint c = load(a.file, opts);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (const auto& s : c.storages) bytes += s.size;
    return bytes;
  }
#ifdef CKPTIO_CLI_HAVE_CUDA
  // File -> pinned ring -> device memory (libckptio_cuda); returns once the bytes are there.
  std::unique_ptr<Reader> reader = Reader::open(a.file);
  std::vector<uint32_t> all(reader->tree().storages.size());
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
  cuda::CudaLoadOptions opts;
  opts.threads = a.threads;
  std::vector<cuda::DeviceStorage> on_device = cuda::load_to_device(*reader, all, device, opts);
  seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const auto& s : on_device) bytes += s.size;
  return bytes;
#else
  throw Error(Code::kInternal, "--device " + a.device + ": no GPU data path");  // check_device
#endif
}

// Refuses a device this process cannot use, before any file is read.
void check_device(const BenchArgs& a, int device) {
  if (device < 0) return;
  if (a.zero_copy)
    throw Error(
        Code::kInvalidArgument,
        "--zero-copy maps the file into host memory; it does not apply to --device " + a.device);
#ifdef CKPTIO_CLI_HAVE_CUDA
  std::string why;
  if (!cuda::cuda_device_available(&why))
    throw Error(Code::kUnsupported, "--device " + a.device + ": " + why);
  if (device >= cuda::device_count())
    throw Error(Code::kInvalidArgument, "--device " + a.device + ": there are " +
                                            std::to_string(cuda::device_count()) + " CUDA devices");
#else
  throw Error(Code::kUnsupported, "--device " + a.device +
                                      ": this ckptio was built without the GPU data path (no "
                                      "CUDA toolkit when it was built)");
#endif
}

}  // namespace

int run_bench(const BenchArgs& a) {
  if (a.repeat < 1) throw Error(Code::kInvalidArgument, "--repeat must be at least 1");
  int device = parse_device(a.device);
  check_device(a, device);
  uint64_t bytes = 0;
  std::vector<double> secs(a.repeat);
  for (int i = 0; i < a.repeat; ++i) bytes = load_once(a, device, secs[i]);
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
