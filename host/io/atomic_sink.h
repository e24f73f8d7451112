// Writes a file atomically: bytes go to a temporary file in the destination's directory,
// which commit() flushes, fsyncs and renames over the destination (then fsyncs the
// directory). Destroying an uncommitted sink removes the temporary: a failed save leaves
// the old file untouched and nothing behind. The temporary is unnamed (O_TMPFILE) where the
// file system allows, and only named at commit, so a killed writer leaves nothing either;
// elsewhere it is ".<name>.ckptio-tmp-<pid>-<n>", locked while written, and the next save
// to the same destination removes those whose writer is gone.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "formats/io.h"

namespace ckptio::host {

class AtomicFileSink final : public ByteSink {
 public:
  static Result<std::unique_ptr<AtomicFileSink>> create(const std::string& path, bool fsync);
  ~AtomicFileSink() override;

  Status write(const void* data, uint64_t n) override;
  // Preallocates about `bytes` for the file (best effort; the file's size is unchanged).
  // Buffered writes into allocated blocks skip ext4's per-page delayed allocation: a 1 GiB
  // save took 0.17 s instead of 0.24 s here. commit() frees whatever was not written.
  void reserve(uint64_t bytes);
  Status commit();
  // Where the bytes are until commit: the named temporary, or /proc/self/fd/N for an unnamed
  // one (tests look at its size and blocks).
  std::string temp_path() const;

 private:
  AtomicFileSink() = default;
  Status flush_buffer();
  Status write_fully(const void* data, uint64_t n);

  std::string path_, dir_, name_;
  std::string temp_;  // empty while the temporary is unnamed
  int fd_ = -1;
  int lock_fd_ = -1;  // keeps the temporary's lock from close() to rename
  bool fsync_ = true;
  bool committed_ = false;
  uint64_t written_ = 0;   // bytes handed to write(2)
  uint64_t reserved_ = 0;  // bytes preallocated by reserve()
  std::vector<uint8_t> buffer_;
};

}  // namespace ckptio::host
