// A small fixed pool of threads for chunk-parallel encoding and decoding. The caller of
// run() works too, so a pool of size 1 has no background thread at all.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ckptio {

class WorkerPool {
 public:
  // threads == 0: std::thread::hardware_concurrency().
  explicit WorkerPool(unsigned threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  unsigned size() const { return size_; }
  // Runs fn(task, worker) for every task in [0, n), worker in [0, size()); a worker index is
  // used by one thread at a time, so per-worker scratch needs no lock. Returns when all
  // tasks are done. Concurrent run() calls are serialised.
  void run(size_t n, const std::function<void(size_t task, unsigned worker)>& fn);

 private:
  void loop(unsigned worker);
  void work(unsigned worker);

  unsigned size_;
  std::vector<std::thread> threads_;
  std::mutex run_mu_;  // one job at a time
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(size_t, unsigned)>* fn_ = nullptr;
  size_t n_ = 0, next_ = 0, finished_ = 0;
  unsigned long generation_ = 0;
  bool stop_ = false;
};

}  // namespace ckptio
