#include "host/io/progress_concat.h"

#include <algorithm>

namespace ckptio::host {

void ProgressConcat::set_total(uint64_t total) {
  std::lock_guard<std::mutex> lock(mu_);
  total_ = total;
}

void ProgressConcat::report(uint64_t done, uint64_t read_total) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!user_) return;
  if (finished_) {
    user_(done, read_total);
    return;
  }
  // A read may repeat its last report, so only a change of total or a fall in the count
  // marks the next one.
  bool new_read = !started_ || read_total != read_total_ || done < read_done_;
  if (new_read) {
    if (started_) earlier_reads_ += read_total_;
    started_ = true;
    read_total_ = read_total;
  }
  read_done_ = done;
  emit(earlier_reads_ + std::min(done, read_total));
}

void ProgressConcat::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!user_ || finished_) return;
  finished_ = true;
  user_(total_, total_);
}

void ProgressConcat::emit(uint64_t done) {
  // Never past the total, never backwards: a read may cover bytes counted in an earlier one.
  done = std::max(last_emitted_, std::min(done, total_));
  last_emitted_ = done;
  user_(done, total_);
}

ProgressFn ProgressConcat::forwarder(const std::shared_ptr<ProgressConcat>& concat) {
  if (!concat || !concat->user_) return {};
  return [concat](uint64_t done, uint64_t total) { concat->report(done, total); };
}

}  // namespace ckptio::host
