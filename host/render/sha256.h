// SHA-256 of tensor bytes for `inspect --json`. OpenSSL's (SHA-NI/AVX2 code) when the build
// found it, else a portable implementation of FIPS 180-4, so that a machine without OpenSSL
// headers (e.g. the GPU build host) still builds and gives the same hashes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace ckptio::host {

using Sha256Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  void update(const void* data, size_t n);
  Sha256Digest finish();  // once

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The portable implementation, always built (tests check it against known digests even
// when Sha256 uses OpenSSL).
class PortableSha256 {
 public:
  void update(const void* data, size_t n);
  Sha256Digest finish();

 private:
  void block(const uint8_t* p);
  uint32_t h_[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  uint8_t buf_[64] = {};
  size_t fill_ = 0;
  uint64_t total_ = 0;
};

std::string to_hex(const Sha256Digest& d);

}  // namespace ckptio::host
