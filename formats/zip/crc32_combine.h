// CRC-32 (zlib polynomial) of a concatenation from the CRCs of its parts, so that parts
// checksummed in parallel (chunks encoded on several cores, a record's CRC computed while
// it is being written) still yield the CRC of the whole record a zip directory needs.
#pragma once

#include <cstdint>

namespace ckptio {

// CRC32(A || B) from CRC32(A), CRC32(B) and the length of B in bytes.
uint32_t crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t length_b);

}  // namespace ckptio
