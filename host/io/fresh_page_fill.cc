#include "host/io/fresh_page_fill.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ckptio::host {
namespace {

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1  // Linux 5.11
#endif

// Pieces are read into a buffer that stays in the core's L2 cache, then copied into the new
// pages. 1 MiB measured a little faster than 256 KiB and than copying from a mapping of the
// file (FileSource reads of 1 MiB use pread, which leaves the file's mapping unfaulted).
// A multiple of every Linux page size (4, 16 and 64 KiB).
constexpr uint64_t kPiece = 1u << 20;

uint64_t round_up_to_page(uint64_t n) { return (n + page_size() - 1) & ~(page_size() - 1); }

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};

// One per thread, kept for the thread's life; null if it cannot be allocated.
uint8_t* piece_buffer() {
  thread_local std::unique_ptr<uint8_t, FreeDeleter> buf(
      static_cast<uint8_t*>(std::aligned_alloc(page_size(), kPiece)));
  return buf.get();
}

// Copies `len` (page multiple) bytes into not yet present pages at `dst`.
bool copy_pages(int fd, uint8_t* dst, const uint8_t* src, uint64_t len) {
  int stalls = 0;
  while (len > 0) {
    uffdio_copy c{};
    c.dst = reinterpret_cast<uintptr_t>(dst);
    c.src = reinterpret_cast<uintptr_t>(src);
    c.len = len;
    if (ioctl(fd, UFFDIO_COPY, &c) == 0) return true;
    // EAGAIN: interrupted by a change to the address space; `copy` says how far it got.
    if (errno != EAGAIN) return false;
    if (c.copy > 0) {
      auto done = static_cast<uint64_t>(c.copy);
      dst += done;
      src += done;
      len -= done;
      stalls = 0;
    } else if (++stalls > 1000) {
      return false;
    }
  }
  return true;
}

// Whether this process runs without a seccomp filter. A filter may kill the process for a
// system call it does not list (systemd's SystemCallFilter= does by default), and allow-lists
// written for ordinary services need not list userfaultfd; so under any filter, or when /proc
// cannot tell, userfaultfd is not tried at all. Read each time: a filter can be installed at any
// point (and a fork's child may have one its parent did not).
bool no_seccomp_filter() {
  std::FILE* f = std::fopen("/proc/self/status", "re");
  if (!f) return false;
  char line[256];
  bool none = false;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "Seccomp:", 8) == 0) {
      none = std::strtol(line + 8, nullptr, 10) == 0;
      break;
    }
  std::fclose(f);
  return none;
}

}  // namespace

uint64_t page_size() {
  static const uint64_t size = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return size;
}

std::unique_ptr<FreshPageFiller> FreshPageFiller::open() {
  if (const char* env = std::getenv("CKPTIO_USERFAULTFD"); env && std::strcmp(env, "0") == 0)
    return nullptr;
  if (!no_seccomp_filter()) return nullptr;
  // User-mode-only faults need no privilege (Linux 5.11+); older kernels reject the flag
  // and then allow userfaultfd to privileged processes only.
  int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY));
  if (fd < 0 && errno == EINVAL)
    fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd < 0) return nullptr;
  uffdio_api api{};
  api.api = UFFD_API;
  if (ioctl(fd, UFFDIO_API, &api) != 0) {
    ::close(fd);
    return nullptr;
  }
  return std::unique_ptr<FreshPageFiller>(new FreshPageFiller(fd));
}

FreshPageFiller::~FreshPageFiller() {
  // Unregistered one by one rather than left to close(): a fork during the load keeps the
  // descriptor open in the child, and the registrations would outlive this filler.
  for (auto [start, length] : ranges_) {
    uffdio_range r{start, length};
    ioctl(fd_, UFFDIO_UNREGISTER, &r);
  }
  ::close(fd_);
}

bool FreshPageFiller::adopt(void* mapping, uint64_t length) {
  auto start = reinterpret_cast<uintptr_t>(mapping);
  length = round_up_to_page(length);
  if (start % page_size() != 0 || length == 0) return false;
  uffdio_register reg{};
  reg.range = {start, length};
  reg.mode = UFFDIO_REGISTER_MODE_MISSING;
  if (ioctl(fd_, UFFDIO_REGISTER, &reg) != 0) return false;
  if (!(reg.ioctls & (uint64_t{1} << _UFFDIO_COPY))) {
    ioctl(fd_, UFFDIO_UNREGISTER, &reg.range);
    return false;
  }
  std::lock_guard<std::mutex> lock(mu_);
  ranges_.emplace_back(start, length);
  return true;
}

Status FreshPageFiller::fill(uint8_t* dst, uint64_t n, const ReadFn& read, bool& filled) {
  filled = false;
  uint8_t* buf = piece_buffer();
  if (!buf) return Status::Ok();
  for (uint64_t done = 0; done < n; done += kPiece) {
    uint64_t len = std::min(kPiece, n - done);
    Status st = read(done, buf, len);
    if (!st.ok()) return st;
    uint64_t pages = round_up_to_page(len);
    std::memset(buf + len, 0, pages - len);
    if (!copy_pages(fd_, dst + done, buf, pages)) return Status::Ok();
  }
  filled = true;
  return Status::Ok();
}

}  // namespace ckptio::host
