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
  // `shown` names the file in messages (default: `path`).
  static Result<std::shared_ptr<FileSource>> open(const std::string& path,
                                                  const std::string& shown = "");
  ~FileSource() override;

  uint64_t size() const override { return size_; }
  Status read_at(uint64_t offset, void* dst, uint64_t n) const override;
  const uint8_t* data() const override { return map_; }
  const std::string& name() const override { return name_; }

  // While a plugin parses the file (its directory, pickles and headers, a few scattered
  // pages), faults on the mapping read only the page touched: the kernel's read-around
  // would otherwise read up to read_ahead_kb (often 8 MiB) of storage bytes around each
  // header of a cold file, synchronously, before the first storage is read. After the
  // parse, storage reads and zero-copy tensors get the normal read-around back.
  void advise_parsing(bool parsing) const;

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
