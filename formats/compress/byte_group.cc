#include "formats/compress/byte_group.h"

#include <cstring>

namespace ckptio::compress {

Grouping grouping_for(DType dtype, uint64_t nbytes) {
  switch (dtype) {
    case DType::kBFloat16:
    case DType::kFloat16:
      return nbytes % 2 == 0 ? Grouping::kRot16 : Grouping::kNone;
    case DType::kFloat32:
      return nbytes % 4 == 0 ? Grouping::kRot32 : Grouping::kNone;
    default:
      return Grouping::kNone;
  }
}

unsigned plane_count(Grouping g) {
  switch (g) {
    case Grouping::kRot16: return 2;
    case Grouping::kRot32: return 4;
    default: return 1;
  }
}

bool grouping_valid(uint8_t value) { return value <= 2; }

// Elements are read and written with memcpy (little-endian host assumed, as everywhere in
// ckptio); the loops are simple enough for the compiler to vectorise.
void group_bytes(Grouping g, const uint8_t* in, size_t n, uint8_t* out) {
  switch (g) {
    case Grouping::kNone:
      std::memcpy(out, in, n);
      return;
    case Grouping::kRot16: {
      const size_t ne = n / 2;
      uint8_t* hi = out;
      uint8_t* lo = out + ne;
      for (size_t i = 0; i < ne; ++i) {
        uint16_t x;
        std::memcpy(&x, in + 2 * i, 2);
        x = uint16_t((x << 1) | (x >> 15));
        hi[i] = uint8_t(x >> 8);
        lo[i] = uint8_t(x);
      }
      return;
    }
    case Grouping::kRot32: {
      const size_t ne = n / 4;
      uint8_t* p0 = out;
      uint8_t* p1 = out + ne;
      uint8_t* p2 = out + 2 * ne;
      uint8_t* p3 = out + 3 * ne;
      for (size_t i = 0; i < ne; ++i) {
        uint32_t x;
        std::memcpy(&x, in + 4 * i, 4);
        x = (x << 1) | (x >> 31);
        p0[i] = uint8_t(x >> 24);
        p1[i] = uint8_t(x >> 16);
        p2[i] = uint8_t(x >> 8);
        p3[i] = uint8_t(x);
      }
      return;
    }
  }
}

void ungroup_bytes(Grouping g, const uint8_t* const* planes, size_t n, uint8_t* out) {
  switch (g) {
    case Grouping::kNone:
      std::memcpy(out, planes[0], n);
      return;
    case Grouping::kRot16: {
      const size_t ne = n / 2;
      const uint8_t* hi = planes[0];
      const uint8_t* lo = planes[1];
      for (size_t i = 0; i < ne; ++i) {
        uint16_t x = uint16_t((hi[i] << 8) | lo[i]);
        x = uint16_t((x >> 1) | (x << 15));
        std::memcpy(out + 2 * i, &x, 2);
      }
      return;
    }
    case Grouping::kRot32: {
      const size_t ne = n / 4;
      const uint8_t *p0 = planes[0], *p1 = planes[1], *p2 = planes[2], *p3 = planes[3];
      for (size_t i = 0; i < ne; ++i) {
        uint32_t x = (uint32_t(p0[i]) << 24) | (uint32_t(p1[i]) << 16) |
                     (uint32_t(p2[i]) << 8) | uint32_t(p3[i]);
        x = (x >> 1) | (x << 31);
        std::memcpy(out + 4 * i, &x, 4);
      }
      return;
    }
  }
}

}  // namespace ckptio::compress
