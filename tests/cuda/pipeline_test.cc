// The GPU data path's pipeline on CPU: the staging ring, reader/issuer threads, slot recycling
// and error handling of host/cuda/staging_pipeline, with a copy engine that runs each lane's
// copies later on its own thread (as CUDA streams do) and checks that no staging slot is
// overwritten while a copy from it is pending. Also Reader::read_range, which feeds it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <thread>

#include "ckptio/ckptio.h"
#include "host/cuda/staging_pipeline.h"
#include "support/scratch.h"

namespace ckptio::cuda_detail {
namespace {

uint64_t fnv(const void* p, uint64_t n) {
  auto* b = static_cast<const uint8_t*>(p);
  uint64_t h = 1469598103934665603ull;
  for (uint64_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

// Lanes are threads that run queued copies after an optional delay; fences complete when the
// lane has run everything before them. A copy whose source changed between copy_async and
// its execution is a pipeline bug (a slot reused too early) and is counted.
class ThreadEngine final : public CopyEngine {
 public:
  ThreadEngine(int lanes, int slots, std::chrono::microseconds delay)
      : delay_(delay), slot_gen_(slots, 0), slot_done_(slots, 0), lanes_(lanes) {
    for (auto& l : lanes_) l.worker = std::thread([this, &l] { run(l); });
  }
  ~ThreadEngine() override {
    for (auto& l : lanes_) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        l.stop = true;
      }
      cv_.notify_all();
      l.worker.join();
    }
  }
  int lanes() const override { return static_cast<int>(lanes_.size()); }
  Status copy_async(int lane, void* dst, const void* src, uint64_t n) override {
    if (fail_copy_after_ >= 0 && copies_.fetch_add(1) >= fail_copy_after_)
      return Status(Code::kIo, "injected copy failure");
    uint64_t h = fnv(src, n);
    ++pending_copies;
    push(lane, [this, dst, src, n, h] {
      if (fnv(src, n) != h) ++clobbered;
      std::memcpy(dst, src, n);
      --pending_copies;
    });
    return Status::Ok();
  }
  Status fence(int lane, int slot) override {
    uint64_t gen;
    {
      std::lock_guard<std::mutex> lock(mu_);
      gen = ++slot_gen_[slot];
    }
    push(lane, [this, slot, gen] {
      std::lock_guard<std::mutex> lock(mu_);
      slot_done_[slot] = std::max(slot_done_[slot], gen);
    });
    return Status::Ok();
  }
  Status wait(int slot) override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return slot_done_[slot] >= slot_gen_[slot]; });
    return Status::Ok();
  }
  Status drain() override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] {
      for (auto& l : lanes_)
        if (!l.queue.empty() || l.busy) return false;
      return true;
    });
    return Status::Ok();
  }

  std::atomic<int> clobbered{0};
  std::atomic<int> pending_copies{0};  // queued, not yet run
  int fail_copy_after_ = -1;

 private:
  struct Lane {
    std::deque<std::function<void()>> queue;
    bool busy = false;
    bool stop = false;
    std::thread worker;
  };
  void push(int lane, std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      lanes_[lane].queue.push_back(std::move(fn));
    }
    cv_.notify_all();
  }
  void run(Lane& l) {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return l.stop || !l.queue.empty(); });
      if (l.queue.empty()) return;
      auto fn = std::move(l.queue.front());
      l.queue.pop_front();
      l.busy = true;
      lock.unlock();
      if (delay_.count()) std::this_thread::sleep_for(delay_);
      fn();
      lock.lock();
      l.busy = false;
      cv_.notify_all();
    }
  }

  std::chrono::microseconds delay_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<uint64_t> slot_gen_, slot_done_;
  std::deque<Lane> lanes_;
  std::atomic<int> copies_{0};
};

struct Fixture {
  std::vector<std::vector<uint8_t>> src;     // "file" bytes per storage
  std::vector<std::vector<uint8_t>> device;  // destination per storage
  std::vector<std::pair<uint32_t, uint64_t>> sizes;
};

Fixture make(const std::vector<uint64_t>& sizes, uint32_t seed = 1) {
  Fixture f;
  std::mt19937 rng(seed);
  for (uint32_t i = 0; i < sizes.size(); ++i) {
    f.src.emplace_back(sizes[i]);
    for (auto& b : f.src.back()) b = static_cast<uint8_t>(rng());
    f.device.emplace_back(sizes[i], 0);
    f.sizes.emplace_back(i, sizes[i]);
  }
  return f;
}

