// Little-endian load/store helpers shared by the zip and legacy codecs (private to formats/).
#pragma once

#include <cstdint>
#include <string>

namespace ckptio {
namespace le {

inline uint16_t u16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
inline uint32_t u32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
inline uint64_t u64(const uint8_t* p) { return uint64_t(u32(p)) | (uint64_t(u32(p + 4)) << 32); }

inline void put16(std::string& out, uint16_t v) {
  out.push_back(char(v & 0xff));
  out.push_back(char(v >> 8));
}
inline void put32(std::string& out, uint32_t v) {
  put16(out, uint16_t(v & 0xffff));
  put16(out, uint16_t(v >> 16));
}
inline void put64(std::string& out, uint64_t v) {
  put32(out, uint32_t(v & 0xffffffffu));
  put32(out, uint32_t(v >> 32));
}

}  // namespace le
}  // namespace ckptio
