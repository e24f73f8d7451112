// Byte grouping: the dtype-aware, invertible transform applied to each chunk of a
// torch-zip-zstd record before entropy coding (formats/compress/SPEC.md, section 3).
//
// A float element is rotated left by one bit so that the sign lands in the lowest bit and
// the exponent fills the top byte; the bytes of all elements are then split into planes,
// most significant byte first. The exponent plane of trained or randomly initialised
// weights has an entropy of ~2.5-3 bits per byte and compresses well; the mantissa planes
// are close to random and are usually stored raw. Pure functions, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>

#include "formats/dtype.h"

namespace ckptio::compress {

enum class Grouping : uint8_t {
  kNone = 0,   // one plane: the bytes as they are
  kRot16 = 1,  // 2-byte elements (bfloat16, float16): rotl16(x, 1), planes [hi, lo]
  kRot32 = 2,  // 4-byte elements (float32): rotl32(x, 1), planes [b3, b2, b1, b0]
};

// The grouping used for a storage of this dtype and byte length (kNone when the length is
// not a whole number of elements, or for dtypes without an exponent field worth splitting).
Grouping grouping_for(DType dtype, uint64_t nbytes);

// Number of planes (1, 2 or 4) and element size in bytes (1, 2 or 4).
unsigned plane_count(Grouping g);
inline unsigned element_size(Grouping g) { return plane_count(g); }
// Only values 0..2 name a grouping; anything else in a file is corrupt.
bool grouping_valid(uint8_t value);

// Forward transform of n bytes (a multiple of element_size(g)): out receives the planes one
// after the other, each n / element_size(g) bytes long. in and out must not overlap.
void group_bytes(Grouping g, const uint8_t* in, size_t n, uint8_t* out);

// Inverse: planes[p] points to plane p (each n / element_size(g) bytes); out receives n
// bytes of elements. Planes may live in different buffers (e.g. a raw plane read in place).
void ungroup_bytes(Grouping g, const uint8_t* const* planes, size_t n, uint8_t* out);

}  // namespace ckptio::compress
