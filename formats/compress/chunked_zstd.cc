#include "formats/compress/chunked_zstd.h"

#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_c_literalCompressionMode (stable since 1.5.0)
#include <libdeflate.h>
#include <zstd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

#include "formats/zip/crc32_combine.h"
#include "formats/zip/le.h"

namespace ckptio::compress {
namespace {

uint32_t get32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
uint64_t get64(const uint8_t* p) { return uint64_t(get32(p)) | uint64_t(get32(p + 4)) << 32; }

// The record is one zstd stream (SPEC.md section 2): a skippable frame holding the index,
// then one frame per plane.
constexpr uint32_t kIndexFrameMagic = 0x184D2A5Au;  // a zstd skippable frame (0x184D2A5?)
constexpr size_t kSkippableHeader = 8;              // magic, frame size
constexpr char kMagic[4] = {'C', 'K', 'Z', '2'};
constexpr uint8_t kVersion = 2;
constexpr size_t kHeaderSize = 32;
constexpr uint32_t kRawBit = 0x80000000u;
constexpr uint32_t kSizeMask = 0x7fffffffu;

// A raw plane is a zstd frame we lay out ourselves, so that a reader can take the bytes in
// place instead of copying them through libzstd: magic, a single-segment descriptor with a
// 4-byte content size, then Raw blocks of at most 128 KiB (the format's block maximum).
constexpr uint32_t kZstdFrameMagic = 0xFD2FB528u;
constexpr uint8_t kRawFrameDescriptor = 0xA0;  // FCS field 4 bytes, single segment
constexpr size_t kRawFrameHeader = 9;
constexpr size_t kBlockHeader = 3;
constexpr uint64_t kBlockSize = 128u << 10;

uint64_t raw_block_count(uint64_t len) {
  return len == 0 ? 1 : (len + kBlockSize - 1) / kBlockSize;
}
uint64_t raw_frame_size(uint64_t len) {
  return kRawFrameHeader + kBlockHeader * raw_block_count(len) + len;
}

void append_raw_frame(std::string& out, const uint8_t* p, uint64_t len) {
  le::put32(out, kZstdFrameMagic);
  out.push_back(char(kRawFrameDescriptor));
  le::put32(out, uint32_t(len));
  const uint64_t blocks = raw_block_count(len);
  for (uint64_t b = 0; b < blocks; ++b) {
    const uint64_t n = std::min(kBlockSize, len - b * kBlockSize);
    const uint32_t header = uint32_t(n << 3) | (b + 1 == blocks ? 1u : 0u);  // type 0: Raw
    out.push_back(char(header & 0xff));
    out.push_back(char((header >> 8) & 0xff));
    out.push_back(char(header >> 16));
    out.append(reinterpret_cast<const char*>(p + b * kBlockSize), n);
  }
}

// Checks that the stored bytes of a raw plane are exactly the frame append_raw_frame writes
// for `len` bytes (its size was checked against the table already).
bool raw_frame_valid(const uint8_t* f, uint64_t len) {
  if (get32(f) != kZstdFrameMagic || f[4] != kRawFrameDescriptor || get32(f + 5) != len)
    return false;
  const uint64_t blocks = raw_block_count(len);
  const uint8_t* h = f + kRawFrameHeader;
  for (uint64_t b = 0; b < blocks; ++b) {
    const uint64_t n = std::min(kBlockSize, len - b * kBlockSize);
    const uint32_t header = uint32_t(h[0]) | uint32_t(h[1]) << 8 | uint32_t(h[2]) << 16;
    if (header != (uint32_t(n << 3) | (b + 1 == blocks ? 1u : 0u))) return false;
    h += kBlockHeader + n;
  }
  return true;
}

// libdeflate (like zlib) returns the initial value 0 for a null buffer: skip empty input.
uint32_t crc32(uint32_t crc, const void* p, size_t n) {
  return n ? libdeflate_crc32(crc, p, n) : crc;
}

// Order-0 entropy of a sample of the plane, in bits per byte. Planes that look like noise
// (mantissa bytes) skip zstd entirely: trying costs more time than it could ever save.
bool looks_random(const uint8_t* p, size_t n) {
  if (n < (16u << 10)) return false;
  const size_t step = std::max<size_t>(1, n / 32768);
  uint32_t hist[256] = {};
  size_t count = 0;
  for (size_t i = 0; i < n; i += step, ++count) ++hist[p[i]];
  double h = 0;
  for (uint32_t c : hist)
    if (c) {
      double q = double(c) / double(count);
      h -= q * std::log2(q);
    }
  return h > 7.95;
}

Status corrupt(const std::string& what, const std::string& msg) {
  return Status(Code::kCorrupt, what + ": " + msg);
}

std::string chunk_name(const ChunkedRecord& r, size_t i) {
  return r.what + " chunk " + std::to_string(i) + " of " + std::to_string(r.chunks.size());
}

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

// One encoded chunk: table entry and payload.
struct EncodedChunk {
  uint32_t crc = 0;          // of the original bytes
  uint32_t grouped_crc = 0;  // of the planes, i.e. of what the chunk's frames decode to
  std::array<uint32_t, 4> stored{};
  std::string payload;
  Status status;
};

struct EncodeScratch {
  std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx{ZSTD_createCCtx()};
  std::vector<uint8_t> grouped;
  std::vector<uint8_t> out;
};

void encode_chunk(Grouping g, const ChunkedOptions& o, const uint8_t* in, size_t len,
                  EncodeScratch& s, EncodedChunk& c) {
  c.crc = crc32(0, in, len);
  const unsigned planes = plane_count(g);
  const uint8_t* src = in;
  c.grouped_crc = c.crc;
  if (g != Grouping::kNone) {
    s.grouped.resize(len);
    group_bytes(g, in, len, s.grouped.data());
    src = s.grouped.data();
    c.grouped_crc = crc32(0, src, len);
  }
  const size_t plane_len = len / planes;
  c.payload.clear();
  for (unsigned p = 0; p < planes; ++p) {
    const uint8_t* plane = src + p * plane_len;
    size_t stored = 0;
    if (plane_len > 0 && !looks_random(plane, plane_len)) {
      ZSTD_CCtx* cc = s.cctx.get();
      ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
      ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, o.level);
      // Negative levels turn Huffman coding of literals off; the exponent plane is all
      // literals, so it is forced on. Long minimum matches keep zstd from trading good
      // literal coding for short matches in low-entropy noise (SPEC.md section 4).
      ZSTD_CCtx_setParameter(cc, ZSTD_c_literalCompressionMode, ZSTD_ps_enable);
      if (g != Grouping::kNone && p == 0) ZSTD_CCtx_setParameter(cc, ZSTD_c_minMatch, 7);
      ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 1);
      ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 0);
      s.out.resize(ZSTD_compressBound(plane_len));
      size_t r = ZSTD_compress2(cc, s.out.data(), s.out.size(), plane, plane_len);
      if (ZSTD_isError(r)) {
        c.status = Status(Code::kInternal,
                          std::string("zstd compression failed: ") + ZSTD_getErrorName(r));
        return;
      }
      if (r < raw_frame_size(plane_len)) stored = r;
    }
    if (stored) {
      c.stored[p] = uint32_t(stored);
      c.payload.append(reinterpret_cast<const char*>(s.out.data()), stored);
    } else {
      c.stored[p] = uint32_t(raw_frame_size(plane_len)) | kRawBit;
      append_raw_frame(c.payload, plane, plane_len);
    }
  }
}

}  // namespace

