#include "host/cuda/staging_pipeline.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "host/io/storage_loader.h"

namespace ckptio::cuda_detail {
namespace {

constexpr uint64_t kPieceAlign = 256;

uint64_t align_up(uint64_t v) { return (v + kPieceAlign - 1) / kPieceAlign * kPieceAlign; }

// The first error wins; everyone blocked in a queue is woken when it is set.
class Failure {
 public:
  void set(const Status& st) {
    std::lock_guard<std::mutex> lock(mu_);
    if (first_.ok()) first_ = st;
    failed_ = true;
  }
  bool failed() const { return failed_.load(); }
  Status first() const {
    std::lock_guard<std::mutex> lock(mu_);
    return first_;
  }

 private:
  mutable std::mutex mu_;
  Status first_;
  std::atomic<bool> failed_{false};
};

// A closable FIFO: pop() returns false once closed (or aborted) and empty.
template <class T>
class Queue {
 public:
  void push(T v) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      items_.push_back(std::move(v));
    }
    cv_.notify_one();
  }
  bool pop(T& out) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return aborted_ || closed_ || !items_.empty(); });
    if (aborted_ || items_.empty()) return false;
    out = std::move(items_.front());
    items_.pop_front();
    return true;
  }
  void close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }
  void abort() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      aborted_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> items_;
  bool closed_ = false;
  bool aborted_ = false;
};

struct Staged {
  size_t batch;
  int slot;
};

int worker_count(int threads, size_t batches) {
  unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  size_t n = threads > 0 ? static_cast<size_t>(threads) : std::min<size_t>(hw, 16);
  return static_cast<int>(std::max<size_t>(1, std::min(n, batches)));
}

Status check(const std::vector<Batch>& batches, const Ring& ring, const CopyEngine& engine) {
  if (!ring.base || ring.slots < 1 || ring.slot_bytes == 0)
    return Status(Code::kInvalidArgument, "staging ring has no slots");
  if (engine.lanes() < 1) return Status(Code::kInvalidArgument, "copy engine has no lanes");
  for (const Batch& b : batches)
    if (b.bytes > ring.slot_bytes)
      return Status(Code::kInvalidArgument, "batch of " + std::to_string(b.bytes) +
                                                " bytes does not fit a staging slot of " +
                                                std::to_string(ring.slot_bytes));
  return Status::Ok();
}

uint64_t total_bytes(const std::vector<Batch>& batches) {
  uint64_t total = 0;
  for (const Batch& b : batches)
    for (const Piece& p : b.pieces) total += p.n;
  return total;
}

}  // namespace

std::vector<Batch> plan_batches(const std::vector<std::pair<uint32_t, uint64_t>>& storages,
                                uint64_t slot_bytes) {
  std::vector<Batch> out;
  if (slot_bytes < kPieceAlign) slot_bytes = kPieceAlign;
  Batch cur;
  for (const auto& [index, size] : storages) {
    uint64_t done = 0;
    while (done < size) {
      uint64_t at = align_up(cur.bytes);
      if (at >= slot_bytes) {
        out.push_back(std::move(cur));
        cur = Batch{};
        at = 0;
      }
      uint64_t n = std::min(size - done, slot_bytes - at);
      cur.pieces.push_back(Piece{index, done, n, at});
      cur.bytes = at + n;
      done += n;
    }
  }
  if (!cur.pieces.empty()) out.push_back(std::move(cur));
  return out;
}

Status run_upload(const std::vector<Batch>& batches, const Ring& ring, CopyEngine& engine,
                  int threads, const FillFn& fill, const DeviceAddrFn& device_addr,
                  const ProgressFn& progress) {
  CKPTIO_RETURN_IF_ERROR(check(batches, ring, engine));
  if (batches.empty()) return Status::Ok();
  const uint64_t total = total_bytes(batches);
  Failure failure;
  Queue<int> free_slots;
  for (int s = 0; s < ring.slots; ++s) free_slots.push(s);
  Queue<Staged> staged;
  std::atomic<size_t> next{0};
  std::atomic<int> readers_left{0};

  auto reader = [&] {
    engine.thread_init();
    for (;;) {
      if (failure.failed()) break;
      size_t k = next.fetch_add(1);
      if (k >= batches.size()) break;
      int slot;
      if (!free_slots.pop(slot)) break;  // aborted
      // The slot's previous copy to the device must be done before it is overwritten.
      Status st = engine.wait(slot);
      for (const Piece& p : batches[k].pieces) {
        if (!st.ok()) break;
        st = fill(p, ring.slot(slot) + p.slot_offset);
      }
      if (!st.ok()) {
        failure.set(st);
        free_slots.abort();
        staged.abort();
        break;
      }
      staged.push(Staged{k, slot});
    }
    if (readers_left.fetch_sub(1) == 1) staged.close();
  };

  int n_readers = worker_count(threads, batches.size());
  readers_left = n_readers;
  std::vector<std::thread> pool;
  pool.reserve(n_readers);
  for (int t = 0; t < n_readers; ++t) pool.emplace_back(reader);

  // Issue copies as batches become ready, in whatever order the readers finish them.
  uint64_t issued = 0;
  size_t count = 0;
  Staged s{};
  while (staged.pop(s)) {
    int lane = static_cast<int>(count++ % static_cast<size_t>(engine.lanes()));
    Status st;
    for (const Piece& p : batches[s.batch].pieces) {
      st = engine.copy_async(lane, device_addr(p), ring.slot(s.slot) + p.slot_offset, p.n);
      if (!st.ok()) break;
      issued += p.n;
    }
    if (st.ok()) st = engine.fence(lane, s.slot);
    if (!st.ok()) {
      failure.set(st);
      free_slots.abort();
      staged.abort();
      break;
    }
    free_slots.push(s.slot);
    if (progress) progress(issued, total);
  }
  for (auto& t : pool) t.join();
  Status drained = engine.drain();  // nothing may still read the ring when we return
  if (failure.failed()) return failure.first();
  CKPTIO_RETURN_IF_ERROR(drained);
  if (count != batches.size())
    return Status(Code::kInternal, "staging pipeline lost batches");
  return Status::Ok();
}

