// Peak memory of one operation, measured the same way as bench/py/memstat.py: the process's
// resident high-water mark (VmHWM) is reset to its current RSS by writing 5 to
// /proc/self/clear_refs just before, and read after; the difference is what the operation
// itself added at its peak, whatever the process held before.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace ckptio_bench {

inline uint64_t status_kib(const std::string& field) {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1));
  return 0;
}

// Resets the high-water mark; returns the resident bytes now.
inline uint64_t start_peak() {
  std::ofstream("/proc/self/clear_refs") << "5";
  return status_kib("VmRSS") << 10;
}

inline int64_t peak_since(uint64_t start_rss) {
  return static_cast<int64_t>(status_kib("VmHWM") << 10) - static_cast<int64_t>(start_rss);
}

}  // namespace ckptio_bench
