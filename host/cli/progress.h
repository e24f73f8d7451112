// Progress on stderr for long operations: bytes done, rate and time left, redrawn in place.
// Silent unless stderr is a terminal, so pipes and logs stay clean.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ckptio::cli {

class Progress {
 public:
  explicit Progress(std::string label);
  ~Progress();
  void update(uint64_t done, uint64_t total);

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace ckptio::cli