Status run_download(const std::vector<Batch>& batches, const Ring& ring, CopyEngine& engine,
                    int threads, const DeviceAddrFn& device_addr, const DrainFn& drain,
                    const ProgressFn& progress) {
  CKPTIO_RETURN_IF_ERROR(check(batches, ring, engine));
  if (batches.empty()) return Status::Ok();
  const uint64_t total = total_bytes(batches);
  Failure failure;
  Queue<int> free_slots;
  for (int s = 0; s < ring.slots; ++s) free_slots.push(s);
  Queue<Staged> issued_q;
  std::atomic<uint64_t> done{0};

  auto consumer = [&] {
    engine.thread_init();
    Staged s{};
    while (issued_q.pop(s)) {
      Status st = engine.wait(s.slot);
      for (const Piece& p : batches[s.batch].pieces) {
        if (!st.ok()) break;
        st = drain(p, ring.slot(s.slot) + p.slot_offset);
        if (st.ok()) done.fetch_add(p.n);
      }
      if (!st.ok()) {
        failure.set(st);
        free_slots.abort();
        issued_q.abort();
        return;
      }
      free_slots.push(s.slot);
    }
  };

  int n_consumers = worker_count(threads, batches.size());
  std::vector<std::thread> pool;
  pool.reserve(n_consumers);
  for (int t = 0; t < n_consumers; ++t) pool.emplace_back(consumer);

  size_t count = 0;
  for (size_t k = 0; k < batches.size() && !failure.failed(); ++k) {
    int slot;
    if (!free_slots.pop(slot)) break;  // aborted by a consumer
    int lane = static_cast<int>(count++ % static_cast<size_t>(engine.lanes()));
    Status st;
    for (const Piece& p : batches[k].pieces) {
      st = engine.copy_async(lane, ring.slot(slot) + p.slot_offset, device_addr(p), p.n);
      if (!st.ok()) break;
    }
    if (st.ok()) st = engine.fence(lane, slot);
    if (!st.ok()) {
      failure.set(st);
      free_slots.abort();
      issued_q.abort();
      break;
    }
    issued_q.push(Staged{k, slot});
    if (progress) progress(done.load(), total);
  }
  issued_q.close();
  for (auto& t : pool) t.join();
  Status drained = engine.drain();
  if (failure.failed()) return failure.first();
  CKPTIO_RETURN_IF_ERROR(drained);
  if (progress) progress(total, total);
  return Status::Ok();
}

ReaderPieces::ReaderPieces(Reader& reader, const std::vector<uint32_t>& indices,
                           const std::vector<Batch>& batches)
    : reader_(reader), indices_(indices) {
  for (const Batch& b : batches)
    for (const Piece& p : b.pieces) {
      uint32_t index = indices_.at(p.storage);
      uint64_t size = reader_.tree().storages.at(index).nbytes;
      if (reader_.plain(index) || (p.offset == 0 && p.n == size)) continue;
      auto& e = decoded_[p.storage];
      if (!e) e = std::make_unique<Decoded>();
      ++e->remaining;
    }
}

Status ReaderPieces::fill(const Piece& p, void* dst) {
  uint32_t index = indices_[p.storage];
  auto it = decoded_.find(p.storage);
  if (it == decoded_.end()) return reader_.read_range(index, p.offset, dst, p.n);
  Decoded& e = *it->second;
  std::lock_guard<std::mutex> lock(e.mu);
  if (!e.bytes) {
    uint64_t size = reader_.tree().storages[index].nbytes;
    std::shared_ptr<uint8_t> bytes = host::allocate_storage(size);
    CKPTIO_RETURN_IF_ERROR(reader_.read_range(index, 0, bytes.get(), size));
    e.bytes = std::move(bytes);
  }
  std::memcpy(dst, e.bytes.get() + p.offset, p.n);
  if (--e.remaining == 0) e.bytes.reset();
  return Status::Ok();
}

}  // namespace ckptio::cuda_detail
