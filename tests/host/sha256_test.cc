// SHA-256 of tensor bytes (inspect --json): the portable implementation against FIPS 180-4
// test vectors, and the one the build uses (OpenSSL's when present) against it.
#include "host/render/sha256.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace ckptio::host {
namespace {

std::string portable(const std::string& s, size_t piece = SIZE_MAX) {
  PortableSha256 h;
  for (size_t at = 0; at < s.size(); at += piece)
    h.update(s.data() + at, std::min(piece, s.size() - at));
  return to_hex(h.finish());
}

TEST(Sha256, PortableMatchesFips180Vectors) {
  EXPECT_EQ(portable(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(portable("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(portable(two_blocks),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');
  for (size_t piece : {size_t(1000000), size_t(63), size_t(64), size_t(65)})
    EXPECT_EQ(portable(million, piece),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        << "pieces of " << piece;
}

TEST(Sha256, BuildsBackendAgreesWithPortable) {
  std::mt19937_64 rng(5);
  for (size_t n : {size_t(0), size_t(55), size_t(56), size_t(64), size_t(1000), size_t(123457)}) {
    std::string data(n, '\0');
    for (char& c : data) c = char(rng());
    Sha256 h;
    h.update(data.data(), n / 3);
    h.update(data.data() + n / 3, n - n / 3);
    EXPECT_EQ(to_hex(h.finish()), portable(data)) << n << " bytes";
  }
}

}  // namespace
}  // namespace ckptio::host
