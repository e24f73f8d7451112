// The chunked zstd record container of torch-zip-zstd (formats/compress/SPEC.md, section 2):
// a storage's bytes cut into fixed-size chunks, each byte-grouped (byte_group.h) and its
// planes zstd-compressed independently (a plane that would not shrink is stored in a frame
// of raw blocks), with a CRC32 of every chunk's original bytes. The whole record is one
// standard zstd stream (an index in a skippable frame, then the planes' frames), so zip
// tools that know method 93 decode it to the grouped bytes. Chunks decode independently, so a
// record decodes on all cores, and any byte range decodes without touching the other chunks.
//
// Ownership: ChunkedRecord is a parsed index (offsets into the caller's ByteSource); the
// source must outlive it. Nothing here allocates more than the sizes the index has already
// validated against the record's real length and the caller's limits.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/compress/byte_group.h"
#include "formats/worker_pool.h"
#include "formats/io.h"
#include "formats/status.h"

namespace ckptio::compress {

constexpr uint32_t kMinChunkSize = 4096;
constexpr uint32_t kMaxChunkSize = 64u << 20;
constexpr uint32_t kDefaultChunkSize = 1u << 20;
constexpr int kDefaultLevel = -3;  // measured best for grouped floats, see SPEC.md section 4

struct ChunkedOptions {
  int level = kDefaultLevel;                // zstd level (negative: faster)
  uint32_t chunk_size = kDefaultChunkSize;  // multiple of 4 in [kMinChunkSize, kMaxChunkSize]
};

Status check_chunked_options(const ChunkedOptions& options);

// Encodes one record: write() the record's bytes (exactly total_size of them, in pieces of
// any size), then finish() for the whole container. Chunks are compressed in batches on
// `pool`; memory is one batch of input plus the compressed output.
class ChunkedEncoder final : public ByteSink {
 public:
  ChunkedEncoder(Grouping grouping, uint64_t total_size, const ChunkedOptions& options,
                 WorkerPool& pool);
  ~ChunkedEncoder() override;
  Status write(const void* data, uint64_t n) override;
  Result<std::string> finish();
  // After finish(): CRC32 of what the record's zstd stream decodes to (the byte-grouped
  // chunks), which is the CRC its zip directory entry (method 93) must carry.
  uint32_t stream_crc() const;

 private:
  Status flush_batch();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Convenience: encodes `n` bytes in memory.
Result<std::string> encode_chunked(Grouping grouping, const void* data, uint64_t n,
                                   const ChunkedOptions& options, WorkerPool& pool);

// A validated index of one record in a source.
struct ChunkedRecord {
  std::string what;  // "<file>: record 'archive/data/0'" for messages
  Grouping grouping = Grouping::kNone;
  uint32_t chunk_size = 0;
  uint64_t total_size = 0;
  struct Chunk {
    uint64_t offset = 0;               // source offset of the first plane
    uint32_t crc = 0;                  // CRC32 of the chunk's original bytes
    std::array<uint32_t, 4> stored{};  // stored size of each plane
    std::array<bool, 4> raw{};         // plane stored raw (not a zstd frame)
  };
  std::vector<Chunk> chunks;

  uint64_t chunk_length(size_t i) const {
    return i + 1 < chunks.size() ? chunk_size : total_size - uint64_t(chunk_size) * i;
  }
};

// Parses and validates the container header and chunk table of the record that occupies
// [offset, offset + length) of src: magic, version, grouping, chunk size, chunk count vs
// total size, table and payload sizes vs length, raw plane sizes. `expected_size` is the
// size the storage must decode to; `what` names the record in messages.
Result<ChunkedRecord> parse_chunked(const ByteSource& src, uint64_t offset, uint64_t length,
                                    uint64_t expected_size, const std::string& what);

// Per-worker decoding state (a zstd context and scratch buffers); one per thread.
class ChunkDecoder {
 public:
  ChunkDecoder();
  ~ChunkDecoder();
  ChunkDecoder(ChunkDecoder&&) noexcept;
  // Decodes chunk i whole into dst (chunk_length(i) bytes), verifying sizes and the CRC.
  Status decode(const ByteSource& src, const ChunkedRecord& r, size_t i, uint8_t* dst);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Decodes bytes [offset, offset + n) of the record into dst, chunks in parallel on pool
// (decoders: one per pool worker).
Status decode_chunked_range(const ByteSource& src, const ChunkedRecord& r, uint64_t offset,
                            uint64_t n, uint8_t* dst, WorkerPool& pool,
                            std::vector<ChunkDecoder>& decoders);

}  // namespace ckptio::compress
