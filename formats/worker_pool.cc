#include "formats/worker_pool.h"

#include <algorithm>

namespace ckptio {

WorkerPool::WorkerPool(unsigned threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  size_ = std::min(threads, 256u);
  for (unsigned w = 1; w < size_; ++w) threads_.emplace_back([this, w] { loop(w); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkerPool::work(unsigned worker) {
  for (;;) {
    size_t task;
    const std::function<void(size_t, unsigned)>* fn;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (next_ >= n_) return;
      task = next_++;
      fn = fn_;
    }
    (*fn)(task, worker);
    std::lock_guard<std::mutex> lock(mu_);
    if (++finished_ == n_) done_cv_.notify_all();
  }
}

void WorkerPool::loop(unsigned worker) {
  unsigned long seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    work(worker);
  }
}

void WorkerPool::run(size_t n, const std::function<void(size_t, unsigned)>& fn) {
  if (n == 0) return;
  std::lock_guard<std::mutex> run_lock(run_mu_);
  if (size_ == 1 || n == 1) {
    for (size_t i = 0; i < n; ++i) fn(i, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    n_ = n;
    next_ = 0;
    finished_ = 0;
    ++generation_;
  }
  cv_.notify_all();
  work(0);
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return finished_ == n_; });
  fn_ = nullptr;
}

}  // namespace ckptio
