// Fills new anonymous memory without the kernel zeroing it first. A first touch of a fresh
// page makes the kernel allocate and zero it, and the read then writes every byte again;
// userfaultfd's UFFDIO_COPY allocates each page and copies the bytes into it in one step.
// That saves the zeroing pass of a copy load into new tensors (bench/run.py measures it:
// bench/results/README-notes.md). Linux only, best effort: where userfaultfd is not allowed
// (old kernels, privilege), under any seccomp filter (one might kill the process for the
// call), or with CKPTIO_USERFAULTFD=0, open() returns null and callers fault pages in as
// before.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "formats/status.h"

namespace ckptio::host {

// The system's page size (sysconf; 4, 16 or 64 KiB): UFFDIO_COPY lengths and
// MADV_POPULATE_WRITE ranges are multiples of it.
uint64_t page_size();

class FreshPageFiller {
 public:
  // Reads `len` bytes at `offset` within the range being filled into `buf`.
  using ReadFn = std::function<Status(uint64_t offset, void* buf, uint64_t len)>;

  // Null when userfaultfd cannot be used here.
  static std::unique_ptr<FreshPageFiller> open();
  // Releases every adopted range: pages never filled then read as zeros, as usual.
  ~FreshPageFiller();
  FreshPageFiller(const FreshPageFiller&) = delete;
  FreshPageFiller& operator=(const FreshPageFiller&) = delete;

  // Takes over a page-aligned anonymous mapping that nothing has touched yet. Until this
  // filler is destroyed, its pages may only be written through fill(): any other access to a
  // page not yet filled fails or waits. False: use the mapping as usual.
  bool adopt(void* mapping, uint64_t length);

  // Fills `n` bytes at `dst` (page-aligned, inside an adopted mapping, not filled before) from
  // `read`, in pieces; the rest of the last page is zeroed. Thread-safe for disjoint ranges.
  // A failing read's status is returned. `filled` is false when the kernel refused a copy:
  // the range may then be partly filled, and must be written again after destruction.
  Status fill(uint8_t* dst, uint64_t n, const ReadFn& read, bool& filled);

 private:
  explicit FreshPageFiller(int fd) : fd_(fd) {}
  int fd_;
  std::mutex mu_;
  std::vector<std::pair<uintptr_t, uint64_t>> ranges_;
};

}  // namespace ckptio::host
