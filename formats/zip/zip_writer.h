// Writes a zip the way PyTorch's PyTorchStreamWriter does: stored records whose data start
// at a multiple of `alignment` (FB padding extra field in the local header), data
// descriptors with the real CRC32, ZIP64 extras where a size or offset needs them, and a
// ZIP64 end record followed by the classic one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/io.h"
#include "formats/status.h"

namespace ckptio {

class ZipWriter {
 public:
  ZipWriter(ByteSink& sink, std::string prefix, uint32_t alignment = 64);

  // Writes a whole record "<prefix>/<name>".
  Status add(const std::string& name, const void* data, uint64_t size);
  // Streams a record of exactly `size` bytes: begin, write() until size bytes, end().
  Status begin(const std::string& name, uint64_t size);
  Status write(const void* data, uint64_t n);
  Status end();
  // Central directory and end records. No record may be added after.
  Status finish();

  uint64_t bytes_written() const { return offset_; }

 private:
  struct Record {
    std::string name;
    uint64_t header_offset, size;
    uint32_t crc;
  };
  Status emit(const void* data, uint64_t n);

  ByteSink& sink_;
  std::string prefix_;
  uint32_t alignment_;
  uint64_t offset_ = 0;
  std::vector<Record> records_;
  bool open_ = false;
  uint64_t open_written_ = 0;
  uint32_t open_crc_ = 0;
};

}  // namespace ckptio
