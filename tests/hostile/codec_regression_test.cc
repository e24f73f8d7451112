// Regression inputs found by the fuzzers (fuzz/), each replayed against the codec that
// mishandled it. Every input is a few dozen bytes, written here in hex with what it does.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "formats/compress/zstd_stream.h"
#include "formats/io.h"

namespace ckptio {
namespace {

// fuzz_zstd_stream, out-of-memory: our skippable frame, a second one, then a zstd frame
// header asking for a window of ~1.3 GB with no declared content size. The decoder
// allocated the window before reading any data. Now the accepted window follows the output
// limit (16 MiB here): the frame is refused as needing too much memory, nothing allocated.
TEST(FuzzRegression, ZstdWindowLargerThanTheOutputLimitIsRefused) {
  const std::vector<uint8_t> in = {
      0x50, 0x2a, 0x4d, 0x18, 0x16, 0x00, 0x00, 0x00, 0x63, 0x6b, 0x70, 0x74, 0x69, 0x6f,
      0x2d, 0x69, 0x6f, 0x72, 0x63, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0b, 0xff,
      0xff, 0x7f, 0x50, 0x2a, 0x4d, 0x18, 0x16, 0x00, 0x00, 0x00, 0x63, 0x6b, 0x70, 0x74,
      0x69, 0x6f, 0x2d, 0x69, 0x6e, 0x6e, 0x65, 0x72, 0x3d, 0x74, 0x6f, 0x72, 0x63, 0x68,
      0x2d, 0x7a, 0x69, 0x70, 0x28, 0xb5, 0x2f, 0xfd, 0x04, 0xa2, 0x22, 0x9a, 0xf3, 0x3d};
  MemorySource src(in.data(), in.size(), "window.zst");
  auto r = compress::zstd_decompress_bounded(src, 16u << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorrupt) << r.status().message();
  EXPECT_NE(r.status().message().find("window.zst"), std::string::npos);
  EXPECT_NE(r.status().message().find("memory"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace ckptio
