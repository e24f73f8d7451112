// One (done, total) sequence for a load made of several reads, each of which reports its own
// progress from zero (host storages, then each CUDA device, then bytes read straight into a
// module's tensors ...). Without it, a user's progress bar would restart with each read and
// never learn the load's real size. The reads must run one after another; a new one is
// recognised when its total differs from the last or its count falls. (A read of the same
// size as the last, whose first report is already complete, goes unnoticed: the count then
// lags until finish(), but never runs backwards or past the total.)
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "ckptio/ckptio.h"

namespace ckptio::host {

class ProgressConcat {
 public:
  // `total`: every byte the reads will cover, including bytes none of them reports (zero-copy
  // storages): finish() accounts for those.
  ProgressConcat(ProgressFn user, uint64_t total) : user_(std::move(user)), total_(total) {}

  void set_total(uint64_t total);
  // A report from one of the reads: `done` of its own `read_total` bytes.
  void report(uint64_t done, uint64_t read_total);
  // The load is complete: reports (total, total) and from then on passes reports through
  // unchanged (a lazy checkpoint's later reads are each a sequence of their own).
  void finish();

  // A ProgressFn that reports into `concat`, or an empty one where the user gave none (so
  // that readers skip the work of reporting).
  static ProgressFn forwarder(const std::shared_ptr<ProgressConcat>& concat);

 private:
  void emit(uint64_t done);  // under mu_

  ProgressFn user_;
  std::mutex mu_;
  uint64_t total_;
  uint64_t earlier_reads_ = 0;  // bytes of the reads before the current one
  uint64_t read_done_ = 0, read_total_ = 0;
  uint64_t last_emitted_ = 0;
  bool started_ = false, finished_ = false;
};

}  // namespace ckptio::host
