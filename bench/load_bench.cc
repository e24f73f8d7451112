// Google Benchmark suite: loading and saving real torch.save files through the plugins,
// next to the limits measured in the same run (read() of the file, memcpy of its bytes).
//
//   ckptio_bench [benchmark flags] FILE...
//
// Each benchmark reports bytes_per_second over the storage bytes, and us_per_tensor.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ckptio/ckptio.h"

namespace {

using namespace ckptio;

struct FileFacts {
  uint64_t storage_bytes = 0;
  uint64_t file_bytes = 0;
  int64_t tensors = 0;
  std::string format;
};

FileFacts facts(const std::string& path) {
  LoadOptions lo;
  lo.load_data = false;
  Checkpoint c = load(path, lo);
  FileFacts f;
  for (const auto& s : c.tree.storages) f.storage_bytes += s.nbytes;
  for_each_tensor(c.tree.root, [&](const ValuePtr&, const std::string&) { ++f.tensors; });
  f.file_bytes = std::filesystem::file_size(path);
  f.format = c.format;
  return f;
}

void report(benchmark::State& state, const FileFacts& f) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * f.storage_bytes));
  state.counters["us_per_tensor"] = benchmark::Counter(
      static_cast<double>(f.tensors) * state.iterations() / 1e6,
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["tensors"] = static_cast<double>(f.tensors);
}

void load_file(benchmark::State& state, const std::string& path, bool zero_copy, int threads) {
  FileFacts f = facts(path);
  LoadOptions lo;
  lo.zero_copy = zero_copy;
  lo.threads = threads;
  for (auto _ : state) {
    Checkpoint c = load(path, lo);
    benchmark::DoNotOptimize(c.storages.data());
    // Freeing the result is not part of loading (the Python peer excludes it too).
    state.PauseTiming();
    c = Checkpoint{};
    state.ResumeTiming();
  }
  report(state, f);
}

void save_file(benchmark::State& state, const std::string& path, const std::string& format) {
  FileFacts f = facts(path);
  LoadOptions lo;
  lo.zero_copy = true;
  Checkpoint c = load(path, lo);
  std::string out = path + ".bench-out";
  SaveOptions so;
  so.format = format;
  so.fsync = false;  // fsync is reported separately (disk, not ckptio)
  for (auto _ : state) save(out, c, so);
  std::filesystem::remove(out);
  report(state, f);
}

void read_limit(benchmark::State& state, const std::string& path) {
  FileFacts f = facts(path);
  std::vector<char> buf(f.file_bytes);
  std::memset(buf.data(), 0, buf.size());  // pre-faulted: measure the copy only
  for (auto _ : state) {
    int fd = ::open(path.c_str(), O_RDONLY);
    uint64_t off = 0;
    while (off < f.file_bytes) {
      ssize_t n = ::pread(fd, buf.data() + off, std::min<uint64_t>(1u << 30, f.file_bytes - off),
                          static_cast<off_t>(off));
      if (n <= 0) break;
      off += static_cast<uint64_t>(n);
    }
    ::close(fd);
    benchmark::DoNotOptimize(buf.data());
  }
  report(state, f);
}

void memcpy_limit(benchmark::State& state, const std::string& path) {
  FileFacts f = facts(path);
  std::vector<char> a(f.storage_bytes, 1), b(f.storage_bytes, 0);
  for (auto _ : state) {
    std::memcpy(b.data(), a.data(), a.size());
    benchmark::DoNotOptimize(b.data());
  }
  report(state, f);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    std::string path = argv[i];
    std::string name = std::filesystem::path(path).filename().string();
    auto reg = [&](const std::string& what, auto fn) {
      benchmark::RegisterBenchmark((what + "/" + name).c_str(), fn)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(1.0);
    };
    reg("ckptio_load_copy_t1", [path](benchmark::State& s) { load_file(s, path, false, 1); });
    reg("ckptio_load_copy_t2", [path](benchmark::State& s) { load_file(s, path, false, 2); });
    reg("ckptio_load_zero_copy", [path](benchmark::State& s) { load_file(s, path, true, 1); });
    reg("ckptio_save_torch_zip",
        [path](benchmark::State& s) { save_file(s, path, "torch-zip"); });
    reg("ckptio_save_torch_legacy",
        [path](benchmark::State& s) { save_file(s, path, "torch-legacy"); });
    reg("limit_read", [path](benchmark::State& s) { read_limit(s, path); });
    reg("limit_memcpy", [path](benchmark::State& s) { memcpy_limit(s, path); });
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
