// The `zstd` wrapper format (formats/compress/SPEC.md, section 5): a standard zstd stream
// around another format's bytes, so `zstd -d` restores the inner file. The stream starts
// with a skippable frame (which zstd tools skip) naming the inner format.
//
// Reading decompresses into one buffer whose size is bounded before and during
// decompression (no decompression bombs); the caller hands that buffer to the inner format.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "formats/io.h"
#include "formats/status.h"

namespace ckptio::compress {

constexpr uint32_t kZstdMagic = 0xFD2FB528u;
constexpr uint32_t kSkippableMagic = 0x184D2A50u;  // 0x184D2A50..5F
constexpr const char kInnerMarker[] = "ckptio-inner=";
// A trailing skippable frame our writer adds: "ckptio-size=" and the u64 number of bytes the
// stream decodes to (the frame itself cannot declare it: the size is unknown when it
// starts). Lets a streaming reader know the size without a counting pass.
constexpr uint32_t kSizeTrailerMagic = 0x184D2A51u;
constexpr const char kSizeMarker[] = "ckptio-size=";
constexpr size_t kSizeTrailerBytes = 8 + (sizeof kSizeMarker - 1) + 8;
// The decoded size the trailer at the end of src declares, or UINT64_MAX when there is none.
uint64_t declared_size_from_trailer(const ByteSource& src);

// True when the head starts a zstd frame or a skippable frame followed by one.
bool looks_like_zstd(const uint8_t* head, size_t n);
// The inner format named by our skippable frame at the start of head; "" when absent.
std::string inner_format_from_head(const uint8_t* head, size_t n);

struct ZstdWriteOptions {
  int level = 3;
  bool size_trailer = true;  // append the ckptio-size skippable frame
  unsigned threads = 1;     // zstd's own worker threads (0 or 1: none)
  std::string inner;        // written into the leading skippable frame when non-empty
};

// A ByteSink that zstd-compresses everything written to it into `out`; finish() ends the
// frame. Memory: zstd's window and a 1 MiB output buffer.
class ZstdCompressSink final : public ByteSink {
 public:
  ZstdCompressSink(ByteSink& out, const ZstdWriteOptions& options);
  ~ZstdCompressSink() override;
  Status write(const void* data, uint64_t n) override;
  Status finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Decompressed bytes, owned (an anonymous mapping that grows with mremap; 64-byte aligned).
class Buffer {
 public:
  Buffer() = default;
  ~Buffer();
  Buffer(Buffer&& o) noexcept;
  Buffer& operator=(Buffer&& o) noexcept;
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

  Status reserve(uint64_t capacity);  // grows the mapping (keeps contents)
  uint8_t* mutable_data() { return data_; }
  uint64_t capacity() const { return capacity_; }
  void set_size(uint64_t n) { size_ = n; }

 private:
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0, capacity_ = 0;
};

// Decompresses the whole zstd stream in src (all frames; skippable frames are skipped).
// Fails with kLimit before allocating when a frame declares more than max_size bytes in
// total, and as soon as the output would pass max_size when sizes are not declared;
// truncated or corrupt streams are kCorrupt naming src.name().
Result<Buffer> zstd_decompress_bounded(const ByteSource& src, uint64_t max_size);

}  // namespace ckptio::compress