Status check_chunked_options(const ChunkedOptions& o) {
  if (o.chunk_size < kMinChunkSize || o.chunk_size > kMaxChunkSize || o.chunk_size % 4 != 0)
    return Status(Code::kInvalidArgument,
                  "chunk size " + std::to_string(o.chunk_size) + " must be a multiple of 4 in [" +
                      std::to_string(kMinChunkSize) + ", " + std::to_string(kMaxChunkSize) + "]");
  if (o.level < ZSTD_minCLevel() || o.level > ZSTD_maxCLevel())
    return Status(Code::kInvalidArgument, "zstd level " + std::to_string(o.level) +
                                              " is outside [" + std::to_string(ZSTD_minCLevel()) +
                                              ", " + std::to_string(ZSTD_maxCLevel()) + "]");
  return Status::Ok();
}

struct ChunkedEncoder::Impl {
  Grouping grouping;
  uint64_t total;
  ChunkedOptions options;
  WorkerPool& pool;
  std::vector<EncodeScratch> scratch;
  std::vector<uint8_t> batch;  // up to pool.size() chunks of input
  size_t batch_fill = 0;
  uint64_t received = 0;
  std::string table, payload;
  uint32_t chunk_count = 0;
  uint32_t stream_crc = 0;  // CRC32 of all chunks' planes so far
  Status error;
  Impl(Grouping g, uint64_t t, const ChunkedOptions& o, WorkerPool& p)
      : grouping(g), total(t), options(o), pool(p), scratch(p.size()) {}
};

