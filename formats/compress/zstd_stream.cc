#include "formats/compress/zstd_stream.h"

#include <sys/mman.h>
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_findDecompressedSize
#include <zstd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <vector>

#include "formats/zip/le.h"

namespace ckptio::compress {
namespace {

uint32_t get32(const uint8_t* p) { return le::u32(p); }

}  // namespace

bool looks_like_zstd(const uint8_t* head, size_t n) {
  if (n < 4) return false;
  uint32_t m = get32(head);
  if (m == kZstdMagic) return true;
  if ((m & 0xFFFFFFF0u) == kSkippableMagic && n >= 8) {
    uint64_t skip = 8ull + get32(head + 4);
    return skip + 4 <= n ? get32(head + skip) == kZstdMagic : true;
  }
  return false;
}

std::string inner_format_from_head(const uint8_t* head, size_t n) {
  if (n < 8 || (get32(head) & 0xFFFFFFF0u) != kSkippableMagic) return "";
  uint32_t len = get32(head + 4);
  const size_t mlen = sizeof kInnerMarker - 1;
  if (len < mlen || len > 256 || 8 + uint64_t(len) > n) return "";
  std::string payload(reinterpret_cast<const char*>(head + 8), len);
  if (payload.compare(0, mlen, kInnerMarker) != 0) return "";
  std::string name = payload.substr(mlen);
  while (!name.empty() && (name.back() == '\n' || name.back() == '\0')) name.pop_back();
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return "";
  return name;
}

struct ZstdCompressSink::Impl {
  ByteSink& out;
  ZSTD_CCtx* cctx = nullptr;
  std::vector<uint8_t> buf;
  Status error;
  bool finished = false;
  bool size_trailer = true;
  uint64_t received = 0;  // uncompressed bytes written
  explicit Impl(ByteSink& o) : out(o) {}
  ~Impl() { ZSTD_freeCCtx(cctx); }

  Status drain(const void* data, uint64_t n, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{data, size_t(n), 0};
    for (;;) {
      ZSTD_outBuffer o{buf.data(), buf.size(), 0};
      size_t left = ZSTD_compressStream2(cctx, &o, &in, mode);
      if (ZSTD_isError(left))
        return Status(Code::kInternal, std::string("zstd: ") + ZSTD_getErrorName(left));
      if (o.pos) CKPTIO_RETURN_IF_ERROR(out.write(buf.data(), o.pos));
      bool done = mode == ZSTD_e_continue ? in.pos == in.size : left == 0;
      if (done) return Status::Ok();
    }
  }
};

ZstdCompressSink::ZstdCompressSink(ByteSink& out, const ZstdWriteOptions& o)
    : impl_(std::make_unique<Impl>(out)) {
  Impl& m = *impl_;
  m.cctx = ZSTD_createCCtx();
  m.buf.resize(ZSTD_CStreamOutSize() * 8);
  if (!m.cctx) {
    m.error = Status(Code::kLimit, "out of memory creating a zstd context");
    return;
  }
  if (o.level < ZSTD_minCLevel() || o.level > ZSTD_maxCLevel()) {
    m.error = Status(Code::kInvalidArgument, "zstd level " + std::to_string(o.level) +
                                                 " is outside [" + std::to_string(ZSTD_minCLevel()) +
                                                 ", " + std::to_string(ZSTD_maxCLevel()) + "]");
    return;
  }
  m.size_trailer = o.size_trailer;
  ZSTD_CCtx_setParameter(m.cctx, ZSTD_c_compressionLevel, o.level);
  ZSTD_CCtx_setParameter(m.cctx, ZSTD_c_checksumFlag, 1);
  if (o.threads > 1) ZSTD_CCtx_setParameter(m.cctx, ZSTD_c_nbWorkers, int(o.threads));
  if (!o.inner.empty()) {
    std::string payload = kInnerMarker + o.inner;
    std::string frame;
    le::put32(frame, kSkippableMagic);
    le::put32(frame, uint32_t(payload.size()));
    frame += payload;
    m.error = out.write(frame.data(), frame.size());
  }
}

ZstdCompressSink::~ZstdCompressSink() = default;

Status ZstdCompressSink::write(const void* data, uint64_t n) {
  Impl& m = *impl_;
  CKPTIO_RETURN_IF_ERROR(m.error);
  if (m.finished) return m.error = Status(Code::kInternal, "zstd sink: write after finish");
  Status st = m.drain(data, n, ZSTD_e_continue);
  if (!st.ok()) m.error = st;
  m.received += n;
  return st;
}

Status ZstdCompressSink::finish() {
  Impl& m = *impl_;
  CKPTIO_RETURN_IF_ERROR(m.error);
  m.finished = true;
  Status st = m.drain(nullptr, 0, ZSTD_e_end);
  if (st.ok() && m.size_trailer) {
    std::string frame;
    le::put32(frame, kSizeTrailerMagic);
    le::put32(frame, uint32_t(sizeof kSizeMarker - 1 + 8));
    frame += kSizeMarker;
    le::put64(frame, m.received);
    st = m.out.write(frame.data(), frame.size());
  }
  if (!st.ok()) m.error = st;
  return st;
}

uint64_t declared_size_from_trailer(const ByteSource& src) {
  if (src.size() < kSizeTrailerBytes) return UINT64_MAX;
  uint8_t t[kSizeTrailerBytes];
  if (!src.read_at(src.size() - kSizeTrailerBytes, t, sizeof t).ok()) return UINT64_MAX;
  const size_t mlen = sizeof kSizeMarker - 1;
  if (get32(t) != kSizeTrailerMagic || get32(t + 4) != mlen + 8 ||
      std::memcmp(t + 8, kSizeMarker, mlen) != 0)
    return UINT64_MAX;
  return le::u64(t + 8 + mlen);
}

Buffer::~Buffer() {
  if (data_) munmap(data_, capacity_);
}
Buffer::Buffer(Buffer&& o) noexcept { *this = std::move(o); }
Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    if (data_) munmap(data_, capacity_);
    data_ = o.data_;
    size_ = o.size_;
    capacity_ = o.capacity_;
    o.data_ = nullptr;
    o.size_ = o.capacity_ = 0;
  }
  return *this;
}

