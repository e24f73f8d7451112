// A ByteSource over the decompressed bytes of a zstd stream that never holds them whole:
// reads decompress forward from where the last one stopped; a read behind that point
// restarts decompression from the beginning. Memory is zstd's window plus two fixed
// buffers, whatever the file's size. Used for an inner torch-legacy file, whose reader
// and loads go through the file front to back (formats/compress/SPEC.md, section 5).
//
// Reads may come from several threads (the host loads storages in parallel); they are
// served one at a time, and a read ahead of the stream waits briefly for a read of the
// bytes before it (the host's threads take storages in file order) so that concurrent
// loads do not turn into restarts.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/io.h"
#include "formats/status.h"

namespace ckptio::compress {

class ZstdSequentialSource final : public ByteSource {
 public:
  // `compressed` must outlive the source. The decoded size comes from the frames'
  // declared sizes when the input is addressable and every frame has one, else from a
  // first decompression pass; more than max_size decoded bytes is kLimit either way.
  static Result<std::unique_ptr<ZstdSequentialSource>> open(const ByteSource& compressed,
                                                            uint64_t max_size);
  ~ZstdSequentialSource() override;
  // The first (up to) n decoded bytes, for probing the inner format; fewer when the stream
  // is shorter. Memory: n plus zstd's window.
  static Result<std::string> decode_head(const ByteSource& compressed, size_t n, uint64_t max_size);

  uint64_t size() const override;
  Status read_at(uint64_t offset, void* dst, uint64_t n) const override;
  const std::string& name() const override;

  // Offsets that reads are expected to start at (e.g. storages' data): a read beyond the
  // next of these not yet passed waits up to a few milliseconds for it to be read first.
  void expect_reads_at(std::vector<uint64_t> offsets);
  // How often decompression restarted from the beginning (for tests and benchmarks).
  uint64_t restarts() const;

 private:
  ZstdSequentialSource();
  Status init(const ByteSource& compressed, uint64_t max_size);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckptio::compress
