// Byte sources and sinks the codecs read from and write to. The host implements them over
// mapped files, pread, memory buffers and atomic temp files; codecs never open files.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "formats/status.h"

namespace ckptio {

// Random-access, read-only bytes of known size.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  // Reads exactly n bytes at offset; an out-of-range request is a kCorrupt error naming
  // `name()` ("truncated: wanted N bytes at offset O, file has S").
  virtual Status read_at(uint64_t offset, void* dst, uint64_t n) const = 0;
  // All bytes, when they are addressable (mapped file, memory buffer); else null.
  virtual const uint8_t* data() const { return nullptr; }
  // The file's name for messages ("model.pt").
  virtual const std::string& name() const = 0;
};

// A ByteSource over memory the caller keeps alive.
class MemorySource final : public ByteSource {
 public:
  MemorySource(const void* data, uint64_t size, std::string name)
      : data_(static_cast<const uint8_t*>(data)), size_(size), name_(std::move(name)) {}
  uint64_t size() const override { return size_; }
  Status read_at(uint64_t offset, void* dst, uint64_t n) const override {
    if (offset > size_ || n > size_ - offset)
      return Status(Code::kCorrupt, name_ + ": truncated: wanted " + std::to_string(n) +
                                        " bytes at offset " + std::to_string(offset) +
                                        ", file has " + std::to_string(size_));
    if (n) std::memcpy(dst, data_ + offset, n);
    return Status::Ok();
  }
  const uint8_t* data() const override { return data_; }
  const std::string& name() const override { return name_; }

 private:
  const uint8_t* data_;
  uint64_t size_;
  std::string name_;
};

// Sequential output. Codecs keep their own byte count when they need offsets.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual Status write(const void* data, uint64_t n) = 0;
};

// A ByteSink that appends to a std::string (tests, small records).
class StringSink final : public ByteSink {
 public:
  Status write(const void* data, uint64_t n) override {
    out.append(static_cast<const char*>(data), n);
    return Status::Ok();
  }
  std::string out;
};

}  // namespace ckptio