TEST(PlanBatches, PacksSmallSplitsLargeAlignsPieces) {
  auto batches = plan_batches({{0, 10}, {1, 0}, {2, 300}, {3, 2500}, {4, 1}}, 1024);
  uint64_t covered[5] = {};
  for (const Batch& b : batches) {
    EXPECT_LE(b.bytes, 1024u);
    uint64_t end = 0;
    for (const Piece& p : b.pieces) {
      EXPECT_EQ(p.slot_offset % 256, 0u);
      EXPECT_GE(p.slot_offset, end);  // no overlap within a slot
      end = p.slot_offset + p.n;
      EXPECT_EQ(p.offset, covered[p.storage]);  // in order, no gaps
      covered[p.storage] += p.n;
      EXPECT_NE(p.storage, 1u);  // empty storage: no piece
    }
    EXPECT_EQ(b.bytes, end);
  }
  EXPECT_EQ(covered[0], 10u);
  EXPECT_EQ(covered[2], 300u);
  EXPECT_EQ(covered[3], 2500u);
  EXPECT_EQ(covered[4], 1u);
  // 10 and 300 share the first slot with the start of 3.
  ASSERT_GE(batches.size(), 3u);
  EXPECT_EQ(batches[0].pieces[0].storage, 0u);
  EXPECT_EQ(batches[0].pieces[1].storage, 2u);
  EXPECT_EQ(batches[0].pieces[1].slot_offset, 256u);
  EXPECT_TRUE(plan_batches({}, 1024).empty());
  EXPECT_TRUE(plan_batches({{0, 0}}, 1024).empty());
}

struct UploadCase {
  int slots, lanes, threads;
  uint64_t slot_bytes;
  int delay_us;
};

class Upload : public ::testing::TestWithParam<UploadCase> {};

