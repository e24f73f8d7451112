// One run of each limit the benchmarks compare ckptio with: what the hardware and the kernel
// alone cost for the same bytes, with no parsing and no format. load_bench.cc loops over them
// (Google Benchmark); timed_op.cc runs each once per process, like the peers.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "host/io/fresh_page_fill.h"

namespace ckptio_bench {

// read() of a file's first `n` bytes from the page cache into pre-faulted memory.
inline bool read_into(const std::string& path, char* buf, uint64_t n) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  uint64_t off = 0;
  while (off < n) {
    ssize_t got = ::pread(fd, buf + off, std::min<uint64_t>(1u << 30, n - off), off_t(off));
    if (got <= 0) break;
    off += uint64_t(got);
  }
  ::close(fd);
  return off == n;
}

// The save-side limit: `n` bytes into a new file with one write() stream, as a save produces
// them. `preallocate` first reserves the blocks with fallocate, as ckptio's saves do; without
// it each page takes ext4's delayed-allocation path. `durable`: fsync too.
inline bool write_file(const std::string& out, const char* buf, uint64_t n, bool preallocate,
                       bool durable) {
  int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  if (preallocate) (void)::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, off_t(n));
  uint64_t off = 0;
  while (off < n) {
    ssize_t put = ::write(fd, buf + off, std::min<uint64_t>(64u << 20, n - off));
    if (put <= 0) break;
    off += uint64_t(put);
  }
  bool ok = off == n && (!durable || ::fsync(fd) == 0);
  return ::close(fd) == 0 && ok;
}

// The copy-load limit into fresh memory, which a load that returns new tensors must use: one
// anonymous mapping for `n` bytes, filled by `threads` threads in 16 MiB chunks from the
// file's first `n` bytes. No parsing, no per-storage allocation: what the kernel alone costs.
// Two ways, as ckptio has: `no_zeroing` fills the pages through userfaultfd
// (host/fresh_page_fill.h); otherwise each chunk is populated with MADV_POPULATE_WRITE (the
// kernel zeroes the pages) and then pread. The mapping is the caller's to munmap (freeing is
// not part of loading). Null when it failed or userfaultfd is refused here.
inline uint8_t* fresh_copy(int fd, uint64_t n, bool no_zeroing, unsigned threads) {
  constexpr uint64_t kChunk = 16u << 20;
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  auto* dst = static_cast<uint8_t*>(p);
  std::unique_ptr<ckptio::host::FreshPageFiller> filler;
  if (no_zeroing && (!(filler = ckptio::host::FreshPageFiller::open()) || !filler->adopt(dst, n))) {
    munmap(p, n);
    return nullptr;
  }
  auto pread_all = [fd](uint64_t at, void* buf, uint64_t len) {
    if (::pread(fd, buf, len, off_t(at)) != ssize_t(len))
      return ckptio::Status(ckptio::Code::kIo, "short read");
    return ckptio::Status::Ok();
  };
  std::atomic<uint64_t> next{0};
  std::atomic<bool> ok{true};
  auto work = [&] {
    for (uint64_t o; (o = next.fetch_add(kChunk)) < n;) {
      uint64_t len = std::min(kChunk, n - o);
      bool chunk_ok = false;
      if (filler) {
        auto read = [&](uint64_t at, void* buf, uint64_t l) { return pread_all(o + at, buf, l); };
        bool filled = false;
        chunk_ok = filler->fill(dst + o, len, read, filled).ok() && filled;
      } else {
        madvise(dst + o, len, 23 /* MADV_POPULATE_WRITE */);
        chunk_ok = pread_all(o, dst + o, len).ok();
      }
      if (!chunk_ok) ok = false;
    }
  };
  std::vector<std::thread> others;
  for (unsigned t = 1; t < std::max(1u, threads); ++t) others.emplace_back(work);
  work();
  for (auto& t : others) t.join();
  filler.reset();
  if (!ok) {
    munmap(p, n);
    return nullptr;
  }
  return dst;
}

}  // namespace ckptio_bench
