#include "host/cli/progress.h"

#include <unistd.h>

#include <cstdio>

#include "host/render/tree_printer.h"

namespace ckptio::cli {

Progress::Progress(std::string label)
    : label_(std::move(label)), enabled_(isatty(STDERR_FILENO) == 1) {
  start_ = last_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  if (drawn_) std::fprintf(stderr, "\n");
}

void Progress::update(uint64_t done, uint64_t total) {
  if (!enabled_ || total == 0) return;
  auto now = std::chrono::steady_clock::now();
  // Redraw at most 10 times a second, and only for operations that take a while.
  if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
  if (!drawn_ && done == total && now - start_ < std::chrono::milliseconds(300)) return;
  last_ = now;
  double secs = std::chrono::duration<double>(now - start_).count();
  double rate = secs > 0 ? done / secs : 0;
  double left = rate > 0 ? (total - done) / rate : 0;
  std::fprintf(stderr, "\r%s %s / %s  %s/s  %.0f s left   ", label_.c_str(),
               host::human_bytes(done).c_str(), host::human_bytes(total).c_str(),
               host::human_bytes(static_cast<uint64_t>(rate)).c_str(), left);
  drawn_ = true;
}

}  // namespace ckptio::cli
