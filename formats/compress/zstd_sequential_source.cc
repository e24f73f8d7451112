#include "formats/compress/zstd_sequential_source.h"

#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_findDecompressedSize
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>

#include "formats/compress/zstd_stream.h"

namespace ckptio::compress {
namespace {

constexpr size_t kInputBuffer = 1u << 20;
constexpr size_t kDiscardBuffer = 1u << 20;
// Long enough for a sibling loader thread to arrive with the read before ours, short
// enough that a lone out-of-order read (a lazy load) barely notices.
constexpr auto kOrderWait = std::chrono::milliseconds(20);

struct DCtxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

}  // namespace

struct ZstdSequentialSource::Impl {
  const ByteSource* src = nullptr;
  uint64_t size = 0;
  uint64_t max_size = 0;
  std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx;
  std::vector<uint8_t> in, discard;
  ZSTD_inBuffer ib{nullptr, 0, 0};
  uint64_t in_off = 0;   // compressed bytes consumed into `in`
  uint64_t pos = 0;      // decoded bytes produced so far
  size_t last_hint = 0;  // ZSTD_decompressStream's return; 0 between frames
  bool ended = false;    // produce() ran out of input
  uint64_t restarts = 0;
  std::vector<uint64_t> expected;  // sorted read starts
  std::mutex mu;
  std::condition_variable moved;

  Status fail(const std::string& what) const {
    return Status(Code::kCorrupt, src->name() + ": " + what);
  }

  void reset() {
    ZSTD_DCtx_reset(dctx.get(), ZSTD_reset_session_only);
    ib = ZSTD_inBuffer{in.data(), 0, 0};
    in_off = 0;
    pos = 0;
    last_hint = 0;
    ended = false;
  }

  // Decodes the next n bytes of the stream into dst (or discards them when dst is null).
  // Running out of input first is kCorrupt with `ended` set.
  Status produce(uint8_t* dst, uint64_t n) {
    while (n > 0) {
      if (ib.pos == ib.size && in_off < src->size()) {
        const uint64_t k = std::min<uint64_t>(in.size(), src->size() - in_off);
        CKPTIO_RETURN_IF_ERROR(src->read_at(in_off, in.data(), k));
        in_off += k;
        ib = ZSTD_inBuffer{in.data(), size_t(k), 0};
      }
      uint8_t* out = dst ? dst : discard.data();
      const size_t cap = size_t(std::min<uint64_t>(n, dst ? (1ull << 30) : discard.size()));
      ZSTD_outBuffer ob{out, cap, 0};
      // With the input used up this call still flushes output the decoder holds back.
      const size_t consumed_before = ib.pos;
      const size_t hint = ZSTD_decompressStream(dctx.get(), &ob, &ib);
      if (ZSTD_isError(hint))
        return fail(std::string("zstd: ") + ZSTD_getErrorName(hint) + " at decoded offset " +
                    std::to_string(pos));
      // A call without input or output (at the end) says nothing about the last frame.
      if (ob.pos > 0 || ib.pos > consumed_before) last_hint = hint;
      pos += ob.pos;
      n -= ob.pos;
      if (dst) dst += ob.pos;
      if (pos > max_size)
        return Status(Code::kLimit, src->name() + ": decodes to more than the limit of " +
                                        std::to_string(max_size) +
                                        " bytes (plugin option max_size)");
      if (ob.pos == 0 && ib.pos == ib.size && in_off == src->size()) {
        ended = true;
        return fail(last_hint ? "truncated zstd stream (the last frame is cut off)"
                              : "zstd stream ends at " + std::to_string(pos) +
                                    " decoded bytes, before the data the file needs");
      }
    }
    return Status::Ok();
  }

