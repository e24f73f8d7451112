// Google Benchmark suite: loading and saving real torch.save files through the plugins,
// next to the limits measured in the same run (read() of the file, memcpy of its bytes, and
// write() of its bytes into a new file).
//
//   ckptio_bench [benchmark flags] FILE...
//
// Each benchmark reports bytes_per_second over the storage bytes, and us_per_tensor.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "ckptio/ckptio.h"
#include "limit_ops.h"

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
  state.counters["us_per_tensor"] =
      benchmark::Counter(static_cast<double>(f.tensors) * state.iterations() / 1e6,
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

// Untimed, before each write of `out`: every save writes a new file into a settled page
// cache, as the Python peer does. The previous output is removed and dirty pages are
// flushed, so no side pays for the kernel freeing the old file or throttling behind
// writeback of earlier runs (on this VM those alone varied a 1 GiB save from 0.2 s to 2 s).
void settle_before_write(benchmark::State& state, const std::string& out) {
  state.PauseTiming();
  std::filesystem::remove(out);
  ::sync();
  state.ResumeTiming();
}

// `fsync`: the durable save (temporary fsynced, renamed, directory fsynced), reported apart
// from the save into the page cache, which is what ckptio itself costs.
void save_file(benchmark::State& state, const std::string& path, const std::string& format,
               bool fsync = false) {
  FileFacts f = facts(path);
  LoadOptions lo;
  lo.zero_copy = true;
  Checkpoint c = load(path, lo);
  std::string out = path + ".bench-out";
  SaveOptions so;
  so.format = format.empty() ? c.format : format;
  so.fsync = fsync;
  for (auto _ : state) {
    settle_before_write(state, out);
    save(out, c, so);
  }
  std::filesystem::remove(out);
  report(state, f);
}

void read_limit(benchmark::State& state, const std::string& path) {
  FileFacts f = facts(path);
  std::vector<char> buf(f.file_bytes);
  std::memset(buf.data(), 0, buf.size());  // pre-faulted: measure the copy only
  for (auto _ : state) {
    ckptio_bench::read_into(path, buf.data(), f.file_bytes);
    benchmark::DoNotOptimize(buf.data());
  }
  report(state, f);
}

// The save-side limit (limit_ops.h) under the same conditions as the save benchmarks
// (previous output removed, dirty pages flushed, untimed).
void write_limit(benchmark::State& state, const std::string& path, bool preallocate,
                 bool durable = false) {
  FileFacts f = facts(path);
  std::vector<char> buf(f.storage_bytes, 1);  // pre-faulted
  std::string out = path + ".bench-write";
  for (auto _ : state) {
    settle_before_write(state, out);
    if (!ckptio_bench::write_file(out, buf.data(), buf.size(), preallocate, durable)) {
      state.SkipWithError("cannot write the output file");
      break;
    }
  }
  std::filesystem::remove(out);
  report(state, f);
}

// The copy-load limit into fresh memory (limit_ops.h), 2 threads, over as much of the file
// as the storages occupy.
void fresh_copy_limit(benchmark::State& state, const std::string& path, bool no_zeroing) {
  FileFacts f = facts(path);
  if (f.storage_bytes == 0 || f.storage_bytes > f.file_bytes) {
    state.SkipWithError("storages larger than the file (compressed)");
    for (auto _ : state) {
    }
    return;
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  for (auto _ : state) {
    uint8_t* dst = ckptio_bench::fresh_copy(fd, f.storage_bytes, no_zeroing, 2);
    if (!dst) {
      state.SkipWithError("a read failed, or userfaultfd is not allowed here");
      break;
    }
    benchmark::DoNotOptimize(dst);
    state.PauseTiming();
    munmap(dst, f.storage_bytes);
    state.ResumeTiming();
  }
  ::close(fd);
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
          ->UseRealTime();  // --benchmark_min_time sets how long (bench/run.py: 1 s)
    };
    reg("ckptio_load_copy_t1", [path](benchmark::State& s) { load_file(s, path, false, 1); });
    reg("ckptio_load_copy_t2", [path](benchmark::State& s) { load_file(s, path, false, 2); });
    reg("ckptio_load_zero_copy", [path](benchmark::State& s) { load_file(s, path, true, 1); });
    reg("ckptio_save_torch_zip", [path](benchmark::State& s) { save_file(s, path, "torch-zip"); });
    reg("ckptio_save_torch_legacy",
        [path](benchmark::State& s) { save_file(s, path, "torch-legacy"); });
    reg("ckptio_save_fsync", [path](benchmark::State& s) { save_file(s, path, "", true); });
    reg("limit_read", [path](benchmark::State& s) { read_limit(s, path); });
    reg("limit_memcpy", [path](benchmark::State& s) { memcpy_limit(s, path); });
    reg("limit_fresh_copy_t2", [path](benchmark::State& s) { fresh_copy_limit(s, path, false); });
    reg("limit_fresh_copy_uffd_t2",
        [path](benchmark::State& s) { fresh_copy_limit(s, path, true); });
    reg("limit_write", [path](benchmark::State& s) { write_limit(s, path, true); });
    reg("limit_write_no_prealloc", [path](benchmark::State& s) { write_limit(s, path, false); });
    reg("limit_write_fsync", [path](benchmark::State& s) { write_limit(s, path, true, true); });
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