Status Buffer::reserve(uint64_t capacity) {
  if (capacity <= capacity_) return Status::Ok();
  const uint64_t page = 4096;
  capacity = (capacity + page - 1) / page * page;
  void* p = data_ ? mremap(data_, capacity_, capacity, MREMAP_MAYMOVE)
                  : mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                         -1, 0);
  if (p == MAP_FAILED)
    return Status(Code::kLimit, "cannot allocate " + std::to_string(capacity) +
                                    " bytes for the decompressed stream");
  data_ = static_cast<uint8_t*>(p);
  capacity_ = capacity;
  return Status::Ok();
}

Result<Buffer> zstd_decompress_bounded(const ByteSource& src, uint64_t max_size) {
  const std::string& name = src.name();
  auto limit_error = [&](const std::string& what) {
    return Status(Code::kLimit, name + ": " + what + " more than the limit of " +
                                    std::to_string(max_size) +
                                    " bytes (plugin option max_size)");
  };
  // Sum of the declared content sizes, when the input is addressable and every frame
  // declares one: checked against the limit before anything is allocated.
  uint64_t declared = 0;
  bool all_declared = false;
  if (src.data()) {
    unsigned long long d = ZSTD_findDecompressedSize(src.data(), src.size());
    if (d == ZSTD_CONTENTSIZE_ERROR)
      return Status(Code::kCorrupt, name + ": not a valid zstd stream (bad or truncated frame)");
    if (d != ZSTD_CONTENTSIZE_UNKNOWN) {
      if (d > max_size) return limit_error("frames declare " + std::to_string(d) + " bytes,");
      declared = d;
      all_declared = true;
    }
  } else {
    // Not addressable: the first frame's declared size is checked up front (after our
    // skippable frame, when present); later frames are bounded while streaming.
    uint8_t head[300];
    size_t n = size_t(std::min<uint64_t>(sizeof head, src.size()));
    CKPTIO_RETURN_IF_ERROR(src.read_at(0, head, n));
    size_t off = 0;
    if (n >= 8 && (get32(head) & 0xFFFFFFF0u) == kSkippableMagic) off = 8 + size_t(get32(head + 4));
    if (off < n) {
      unsigned long long d = ZSTD_getFrameContentSize(head + off, n - off);
      if (d != ZSTD_CONTENTSIZE_ERROR && d != ZSTD_CONTENTSIZE_UNKNOWN && d > max_size)
        return limit_error("first frame declares " + std::to_string(d) + " bytes,");
    }
  }

  Buffer out;
  uint64_t cap = all_declared ? std::max<uint64_t>(declared, 1)
                              : std::min<uint64_t>(max_size, std::max<uint64_t>(
                                                                 src.size() * 4, 1u << 20));
  // Our writer's size trailer gives the exact size of streamed frames (which declare none).
  // Only a first capacity: a wrong trailer costs a regrowth, never a wrong result. One spare
  // byte, since a full buffer is grown before the input left (the trailer frame) is read.
  if (uint64_t hint = declared_size_from_trailer(src); !all_declared && hint < max_size)
    cap = hint + 1;
  CKPTIO_RETURN_IF_ERROR(out.reserve(std::max<uint64_t>(cap, 1)));
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  if (!dctx) return Status(Code::kLimit, "out of memory creating a zstd context");
  // The decoder allocates the window a frame header asks for before reading any data: a
  // few bytes could claim 2 GiB. No window needs to exceed the output limit, so the largest
  // accepted window follows max_size (at least 8 MiB, which any zstd level's default fits;
  // at most 2 GiB, zstd's --long=31).
  int window_log = 23;
  while (window_log < 31 && (uint64_t(1) << window_log) < max_size) ++window_log;
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, window_log);
  std::vector<uint8_t> inbuf;
  if (!src.data()) inbuf.resize(4u << 20);
  uint64_t in_off = 0, produced = 0;
  size_t last_ret = 0;
  bool any_input = false;
  while (in_off < src.size()) {
    const uint8_t* in_ptr;
    size_t in_len;
    if (src.data()) {
      in_ptr = src.data() + in_off;
      in_len = size_t(std::min<uint64_t>(src.size() - in_off, 1u << 30));
    } else {
      in_len = size_t(std::min<uint64_t>(src.size() - in_off, inbuf.size()));
      CKPTIO_RETURN_IF_ERROR(src.read_at(in_off, inbuf.data(), in_len));
      in_ptr = inbuf.data();
    }
    ZSTD_inBuffer in{in_ptr, in_len, 0};
    while (in.pos < in.size) {
      if (produced == out.capacity()) {
        if (produced >= max_size) return limit_error("decompresses to");
        uint64_t next = std::min<uint64_t>(max_size, std::max<uint64_t>(produced * 2, 1u << 20));
        CKPTIO_RETURN_IF_ERROR(out.reserve(next));
      }
      ZSTD_outBuffer o{out.mutable_data() + produced, size_t(out.capacity() - produced), 0};
      last_ret = ZSTD_decompressStream(dctx.get(), &o, &in);
      if (ZSTD_isError(last_ret))
        return Status(Code::kCorrupt, name + ": zstd stream is corrupt at input offset " +
                                          std::to_string(in_off + in.pos) + ": " +
                                          ZSTD_getErrorName(last_ret));
      produced += o.pos;
      any_input = true;
      if (o.pos == 0 && in.pos == in.size) break;
    }
    in_off += in.size;
  }
  // Flush what zstd still holds (output may have been cut by the buffer's capacity).
  for (;;) {
    if (last_ret == 0 || !any_input) break;
    if (produced == out.capacity()) {
      if (produced >= max_size) return limit_error("decompresses to");
      CKPTIO_RETURN_IF_ERROR(
          out.reserve(std::min<uint64_t>(max_size, std::max<uint64_t>(produced * 2, 1u << 20))));
    }
    ZSTD_inBuffer in{nullptr, 0, 0};
    ZSTD_outBuffer o{out.mutable_data() + produced, size_t(out.capacity() - produced), 0};
    last_ret = ZSTD_decompressStream(dctx.get(), &o, &in);
    if (ZSTD_isError(last_ret))
      return Status(Code::kCorrupt, name + ": zstd stream is corrupt: " + ZSTD_getErrorName(last_ret));
    produced += o.pos;
    if (o.pos == 0) break;
  }
  if (!any_input) return Status(Code::kCorrupt, name + ": empty zstd stream");
  if (last_ret != 0)
    return Status(Code::kCorrupt, name + ": zstd stream is truncated (the last frame is incomplete)");
  out.set_size(produced);
  return out;
}

}  // namespace ckptio::compress