  // The first expected read start in [pos, offset), if any: a read at `offset` should wait
  // for it.
  bool read_pending_before(uint64_t offset) const {
    auto it = std::lower_bound(expected.begin(), expected.end(), pos);
    return it != expected.end() && *it < offset;
  }
};

ZstdSequentialSource::ZstdSequentialSource() : impl_(std::make_unique<Impl>()) {}
ZstdSequentialSource::~ZstdSequentialSource() = default;

Status ZstdSequentialSource::init(const ByteSource& compressed, uint64_t max_size) {
  Impl& m = *impl_;
  m.src = &compressed;
  m.max_size = max_size;
  m.dctx.reset(ZSTD_createDCtx());
  if (!m.dctx) return Status(Code::kLimit, "out of memory creating a zstd context");
  // As in zstd_decompress_bounded: no frame may ask for a window beyond what max_size needs.
  int window_log = 23;
  while (window_log < 31 && (uint64_t(1) << window_log) < max_size) ++window_log;
  ZSTD_DCtx_setParameter(m.dctx.get(), ZSTD_d_windowLogMax, window_log);
  m.in.resize(kInputBuffer);
  m.discard.resize(kDiscardBuffer);
  m.reset();
  return Status::Ok();
}

Result<std::string> ZstdSequentialSource::decode_head(const ByteSource& compressed, size_t n,
                                                      uint64_t max_size) {
  ZstdSequentialSource s;
  CKPTIO_RETURN_IF_ERROR(s.init(compressed, max_size));
  std::string head(n, '\0');
  Impl& m = *s.impl_;
  Status st = m.produce(reinterpret_cast<uint8_t*>(head.data()), n);
  if (!st.ok() && !(m.ended && m.last_hint == 0)) return st;
  head.resize(size_t(m.pos));
  return head;
}

Result<std::unique_ptr<ZstdSequentialSource>> ZstdSequentialSource::open(
    const ByteSource& compressed, uint64_t max_size) {
  std::unique_ptr<ZstdSequentialSource> s(new ZstdSequentialSource());
  CKPTIO_RETURN_IF_ERROR(s->init(compressed, max_size));
  Impl& m = *s->impl_;
  unsigned long long declared = ZSTD_CONTENTSIZE_UNKNOWN;
  if (compressed.data()) {
    declared = ZSTD_findDecompressedSize(compressed.data(), compressed.size());
    if (declared == ZSTD_CONTENTSIZE_ERROR)
      return Status(Code::kCorrupt,
                    compressed.name() + ": not a valid zstd stream (bad or truncated frame)");
  }
  // Our writer cannot declare the size in the frame (it streams); it appends it in a
  // trailing skippable frame. A lying trailer only makes reads fail cleanly: reads stop at
  // the declared size, and a stream that ends early is a kCorrupt error.
  if (declared == ZSTD_CONTENTSIZE_UNKNOWN) {
    const uint64_t trailer = declared_size_from_trailer(compressed);
    if (trailer != UINT64_MAX) declared = trailer;
  }
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN) {
    if (declared > max_size)
      return Status(Code::kLimit, compressed.name() + ": frames declare " +
                                      std::to_string(declared) + " bytes, more than the limit of " +
                                      std::to_string(max_size) + " bytes (plugin option max_size)");
    m.size = declared;
    return s;
  }
  // Sizes not declared: one pass to count them (bounded by max_size inside produce()).
  for (;;) {
    Status st = m.produce(nullptr, m.discard.size());
    if (st.ok()) continue;
    if (!m.ended || m.last_hint != 0) return st;  // corrupt, cut off inside a frame, or limit
    break;                                        // the stream's clean end
  }
  m.size = m.pos;
  m.reset();
  return s;
}

uint64_t ZstdSequentialSource::size() const { return impl_->size; }
const std::string& ZstdSequentialSource::name() const { return impl_->src->name(); }

void ZstdSequentialSource::expect_reads_at(std::vector<uint64_t> offsets) {
  std::sort(offsets.begin(), offsets.end());
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->expected = std::move(offsets);
}

uint64_t ZstdSequentialSource::restarts() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->restarts;
}

Status ZstdSequentialSource::read_at(uint64_t offset, void* dst, uint64_t n) const {
  Impl& m = *impl_;
  if (offset > m.size || n > m.size - offset)
    return Status(Code::kCorrupt, name() + ": truncated: wanted " + std::to_string(n) +
                                      " bytes at offset " + std::to_string(offset) + ", file has " +
                                      std::to_string(m.size));
  std::unique_lock<std::mutex> lock(m.mu);
  if (offset > m.pos && m.read_pending_before(offset))
    m.moved.wait_for(lock, kOrderWait, [&] { return !m.read_pending_before(offset); });
  if (offset < m.pos) {
    ++m.restarts;
    m.reset();
  }
  Status st = m.produce(nullptr, offset - m.pos);
  if (st.ok()) st = m.produce(static_cast<uint8_t*>(dst), n);
  if (!st.ok()) m.reset();  // the next read starts over rather than from a broken state
  lock.unlock();
  m.moved.notify_all();
  return st;
}

}  // namespace ckptio::compress