ChunkedEncoder::ChunkedEncoder(Grouping grouping, uint64_t total_size,
                               const ChunkedOptions& options, WorkerPool& pool)
    : impl_(std::make_unique<Impl>(grouping, total_size, options, pool)) {
  impl_->error = check_chunked_options(options);
  if (total_size % element_size(grouping) != 0)
    impl_->error = Status(Code::kInvalidArgument, "record of " + std::to_string(total_size) +
                                                      " bytes is not a whole number of elements");
  uint64_t batch = uint64_t(options.chunk_size) * pool.size();
  impl_->batch.resize(std::min<uint64_t>(batch, total_size));
}

ChunkedEncoder::~ChunkedEncoder() = default;

Status ChunkedEncoder::flush_batch() {
  Impl& m = *impl_;
  if (m.batch_fill == 0) return Status::Ok();
  const size_t cs = m.options.chunk_size;
  const size_t n = (m.batch_fill + cs - 1) / cs;
  std::vector<EncodedChunk> out(n);
  m.pool.run(n, [&](size_t i, unsigned w) {
    const size_t off = i * cs;
    encode_chunk(m.grouping, m.options, m.batch.data() + off, std::min(cs, m.batch_fill - off),
                 m.scratch[w], out[i]);
  });
  const unsigned planes = plane_count(m.grouping);
  for (size_t i = 0; i < n; ++i) {
    const EncodedChunk& c = out[i];
    CKPTIO_RETURN_IF_ERROR(c.status);
    le::put32(m.table, c.crc);
    for (unsigned p = 0; p < planes; ++p) le::put32(m.table, c.stored[p]);
    m.payload += c.payload;
    m.stream_crc = crc32_combine(m.stream_crc, c.grouped_crc, std::min(cs, m.batch_fill - i * cs));
    ++m.chunk_count;
  }
  m.batch_fill = 0;
  return Status::Ok();
}

Status ChunkedEncoder::write(const void* data, uint64_t n) {
  Impl& m = *impl_;
  CKPTIO_RETURN_IF_ERROR(m.error);
  if (n > m.total - m.received)
    return m.error = Status(Code::kInternal, "chunked encoder: more bytes than declared");
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    size_t k = std::min<uint64_t>(n, m.batch.size() - m.batch_fill);
    std::memcpy(m.batch.data() + m.batch_fill, p, k);
    m.batch_fill += k;
    m.received += k;
    p += k;
    n -= k;
    if (m.batch_fill == m.batch.size()) {
      Status st = flush_batch();
      if (!st.ok()) return m.error = st;
    }
  }
  return Status::Ok();
}

