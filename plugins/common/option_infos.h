// Building a format's option declarations (ckptio_option_info) at compile time, and the ones
// every plugin reading through decoded_open shares.
#pragma once

#include <array>
#include <cstddef>

#include "ckptio/plugin.h"

namespace ckptio::plugin {

constexpr ckptio_option_info option_info(uint32_t flags, const char* key, const char* meaning,
                                         const char* default_value = "",
                                         const char* inspect_value = nullptr) {
  return ckptio_option_info{sizeof(ckptio_option_info), flags,        key, meaning,
                            default_value,              inspect_value};
}

template <size_t A, size_t B>
constexpr std::array<ckptio_option_info, A + B> concat(
    const std::array<ckptio_option_info, A>& a, const std::array<ckptio_option_info, B>& b) {
  std::array<ckptio_option_info, A + B> out{};
  for (size_t i = 0; i < A; ++i) out[i] = a[i];
  for (size_t i = 0; i < B; ++i) out[A + i] = b[i];
  return out;
}

constexpr uint32_t kReadNumber = CKPTIO_OPTION_READ | CKPTIO_OPTION_NUMBER;

// What decoded_open and limits_from_options read (PickleLimits' defaults).
constexpr std::array<ckptio_option_info, 5> kDecodedReadOptions = {
    option_info(kReadNumber, "max_depth", "pickle nesting limit (open MARKs)", "1000"),
    option_info(kReadNumber, "max_memo", "pickle memo entries limit", "4194304"),
    option_info(kReadNumber, "max_string", "bytes of one pickled str/bytes limit", "2147483648"),
    option_info(CKPTIO_OPTION_READ, "allow_objects",
                "0/1: unknown pickle classes become opaque objects (never run)", "0"),
    option_info(CKPTIO_OPTION_READ, "verify",
                "0/1: check checksums while reading, where the format has them", "0"),
};

}  // namespace ckptio::plugin