TEST_P(Upload, BytesArriveIntactAndSlotsAreNeverReusedEarly) {
  const UploadCase c = GetParam();
  Fixture f = make({1, 5000, 0, 70000, 256, 257, 123456, 3, 4096, 99999});
  auto batches = plan_batches(f.sizes, c.slot_bytes);
  std::vector<uint8_t> ring_mem(c.slots * c.slot_bytes);
  Ring ring{ring_mem.data(), c.slot_bytes, c.slots};
  ThreadEngine engine(c.lanes, c.slots, std::chrono::microseconds(c.delay_us));
  std::atomic<int> fills_during_copies{0};
  std::atomic<int> in_fill{0}, max_in_fill{0};
  uint64_t last_done = 0;
  int progress_calls = 0;
  Status st = run_upload(
      batches, ring, engine, c.threads,
      [&](const Piece& p, void* dst) {
        int now = ++in_fill;
        int m = max_in_fill.load();
        while (now > m && !max_in_fill.compare_exchange_weak(m, now)) {}
        if (engine.pending_copies.load() > 0) ++fills_during_copies;
        std::memcpy(dst, f.src[p.storage].data() + p.offset, p.n);
        --in_fill;
        return Status::Ok();
      },
      [&](const Piece& p) { return f.device[p.storage].data() + p.offset; },
      [&](uint64_t done, uint64_t total) {
        EXPECT_GE(done, last_done);
        EXPECT_LE(done, total);
        last_done = done;
        ++progress_calls;
      });
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(engine.clobbered.load(), 0);
  for (size_t i = 0; i < f.src.size(); ++i) EXPECT_EQ(f.src[i], f.device[i]) << "storage " << i;
  EXPECT_EQ(progress_calls, static_cast<int>(batches.size()));
  if (c.delay_us > 0 && batches.size() > static_cast<size_t>(c.slots)) {
    EXPECT_GT(fills_during_copies.load(), 0) << "reading never overlapped copying";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, Upload,
    ::testing::Values(UploadCase{1, 1, 1, 4096, 0},      // one slot: fully serial
                      UploadCase{2, 1, 1, 4096, 200},    // double buffering
                      UploadCase{3, 2, 4, 8192, 300},    // more readers than slots
                      UploadCase{8, 4, 2, 16384, 100},   // more slots than readers
                      UploadCase{4, 3, 3, 65536, 0},     // large slots, no delay
                      UploadCase{16, 4, 8, 1024, 50}));  // many tiny batches

TEST(Upload, ReaderErrorStopsEverythingAndIsReturned) {
  Fixture f = make({100000, 100000, 100000});
  auto batches = plan_batches(f.sizes, 4096);
  std::vector<uint8_t> ring_mem(2 * 4096);
  Ring ring{ring_mem.data(), 4096, 2};
  ThreadEngine engine(2, 2, std::chrono::microseconds(100));
  std::atomic<int> fills{0};
  Status st = run_upload(
      batches, ring, engine, 3,
      [&](const Piece& p, void* dst) {
        if (++fills == 10) return Status(Code::kCorrupt, "model.pt: bad bytes in storage 1");
        std::memcpy(dst, f.src[p.storage].data() + p.offset, p.n);
        return Status::Ok();
      },
      [&](const Piece& p) { return f.device[p.storage].data() + p.offset; });
  EXPECT_EQ(st.code(), Code::kCorrupt);
  EXPECT_EQ(st.message(), "model.pt: bad bytes in storage 1");
  EXPECT_LT(fills.load(), 10 + 3 + 2);  // stopped soon, did not read everything
  EXPECT_EQ(engine.clobbered.load(), 0);
}

TEST(Upload, CopyErrorIsReturned) {
  Fixture f = make({50000});
  auto batches = plan_batches(f.sizes, 4096);
  std::vector<uint8_t> ring_mem(2 * 4096);
  Ring ring{ring_mem.data(), 4096, 2};
  ThreadEngine engine(2, 2, std::chrono::microseconds(0));
  engine.fail_copy_after_ = 3;
  Status st = run_upload(
      batches, ring, engine, 2,
      [&](const Piece& p, void* dst) {
        std::memcpy(dst, f.src[p.storage].data() + p.offset, p.n);
        return Status::Ok();
      },
      [&](const Piece& p) { return f.device[p.storage].data() + p.offset; });
  EXPECT_EQ(st.code(), Code::kIo);
  EXPECT_NE(st.message().find("injected copy failure"), std::string::npos);
}

TEST(Upload, RefusesABatchLargerThanASlot) {
  Fixture f = make({5000});
  auto batches = plan_batches(f.sizes, 8192);
  std::vector<uint8_t> ring_mem(4096);
  Ring ring{ring_mem.data(), 4096, 1};
  ThreadEngine engine(1, 1, std::chrono::microseconds(0));
  Status st = run_upload(batches, ring, engine, 1, nullptr, nullptr);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
}

TEST(Download, BytesArriveIntactWithOverlap) {
  for (int slots : {1, 2, 5}) {
    Fixture f = make({1, 5000, 0, 70000, 123456, 3, 99999}, 7);
    // device -> host: "device" holds the source here.
    auto batches = plan_batches(f.sizes, 8192);
    std::vector<uint8_t> ring_mem(slots * 8192);
    Ring ring{ring_mem.data(), 8192, slots};
    ThreadEngine engine(2, slots, std::chrono::microseconds(100));
    std::vector<std::vector<uint8_t>> host = f.device;  // zeros
    std::atomic<int> drains_during_copies{0};
    Status st = run_download(
        batches, ring, engine, 3, [&](const Piece& p) { return f.src[p.storage].data() + p.offset; },
        [&](const Piece& p, const void* staged) {
          if (engine.pending_copies.load() > 0) ++drains_during_copies;
          std::memcpy(host[p.storage].data() + p.offset, staged, p.n);
          return Status::Ok();
        });
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(host, f.src) << slots << " slots";
    if (slots > 1) {
      EXPECT_GT(drains_during_copies.load(), 0) << slots << " slots";
    }
  }
}

TEST(Download, ConsumerErrorIsReturned) {
  Fixture f = make({200000});
  auto batches = plan_batches(f.sizes, 4096);
  std::vector<uint8_t> ring_mem(2 * 4096);
  Ring ring{ring_mem.data(), 4096, 2};
  ThreadEngine engine(2, 2, std::chrono::microseconds(50));
  std::atomic<int> n{0};
  Status st = run_download(
      batches, ring, engine, 2, [&](const Piece& p) { return f.src[p.storage].data() + p.offset; },
      [&](const Piece&, const void*) {
        return ++n == 5 ? Status(Code::kIo, "disk full") : Status::Ok();
      });
  EXPECT_EQ(st.code(), Code::kIo);
  EXPECT_EQ(st.message(), "disk full");
}

// ---- Reader::read_range and ReaderPieces against files written by the real plugins ----------

using test_support::ScratchDir;

// {"t0": uint8[n0], "t1": ..., } with one storage per tensor, values from a fixed seed.
Checkpoint byte_checkpoint(const std::vector<uint64_t>& sizes) {
  Checkpoint c;
  auto root = Value::dict(true);
  std::mt19937 rng(3);
  for (uint32_t i = 0; i < sizes.size(); ++i) {
    c.tree.storages.push_back(StorageInfo{std::to_string(i), DType::kUInt8, sizes[i], "cuda:0"});
    auto bytes = std::shared_ptr<uint8_t>(new uint8_t[sizes[i] + 1], std::default_delete<uint8_t[]>());
    for (uint64_t k = 0; k < sizes[i]; ++k) bytes.get()[k] = static_cast<uint8_t>(rng() % 7);
    c.storages.push_back(StorageBytes{bytes.get(), sizes[i], bytes, false});
    TensorMeta m;
    m.dtype = DType::kUInt8;
    m.shape = {static_cast<int64_t>(sizes[i])};
    m.strides = {1};
    m.storage = i;
    root->entries.emplace_back(Value::str("t" + std::to_string(i)), Value::make_tensor(m));
  }
  c.tree.root = root;
  return c;
}

class ReaderFormats : public ::testing::TestWithParam<std::string> {};

TEST_P(ReaderFormats, ReadRangeAndPiecesMatchStorageBytes) {
  const std::string format = GetParam();
  if (!Registry::global().has_format(format)) GTEST_SKIP() << "plugin for " << format << " not built";
  ScratchDir dir("cuda-pipeline");
  std::vector<uint64_t> sizes{0, 1, 300, 70000, 5 << 20, 4097};
  Checkpoint c = byte_checkpoint(sizes);
  SaveOptions so;
  so.format = format;
  so.fsync = false;
  std::string path = dir.file("m.pt");
  save(path, c, so);

  auto r = Reader::open(path);
  ASSERT_EQ(r->tree().storages.size(), sizes.size());
  // read_range: ranges, bounds, no caching.
  for (uint32_t i = 0; i < sizes.size(); ++i) {
    const uint8_t* want = c.storages[i].data;
    std::vector<uint8_t> got(sizes[i]);
    ASSERT_TRUE(r->read_range(i, 0, got.data(), sizes[i]).ok());
    EXPECT_TRUE(sizes[i] == 0 || std::memcmp(got.data(), want, sizes[i]) == 0) << i;
    if (sizes[i] > 10) {
      uint8_t mid[7];
      ASSERT_TRUE(r->read_range(i, sizes[i] / 2, mid, 7).ok());
      EXPECT_EQ(std::memcmp(mid, want + sizes[i] / 2, 7), 0);
    }
    uint8_t b;
    EXPECT_EQ(r->read_range(i, sizes[i], &b, 1).code(), Code::kInvalidArgument);
  }
  uint8_t b;
  EXPECT_EQ(r->read_range(99, 0, &b, 1).code(), Code::kInvalidArgument);
  EXPECT_EQ(r->checkpoint().storages[3].data, nullptr);  // nothing cached

  // The whole upload path on CPU: the reader's pieces through the ring into "device" memory.
  std::vector<uint32_t> indices{5, 3, 4, 0, 1, 2, 4};  // any order, duplicates allowed
  std::vector<std::pair<uint32_t, uint64_t>> order;
  std::vector<std::vector<uint8_t>> device;
  for (uint32_t k = 0; k < indices.size(); ++k) {
    order.emplace_back(k, sizes[indices[k]]);
    device.emplace_back(sizes[indices[k]]);
  }
  auto batches = plan_batches(order, 1 << 20);
  ReaderPieces pieces(*r, indices, batches);
  std::vector<uint8_t> ring_mem(3 << 20);
  Ring ring{ring_mem.data(), 1 << 20, 3};
  ThreadEngine engine(2, 3, std::chrono::microseconds(0));
  Status st = run_upload(
      batches, ring, engine, 4, [&](const Piece& p, void* dst) { return pieces.fill(p, dst); },
      [&](const Piece& p) { return device[p.storage].data() + p.offset; });
  ASSERT_TRUE(st.ok()) << st.message();
  for (uint32_t k = 0; k < indices.size(); ++k)
    EXPECT_TRUE(device[k].empty() ||
                std::memcmp(device[k].data(), c.storages[indices[k]].data, device[k].size()) == 0)
        << "storage " << indices[k] << " via " << format;
}

INSTANTIATE_TEST_SUITE_P(Plugins, ReaderFormats,
                         ::testing::Values("torch-zip", "torch-legacy", "torch-zip-zstd", "zstd"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace ckptio::cuda_detail