Result<std::string> ChunkedEncoder::finish() {
  Impl& m = *impl_;
  CKPTIO_RETURN_IF_ERROR(m.error);
  if (m.received != m.total)
    return Status(Code::kInternal, "chunked encoder: got " + std::to_string(m.received) + " of " +
                                       std::to_string(m.total) + " bytes");
  CKPTIO_RETURN_IF_ERROR(flush_batch());
  std::string index;
  index.append(kMagic, 4);
  index.push_back(char(kVersion));
  index.push_back(char(m.grouping));
  le::put16(index, 0);
  le::put32(index, m.options.chunk_size);
  le::put32(index, m.chunk_count);
  le::put64(index, m.total);
  uint32_t crc = crc32(0, index.data(), index.size());
  crc = crc32(crc, m.table.data(), m.table.size());
  le::put32(index, crc);
  le::put32(index, 0);
  const uint64_t index_size = index.size() + m.table.size();
  if (index_size > kSizeMask)
    return Status(Code::kInvalidArgument,
                  "chunked encoder: " + std::to_string(m.chunk_count) +
                      " chunks do not fit one index frame; use a larger chunk size");
  std::string out;
  out.reserve(kSkippableHeader + index_size + m.payload.size());
  le::put32(out, kIndexFrameMagic);
  le::put32(out, uint32_t(index_size));
  out += index;
  out += m.table;
  out += m.payload;
  m.payload.clear();
  m.payload.shrink_to_fit();
  return out;
}

uint32_t ChunkedEncoder::stream_crc() const { return impl_->stream_crc; }

Result<std::string> encode_chunked(Grouping grouping, const void* data, uint64_t n,
                                   const ChunkedOptions& options, WorkerPool& pool) {
  ChunkedEncoder enc(grouping, n, options, pool);
  CKPTIO_RETURN_IF_ERROR(enc.write(data, n));
  return enc.finish();
}

Result<ChunkedRecord> parse_chunked(const ByteSource& src, uint64_t offset, uint64_t length,
                                    uint64_t expected_size, const std::string& what) {
  if (offset > src.size() || length > src.size() - offset)
    return corrupt(what, "runs past the end of the file");
  if (length < kSkippableHeader + kHeaderSize)
    return corrupt(what,
                   "is " + std::to_string(length) + " bytes, too short for a chunked zstd index");
  uint8_t frame[kSkippableHeader + kHeaderSize];
  CKPTIO_RETURN_IF_ERROR(src.read_at(offset, frame, sizeof frame));
  const uint8_t* h = frame + kSkippableHeader;
  if (get32(frame) != kIndexFrameMagic || std::memcmp(h, kMagic, 3) != 0)
    return corrupt(what, "does not start with a chunked zstd index frame (bad magic)");
  if (h[3] != kMagic[3] || h[4] != kVersion)
    return Status(Code::kUnsupported, what + ": chunked zstd version " + std::to_string(h[4]) +
                                          " is not supported (expected 2)");
  const uint64_t index_size = get32(frame + 4);
  if (!grouping_valid(h[5])) return corrupt(what, "unknown byte grouping " + std::to_string(h[5]));
  ChunkedRecord r;
  r.what = what;
  r.grouping = Grouping(h[5]);
  r.chunk_size = get32(h + 8);
  const uint32_t count = get32(h + 12);
  r.total_size = get64(h + 16);
  const uint32_t want_crc = get32(h + 24);
  const unsigned planes = plane_count(r.grouping);
  if (r.total_size != expected_size)
    return corrupt(what, "decodes to " + std::to_string(r.total_size) +
                             " bytes but the storage has " + std::to_string(expected_size));
  if (r.chunk_size < kMinChunkSize || r.chunk_size > kMaxChunkSize || r.chunk_size % 4 != 0)
    return corrupt(what, "invalid chunk size " + std::to_string(r.chunk_size));
  if (r.total_size % planes != 0)
    return corrupt(what, "size " + std::to_string(r.total_size) +
                             " is not a whole number of grouped elements");
  const uint64_t want_count = (r.total_size + r.chunk_size - 1) / r.chunk_size;
  if (count != want_count)
    return corrupt(what, "has " + std::to_string(count) + " chunks; " +
                             std::to_string(r.total_size) + " bytes in chunks of " +
                             std::to_string(r.chunk_size) + " need " + std::to_string(want_count));
  const uint64_t entry = 4 + 4ull * planes;
  const uint64_t table_size = entry * count;
  if (index_size != kHeaderSize + table_size)
    return corrupt(what, "index frame of " + std::to_string(index_size) + " bytes; " +
                             std::to_string(count) + " chunks need " +
                             std::to_string(kHeaderSize + table_size));
  if (table_size > length - kSkippableHeader - kHeaderSize)
    return corrupt(what, "chunk table of " + std::to_string(count) +
                             " chunks does not fit in the record's " + std::to_string(length) +
                             " bytes");
  const uint64_t table_offset = offset + kSkippableHeader + kHeaderSize;
  std::vector<uint8_t> table(table_size);
  CKPTIO_RETURN_IF_ERROR(src.read_at(table_offset, table.data(), table_size));
  uint32_t crc = crc32(0, h, 24);
  crc = crc32(crc, table.data(), table.size());
  if (crc != want_crc) return corrupt(what, "chunk table checksum mismatch");
  r.chunks.resize(count);
  uint64_t pos = table_offset + table_size;
  const uint64_t end = offset + length;
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* e = table.data() + entry * i;
    ChunkedRecord::Chunk& c = r.chunks[i];
    c.offset = pos;
    c.crc = get32(e);
    const uint64_t plane_len = r.chunk_length(i) / planes;
    for (unsigned p = 0; p < planes; ++p) {
      const uint32_t v = get32(e + 4 + 4 * p);
      c.raw[p] = v & kRawBit;
      c.stored[p] = v & kSizeMask;
      if (c.raw[p] ? c.stored[p] != raw_frame_size(plane_len) : c.stored[p] == 0)
        return corrupt(chunk_name(r, i), "plane " + std::to_string(p) + " has stored size " +
                                             std::to_string(c.stored[p]) + " for " +
                                             std::to_string(plane_len) + " bytes");
      if (c.stored[p] > end - pos)
        return corrupt(chunk_name(r, i), "runs past the end of the record");
      pos += c.stored[p];
    }
  }
  if (pos != end) return corrupt(what, std::to_string(end - pos) + " bytes after the last chunk");
  return r;
}

