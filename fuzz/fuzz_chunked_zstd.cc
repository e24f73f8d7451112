// libFuzzer target: one chunked-zstd record of torch-zip-zstd (formats/compress/
// chunked_zstd.h): header and chunk-table validation, then every chunk decoded (zstd frames,
// raw planes, byte un-grouping, chunk CRCs), whole and as a partial range.
//
// The chunk table carries a CRC32 that random mutations almost never match, which would
// keep the fuzzer out of everything behind it; the target therefore recomputes that CRC
// (when the header is long enough to say how big the table is) before parsing. The
// per-chunk CRCs are left alone: they are checked after decoding, so decoding is reached.
#include <libdeflate.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "formats/compress/chunked_zstd.h"
#include "formats/io.h"

namespace {
uint32_t get32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | uint32_t(p[3]) << 24; }
uint64_t get64(const uint8_t* p) { return get32(p) | uint64_t(get32(p + 4)) << 32; }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ckptio;
  using namespace ckptio::compress;
  constexpr size_t kSkippable = 8;  // the index's skippable frame header
  constexpr size_t kHeader = 32;    // index header, then the table
  if (size < kSkippable + kHeader) return 0;
  std::vector<uint8_t> in(data, data + size);
  uint8_t* h = in.data() + kSkippable;
  const unsigned planes = h[5] == 1 ? 2 : h[5] == 2 ? 4 : 1;
  const uint64_t table = (4ull + 4 * planes) * get32(h + 12);
  if (table <= size - kSkippable - kHeader) {
    uint32_t crc = libdeflate_crc32(0, h, 24);
    crc = libdeflate_crc32(crc, h + kHeader, table);
    for (int b = 0; b < 4; ++b) h[24 + b] = uint8_t(crc >> (8 * b));
  }
  const uint64_t total = get64(h + 16);
  if (total > (64u << 20)) return 0;  // the caller's limit on decoded bytes
  MemorySource src(in.data(), in.size(), "fuzz.ckz");
  auto r = parse_chunked(src, 0, in.size(), total, "fuzz record");
  if (!r.ok()) return 0;
  std::vector<uint8_t> out(total);
  WorkerPool pool(1);
  std::vector<ChunkDecoder> decoders;
  (void)decode_chunked_range(src, *r, 0, total, out.data(), pool, decoders);
  if (total > 2) (void)decode_chunked_range(src, *r, 1, total - 2, out.data(), pool, decoders);
  return 0;
}
