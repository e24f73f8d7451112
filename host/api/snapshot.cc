// snapshot() and save_async(): a consistent copy of a checkpoint's bytes, and saving it in
// the background while the caller keeps changing the original tensors.
#include <algorithm>
#include <cstring>
#include <future>
#include <thread>

#include "ckptio/ckptio.h"
#include "host/io/storage_loader.h"

namespace ckptio {

Checkpoint snapshot(const Checkpoint& ckpt) {
  Checkpoint out;
  out.tree = ckpt.tree;  // the tree is immutable once built; sharing it is safe
  out.path = ckpt.path;
  out.format = ckpt.format;
  out.plugin_path = ckpt.plugin_path;
  out.storages.resize(ckpt.storages.size());
  struct Job {
    size_t index;
    uint64_t offset, length;
  };
  std::vector<Job> jobs;
  constexpr uint64_t kChunk = 16u << 20;
  for (size_t i = 0; i < ckpt.storages.size(); ++i) {
    const StorageBytes& src = ckpt.storages[i];
    if (!src.data && src.size)
      throw Error(Code::kInvalidArgument, "snapshot: storage '" + ckpt.tree.storages[i].key +
                                              "' has no bytes loaded");
    auto buf = host::allocate_storage(src.size);
    out.storages[i] = StorageBytes{buf.get(), src.size, buf, false};
    for (uint64_t o = 0; o < src.size; o += kChunk)
      jobs.push_back({i, o, std::min(kChunk, src.size - o)});
  }
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t k; (k = next.fetch_add(1)) < jobs.size();) {
      const Job& j = jobs[k];
      std::memcpy(const_cast<uint8_t*>(out.storages[j.index].data) + j.offset,
                  ckpt.storages[j.index].data + j.offset, j.length);
    }
  };
  unsigned n = std::min<unsigned>(std::max(1u, std::thread::hardware_concurrency()),
                                  static_cast<unsigned>(std::max<size_t>(jobs.size(), 1)));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < n; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  return out;
}

std::future<void> save_async(const std::string& path, const Checkpoint& ckpt,
                             const SaveOptions& options) {
  // Snapshot now, on the caller's thread: once this returns the caller may change tensors.
  auto snap = std::make_shared<Checkpoint>(snapshot(ckpt));
  return std::async(std::launch::async, [path, snap, options] { save(path, *snap, options); });
}

}  // namespace ckptio
