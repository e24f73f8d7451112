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

#include <atomic>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ckptio/ckptio.h"
#include "host/fresh_page_fill.h"

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

// The save-side limit: write() of the storage bytes into a new file in the page cache, under
// the same conditions as the save benchmarks (previous output removed, dirty pages flushed,
// untimed; no fsync).
// The write limit: the same bytes into a new file with one write() stream, as a save
// produces them. `preallocate` first reserves the blocks with fallocate, as ckptio's saves
// do; without it each page takes ext4's delayed-allocation path.
void write_limit(benchmark::State& state, const std::string& path, bool preallocate) {
  FileFacts f = facts(path);
  std::vector<char> buf(f.storage_bytes, 1);  // pre-faulted
  std::string out = path + ".bench-write";
  for (auto _ : state) {
    settle_before_write(state, out);
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      state.SkipWithError("cannot create the output file");
      break;
    }
    if (preallocate) (void)::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, off_t(buf.size()));
    for (uint64_t off = 0; off < buf.size();) {
      ssize_t n = ::write(fd, buf.data() + off, std::min<uint64_t>(64u << 20, buf.size() - off));
      if (n <= 0) break;
      off += static_cast<uint64_t>(n);
    }
    ::close(fd);
  }
  std::filesystem::remove(out);
  report(state, f);
}

// The copy-load limit into fresh memory, which a load that returns new tensors must use:
// one anonymous mapping for all the storage bytes, filled by 2 threads in 16 MiB chunks from
// the file's first storage_bytes bytes (as much page cache as the storages occupy). No
// parsing, no per-storage allocation: what the kernel alone costs. Two ways, as ckptio has:
// `no_zeroing` fills the pages through userfaultfd (host/fresh_page_fill.h); otherwise each
// chunk is populated with MADV_POPULATE_WRITE (the kernel zeroes the pages) and then pread.
void fresh_copy_limit(benchmark::State& state, const std::string& path, bool no_zeroing) {
  FileFacts f = facts(path);
  constexpr uint64_t kChunk = 16u << 20;
  if (f.storage_bytes == 0 || f.storage_bytes > f.file_bytes) {
    state.SkipWithError("storages larger than the file (compressed)");
    for (auto _ : state) {
    }
    return;
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  auto pread_all = [fd](uint64_t at, void* dst, uint64_t n) {
    if (::pread(fd, dst, n, static_cast<off_t>(at)) != static_cast<ssize_t>(n))
      return Status(Code::kIo, "short read");
    return Status::Ok();
  };
  for (auto _ : state) {
    void* p =
        mmap(nullptr, f.storage_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    auto* dst = static_cast<uint8_t*>(p);
    std::unique_ptr<host::FreshPageFiller> filler;
    if (no_zeroing &&
        (!(filler = host::FreshPageFiller::open()) || !filler->adopt(dst, f.storage_bytes))) {
      state.SkipWithError("userfaultfd is not allowed here or refused the mapping");
      munmap(p, f.storage_bytes);
      break;
    }
    std::atomic<uint64_t> next{0};
    std::atomic<bool> ok{true};
    auto work = [&] {
      for (uint64_t o; (o = next.fetch_add(kChunk)) < f.storage_bytes;) {
        uint64_t n = std::min(kChunk, f.storage_bytes - o);
        bool chunk_ok = false;
        if (filler) {
          auto read = [&](uint64_t at, void* buf, uint64_t len) {
            return pread_all(o + at, buf, len);
          };
          bool filled = false;
          chunk_ok = filler->fill(dst + o, n, read, filled).ok() && filled;
        } else {
          madvise(dst + o, n, 23 /* MADV_POPULATE_WRITE */);
          chunk_ok = pread_all(o, dst + o, n).ok();
        }
        if (!chunk_ok) ok = false;
      }
    };
    std::thread other(work);
    work();
    other.join();
    filler.reset();
    if (!ok) {
      state.SkipWithError("a read or a userfaultfd copy failed");
      munmap(p, f.storage_bytes);
      break;
    }
    benchmark::DoNotOptimize(dst);
    state.PauseTiming();
    munmap(p, f.storage_bytes);
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
          ->UseRealTime()
          ->MinTime(1.0);
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
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
