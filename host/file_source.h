// Byte sources the host hands to plugins: a file (mapped read-only when possible, pread
// otherwise) or a caller's memory buffer, and their C ABI view.
#pragma once

#include <memory>
#include <string>

#include "ckptio/plugin.h"
#include "formats/io.h"

namespace ckptio::host {

class FileSource final : public ByteSource, public std::enable_shared_from_this<FileSource> {
 public:
  static Result<std::shared_ptr<FileSource>> open(const std::string& path);
  ~FileSource() override;

  uint64_t size() const override { return size_; }
  Status read_at(uint64_t offset, void* dst, uint64_t n) const override;
  const uint8_t* data() const override { return map_; }
  const std::string& name() const override { return name_; }

 private:
  FileSource() = default;
  int fd_ = -1;
  uint64_t size_ = 0;
  const uint8_t* map_ = nullptr;
  std::string name_;
};

// A C view of any ByteSource; valid while `src` lives.
ckptio_source c_source(const ByteSource& src);

}  // namespace ckptio::host