struct ChunkDecoder::Impl {
  std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx{ZSTD_createDCtx()};
  std::vector<uint8_t> planes;      // decoded planes of a grouped chunk
  std::vector<uint8_t> compressed;  // the chunk's stored bytes, when the source is not mapped
};

ChunkDecoder::ChunkDecoder() : impl_(std::make_unique<Impl>()) {}
ChunkDecoder::~ChunkDecoder() = default;
ChunkDecoder::ChunkDecoder(ChunkDecoder&&) noexcept = default;

Status ChunkDecoder::decode(const ByteSource& src, const ChunkedRecord& r, size_t i, uint8_t* dst) {
  Impl& m = *impl_;
  const ChunkedRecord::Chunk& c = r.chunks.at(i);
  const uint64_t len = r.chunk_length(i);
  const unsigned planes = plane_count(r.grouping);
  const uint64_t plane_len = len / planes;
  uint64_t stored_total = 0;
  for (unsigned p = 0; p < planes; ++p) stored_total += c.stored[p];
  const uint8_t* in;
  if (src.data()) {
    in = src.data() + c.offset;  // parse_chunked checked the record lies in the source
  } else {
    m.compressed.resize(stored_total);
    CKPTIO_RETURN_IF_ERROR(src.read_at(c.offset, m.compressed.data(), stored_total));
    in = m.compressed.data();
  }
  const bool grouped = r.grouping != Grouping::kNone;
  if (grouped) m.planes.resize(len);
  // Where each plane's bytes are: a decoded plane is contiguous; a raw plane is read in
  // place from its frame, whose 128 KiB blocks are separated by 3-byte block headers.
  const uint8_t* base[4] = {};
  uint64_t stride[4] = {};
  for (unsigned p = 0; p < planes; ++p) {
    if (c.raw[p]) {
      if (!raw_frame_valid(in, plane_len))
        return corrupt(chunk_name(r, i),
                       "plane " + std::to_string(p) + " is not a frame of raw zstd blocks");
      base[p] = in + kRawFrameHeader + kBlockHeader;
      stride[p] = kBlockSize + kBlockHeader;
    } else {
      uint8_t* out = grouped ? m.planes.data() + p * plane_len : dst;
      const unsigned long long declared = ZSTD_getFrameContentSize(in, c.stored[p]);
      if (declared != plane_len)
        return corrupt(chunk_name(r, i),
                       "plane " + std::to_string(p) +
                           (declared == ZSTD_CONTENTSIZE_ERROR ? std::string(" is not a zstd frame")
                            : declared == ZSTD_CONTENTSIZE_UNKNOWN
                                ? std::string(" does not declare its size")
                                : " declares " + std::to_string(declared) + " bytes, expected " +
                                      std::to_string(plane_len)));
      size_t got = ZSTD_decompressDCtx(m.dctx.get(), out, plane_len, in, c.stored[p]);
      if (ZSTD_isError(got))
        return corrupt(chunk_name(r, i),
                       "plane " + std::to_string(p) + ": zstd: " + ZSTD_getErrorName(got));
      if (got != plane_len)
        return corrupt(chunk_name(r, i), "plane " + std::to_string(p) + " decoded to " +
                                             std::to_string(got) + " of " +
                                             std::to_string(plane_len) + " bytes");
      base[p] = out;
      stride[p] = kBlockSize;
    }
    in += c.stored[p];
  }
  // Ungroup (or, for one raw plane, copy) one block-sized window of every plane at a time.
  if (grouped || c.raw[0]) {
    for (uint64_t at = 0, w = 0; at < plane_len; at += kBlockSize, ++w) {
      const uint64_t n = std::min(kBlockSize, plane_len - at);
      const uint8_t* window[4] = {};
      for (unsigned p = 0; p < planes; ++p) window[p] = base[p] + w * stride[p];
      if (grouped) {
        ungroup_bytes(r.grouping, window, n * planes, dst + at * planes);
      } else {
        std::memcpy(dst + at, window[0], n);
      }
    }
  }
  if (crc32(0, dst, len) != c.crc) return corrupt(chunk_name(r, i), "checksum mismatch");
  return Status::Ok();
}

