// Writes a file atomically: bytes go to a temporary file in the destination's directory,
// which commit() flushes, fsyncs and renames over the destination (then fsyncs the
// directory). Destroying an uncommitted sink removes the temporary: a failed save leaves
// the old file untouched and nothing behind.
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
  const std::string& temp_path() const { return temp_; }

 private:
  AtomicFileSink() = default;
  Status flush_buffer();
  Status write_fully(const void* data, uint64_t n);

  std::string path_, temp_;
  int fd_ = -1;
  bool fsync_ = true;
  bool committed_ = false;
  uint64_t written_ = 0;   // bytes handed to write(2)
  uint64_t reserved_ = 0;  // bytes preallocated by reserve()
  std::vector<uint8_t> buffer_;
};

}  // namespace ckptio::host
