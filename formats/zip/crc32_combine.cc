#include "formats/zip/crc32_combine.h"

namespace ckptio {
namespace {

// Polynomials mod P in CRC-32's bit-reflected form: bit 31 is the coefficient of x^0,
// bit 0 that of x^31. Appending n zero bytes to a message multiplies its (unconditioned)
// remainder by x^(8n); the pre- and post-inversions of CRC-32 cancel between the two parts.
constexpr uint32_t kPoly = 0xEDB88320u;  // P, reflected
constexpr uint32_t kOne = 0x80000000u;   // x^0

uint32_t times_x(uint32_t a) { return (a >> 1) ^ ((a & 1) ? kPoly : 0); }

uint32_t multiply(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t bit = kOne; bit != 0; bit >>= 1) {  // a's coefficients from x^0 upwards
    if (a & bit) product ^= b;
    b = times_x(b);
  }
  return product;
}

// x^(8 * n) mod P by square and multiply.
uint32_t x_to_8n(uint64_t n) {
  uint32_t result = kOne;
  uint32_t power = kOne >> 8;  // x^8
  while (n) {
    if (n & 1) result = multiply(result, power);
    power = multiply(power, power);
    n >>= 1;
  }
  return result;
}

}  // namespace

uint32_t crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t length_b) {
  return multiply(x_to_8n(length_b), crc_a) ^ crc_b;
}

}  // namespace ckptio