Status decode_chunked_range(const ByteSource& src, const ChunkedRecord& r, uint64_t offset,
                            uint64_t n, uint8_t* dst, WorkerPool& pool,
                            std::vector<ChunkDecoder>& decoders) {
  if (offset > r.total_size || n > r.total_size - offset)
    return Status(Code::kInvalidArgument, r.what + ": range out of bounds");
  if (n == 0) return Status::Ok();
  while (decoders.size() < pool.size()) decoders.emplace_back();
  const uint64_t cs = r.chunk_size;
  const size_t first = offset / cs, last = (offset + n - 1) / cs;
  std::mutex mu;
  Status first_error;
  pool.run(last - first + 1, [&](size_t k, unsigned w) {
    const size_t i = first + k;
    const uint64_t start = i * cs, len = r.chunk_length(i);
    const uint64_t lo = std::max(start, offset), hi = std::min(start + len, offset + n);
    Status st;
    if (lo == start && hi == start + len) {
      st = decoders[w].decode(src, r, i, dst + (start - offset));
    } else {  // a partial chunk at either end of the range
      std::vector<uint8_t> tmp(len);
      st = decoders[w].decode(src, r, i, tmp.data());
      if (st.ok()) std::memcpy(dst + (lo - offset), tmp.data() + (lo - start), hi - lo);
    }
    if (!st.ok()) {
      std::lock_guard<std::mutex> lock(mu);
      if (first_error.ok()) first_error = st;
    }
  });
  return first_error;
}

}  // namespace ckptio::compress
