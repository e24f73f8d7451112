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
  std::vector<uint8_t> buffer_;
};

}  // namespace ckptio::host
