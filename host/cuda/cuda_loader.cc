// The CUDA side of libckptio_cuda: streams and events as the pipeline's copy engine, cached
// pinned rings, device allocation, and the load/save entry points of ckptio/cuda.h.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "ckptio/cuda.h"
#include "host/cuda/staging_pipeline.h"
#include "host/io/storage_loader.h"

namespace ckptio::cuda {
namespace {

using cuda_detail::Batch;
using cuda_detail::Piece;
using cuda_detail::Ring;

constexpr uint64_t kDeviceAlign = 256;

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

Status cuda_status(cudaError_t err, const std::string& what) {
  if (err == cudaSuccess) return Status::Ok();
  return Status(Code::kIo,
                what + " failed: " + cudaGetErrorString(err) + " (" + cudaGetErrorName(err) + ")");
}

[[noreturn]] void fail(const Status& st) { throw Error(st); }
void check(cudaError_t err, const std::string& what) {
  if (err != cudaSuccess) fail(cuda_status(err, what));
}

// Restores the caller's current device.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    if (cudaGetDevice(&saved_) != cudaSuccess) saved_ = -1;
    check(cudaSetDevice(device), "cudaSetDevice(" + std::to_string(device) + ")");
  }
  ~DeviceGuard() {
    if (saved_ >= 0) cudaSetDevice(saved_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int saved_ = -1;
};

// Streams (lanes) and one event per slot, on one device.
class CudaEngine final : public cuda_detail::CopyEngine {
 public:
  CudaEngine(int device, int lanes, int slots) : device_(device) {
    streams_.assign(std::max(1, lanes), nullptr);
    events_.assign(slots, nullptr);
    for (auto& s : streams_)
      check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
    for (auto& e : events_)
      check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
  }
  ~CudaEngine() override {
    for (auto s : streams_)
      if (s) cudaStreamDestroy(s);
    for (auto e : events_)
      if (e) cudaEventDestroy(e);
  }
  int lanes() const override { return static_cast<int>(streams_.size()); }
  void thread_init() override { cudaSetDevice(device_); }
  Status copy_async(int lane, void* dst, const void* src, uint64_t n) override {
    return cuda_status(cudaMemcpyAsync(dst, src, n, cudaMemcpyDefault, streams_[lane]),
                       "cudaMemcpyAsync of " + std::to_string(n) + " bytes");
  }
  Status fence(int lane, int slot) override {
    return cuda_status(cudaEventRecord(events_[slot], streams_[lane]), "cudaEventRecord");
  }
  Status wait(int slot) override {
    return cuda_status(cudaEventSynchronize(events_[slot]), "cudaEventSynchronize");
  }
  Status drain() override {
    Status first;
    for (auto s : streams_) {
      Status st = cuda_status(cudaStreamSynchronize(s), "cudaStreamSynchronize");
      if (first.ok() && !st.ok()) first = st;
    }
    return first;
  }

 private:
  int device_;
  std::vector<cudaStream_t> streams_;
  std::vector<cudaEvent_t> events_;
};

// Pinned rings, kept after use: cudaHostAlloc of 256 MiB takes tens of milliseconds, as long
// as loading a gigabyte. A transfer leases a ring; concurrent transfers get their own.
class RingCache {
 public:
  static RingCache& get() {
    static RingCache* cache = new RingCache;  // never destroyed: no cudaFreeHost at exit
    return *cache;
  }
  std::shared_ptr<uint8_t> lease(uint64_t bytes) {
    uint8_t* p = nullptr;
    uint64_t have = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto best = idle_.end();
      for (auto it = idle_.begin(); it != idle_.end(); ++it)
        if (it->second >= bytes && (best == idle_.end() || it->second < best->second)) best = it;
      if (best != idle_.end()) {
        p = best->first;
        have = best->second;
        idle_.erase(best);
      }
    }
    if (!p) {
      void* raw = nullptr;
      check(cudaHostAlloc(&raw, bytes, cudaHostAllocPortable),
            "cudaHostAlloc of " + std::to_string(bytes) + " pinned staging bytes");
      p = static_cast<uint8_t*>(raw);
      have = bytes;
    }
    return std::shared_ptr<uint8_t>(p, [this, have](uint8_t* q) {
      std::lock_guard<std::mutex> lock(mu_);
      idle_.emplace_back(q, have);
    });
  }
  void release_idle() {
    std::vector<std::pair<uint8_t*, uint64_t>> idle;
    {
      std::lock_guard<std::mutex> lock(mu_);
      idle.swap(idle_);
    }
    for (auto& [p, n] : idle) cudaFreeHost(p);
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<uint8_t*, uint64_t>> idle_;
};

struct LeasedRing {
  std::shared_ptr<uint8_t> memory;
  Ring ring;
};

// A ring no larger than the transfer needs.
LeasedRing lease_ring(const std::vector<Batch>& batches, uint64_t ring_bytes, uint64_t chunk) {
  uint64_t slot_bytes = 0;
  for (const Batch& b : batches) slot_bytes = std::max(slot_bytes, b.bytes);
  slot_bytes = align_up(std::max<uint64_t>(slot_bytes, 1), kDeviceAlign);
  uint64_t slots = std::max<uint64_t>(2, ring_bytes / std::max<uint64_t>(chunk, 1));
  slots = std::min<uint64_t>(slots, batches.size());
  LeasedRing r;
  r.memory = RingCache::get().lease(slots * slot_bytes);
  r.ring = Ring{r.memory.get(), slot_bytes, static_cast<int>(slots)};
  return r;
}

uint64_t clamp_chunk(uint64_t chunk) {
  return std::max<uint64_t>(align_up(chunk, kDeviceAlign), 64 * 1024);
}

}  // namespace

bool cuda_device_available(std::string* why) {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    if (why) *why = std::string("CUDA unavailable: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return false;
  }
  if (n == 0) {
    if (why) *why = "no CUDA device found";
    return false;
  }
  return true;
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

int current_device() {
  int d = 0;
  check(cudaGetDevice(&d), "cudaGetDevice");
  return d;
}

void load_into_device(Reader& reader, const std::vector<uint32_t>& indices,
                      const std::vector<void*>& dst, int device, const CudaLoadOptions& options) {
  if (dst.size() != indices.size())
    fail(Status(Code::kInvalidArgument, reader.path() + ": " + std::to_string(indices.size()) +
                                            " storages but " + std::to_string(dst.size()) +
                                            " destinations"));
  const auto& infos = reader.tree().storages;
  std::vector<std::pair<uint32_t, uint64_t>> sizes;
  sizes.reserve(indices.size());
  for (size_t k = 0; k < indices.size(); ++k) {
    if (indices[k] >= infos.size())
      fail(Status(Code::kInvalidArgument,
                  reader.path() + ": no storage #" + std::to_string(indices[k])));
    if (infos[indices[k]].nbytes && !dst[k])
      fail(Status(Code::kInvalidArgument,
                  reader.path() + ": no destination for storage '" + infos[indices[k]].key + "'"));
    sizes.emplace_back(static_cast<uint32_t>(k), infos[indices[k]].nbytes);
  }
  uint64_t chunk = clamp_chunk(options.chunk);
  std::vector<Batch> batches = cuda_detail::plan_batches(sizes, chunk);
  if (batches.empty()) return;

  DeviceGuard guard(device);
  LeasedRing ring = lease_ring(batches, options.ring_bytes, chunk);
  CudaEngine engine(device, options.streams, ring.ring.slots);
  cuda_detail::ReaderPieces source(reader, indices, batches);
  Status st = cuda_detail::run_upload(
      batches, ring.ring, engine, options.threads,
      [&](const Piece& p, void* slot) { return source.fill(p, slot); },
      [&](const Piece& p) { return static_cast<uint8_t*>(dst[p.storage]) + p.offset; },
      options.progress);
  if (!st.ok())
    fail(st.message().rfind(reader.path(), 0) == 0 ? st : st.with_context(reader.path()));
}

std::vector<DeviceStorage> load_to_device(Reader& reader, const std::vector<uint32_t>& indices,
                                          int device, const CudaLoadOptions& options) {
  const auto& infos = reader.tree().storages;
  std::vector<uint64_t> offsets(indices.size());
  uint64_t total = 0;
  for (size_t k = 0; k < indices.size(); ++k) {
    if (indices[k] >= infos.size())
      fail(Status(Code::kInvalidArgument,
                  reader.path() + ": no storage #" + std::to_string(indices[k])));
    offsets[k] = total;
    total += align_up(infos[indices[k]].nbytes, kDeviceAlign);
  }
  std::vector<DeviceStorage> out(indices.size());
  for (size_t k = 0; k < indices.size(); ++k) {
    out[k].size = infos[indices[k]].nbytes;
    out[k].device = device;
  }
  if (total == 0) return out;
  std::shared_ptr<void> arena;
  {
    DeviceGuard guard(device);
    void* p = nullptr;
    check(cudaMalloc(&p, total), reader.path() + ": cudaMalloc of " + std::to_string(total) +
                                     " bytes on cuda:" + std::to_string(device));
    arena = std::shared_ptr<void>(p, [device](void* q) {
      int saved = -1;
      cudaGetDevice(&saved);
      cudaSetDevice(device);
      cudaFree(q);
      if (saved >= 0) cudaSetDevice(saved);
    });
  }
  std::vector<void*> dst(indices.size());
  for (size_t k = 0; k < indices.size(); ++k) {
    dst[k] = static_cast<uint8_t*>(arena.get()) + offsets[k];
    out[k].ptr = dst[k];
    out[k].owner = arena;
  }
  load_into_device(reader, indices, dst, device, options);
  return out;
}

void copy_to_host(const std::vector<DeviceStorage>& storages, const std::vector<void*>& dst,
                  const CudaSaveOptions& options) {
  if (dst.size() != storages.size())
    fail(Status(Code::kInvalidArgument, std::to_string(storages.size()) + " device storages but " +
                                            std::to_string(dst.size()) + " host destinations"));
  std::unordered_map<int, std::vector<std::pair<uint32_t, uint64_t>>> by_device;
  for (uint32_t i = 0; i < storages.size(); ++i) {
    const DeviceStorage& d = storages[i];
    if (d.size == 0) continue;
    if (!d.ptr || !dst[i])
      fail(Status(Code::kInvalidArgument, "device storage #" + std::to_string(i) + " of " +
                                              std::to_string(d.size) + " bytes has no " +
                                              (d.ptr ? "host destination" : "device memory")));
    by_device[d.device].emplace_back(i, d.size);
  }
  uint64_t chunk = clamp_chunk(options.chunk);
  for (auto& [device, sizes] : by_device) {
    std::vector<Batch> batches = cuda_detail::plan_batches(sizes, chunk);
    DeviceGuard guard(device);
    // Our streams do not wait for the legacy default stream or LibTorch's: let the writers of
    // these storages finish first.
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize on cuda:" + std::to_string(device));
    LeasedRing ring = lease_ring(batches, options.ring_bytes, chunk);
    CudaEngine engine(device, options.streams, ring.ring.slots);
    Status st = cuda_detail::run_download(
        batches, ring.ring, engine, options.threads,
        [&](const Piece& p) { return static_cast<uint8_t*>(storages[p.storage].ptr) + p.offset; },
        [&](const Piece& p, const void* staged) {
          std::memcpy(static_cast<uint8_t*>(dst[p.storage]) + p.offset, staged, p.n);
          return Status::Ok();
        });
    if (!st.ok()) fail(st);
  }
}

Checkpoint host_checkpoint_from_device(const Tree& tree, const std::vector<DeviceStorage>& storages,
                                       const CudaSaveOptions& options) {
  if (storages.size() != tree.storages.size())
    fail(Status(Code::kInvalidArgument, "checkpoint has " + std::to_string(tree.storages.size()) +
                                            " storages but device bytes for " +
                                            std::to_string(storages.size())));
  Checkpoint out;
  out.tree = tree;
  out.storages.resize(storages.size());
  std::vector<void*> dst(storages.size(), nullptr);
  for (uint32_t i = 0; i < storages.size(); ++i) {
    const DeviceStorage& d = storages[i];
    if (d.size != tree.storages[i].nbytes)
      fail(Status(Code::kInvalidArgument, "storage '" + tree.storages[i].key + "' has " +
                                              std::to_string(tree.storages[i].nbytes) +
                                              " bytes but its device memory " +
                                              std::to_string(d.size)));
    if (d.size == 0) continue;
    if (!d.ptr)
      fail(Status(Code::kInvalidArgument,
                  "storage '" + tree.storages[i].key + "' has no device memory"));
    std::shared_ptr<uint8_t> buf = host::allocate_storage(d.size);
    out.storages[i] = StorageBytes{buf.get(), d.size, buf, false};
    dst[i] = buf.get();
  }
  copy_to_host(storages, dst, options);
  return out;
}

void save_from_device(const std::string& path, const Tree& tree,
                      const std::vector<DeviceStorage>& storages, const SaveOptions& options,
                      const CudaSaveOptions& cuda_options) {
  Checkpoint host = host_checkpoint_from_device(tree, storages, cuda_options);
  ckptio::save(path, host, options);
}

void release_staging_buffers() { RingCache::get().release_idle(); }

}  // namespace ckptio::cuda
