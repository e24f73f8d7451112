// libFuzzer target: the zstd wrapper format's reader (formats/compress/zstd_stream.h):
// head detection, the inner-format marker, and bounded decompression (a 16 MiB limit here,
// so that decompression bombs must be refused, not allocated).
#include <cstddef>
#include <cstdint>

#include "formats/compress/zstd_stream.h"
#include "formats/io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ckptio;
  using namespace ckptio::compress;
  (void)looks_like_zstd(data, size);
  (void)inner_format_from_head(data, size);
  MemorySource src(data, size, "fuzz.pt.zst");
  constexpr uint64_t kMax = 16u << 20;
  auto buf = zstd_decompress_bounded(src, kMax);
  if (buf.ok() && buf->size() > kMax) __builtin_trap();
  return 0;
}
