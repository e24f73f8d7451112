#include "host/io/storage_loader.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "ckptio/plugin.h"
#include "host/io/fresh_page_fill.h"

namespace ckptio::host {
namespace {

constexpr uint64_t kChunk = 16u << 20;         // unit of parallel work
// Storages from this size get a mapping of their own (page-aligned), filled by userfaultfd
// copies where allowed; below it they come from malloc and their pages are zeroed on first
// touch. 1 MiB, not 4: a bf16 model's 2 MiB projections are a third of its bytes, and a
// perf profile of loading them showed the zeroing (clear_page_erms, do_anonymous_page)
// at 5% of the load, 0.7% with their own mappings.
constexpr uint64_t kHugeThreshold = 1u << 20;
constexpr uint64_t kAlign = 64;
constexpr uint64_t kSmallStorage = 64u << 10;  // below this, storages share an arena

struct Chunk {
  uint32_t index;
  uint64_t offset;  // within the storage
  uint64_t length;
};

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif

// Faults in a destination range in one system call rather than one fault per page;
// done by each reading thread for its own chunk, so it runs in parallel. Advisory: on older
// kernels (EINVAL) the copy simply faults the pages in.
void populate_for_write(uint8_t* p, uint64_t n) {
  const auto kPage = static_cast<uintptr_t>(page_size());
  if (n < (1u << 20)) return;
  uintptr_t start = (reinterpret_cast<uintptr_t>(p) + kPage - 1) & ~(kPage - 1);
  uintptr_t end = reinterpret_cast<uintptr_t>(p) + n;
  if (end > start) madvise(reinterpret_cast<void*>(start), end - start, MADV_POPULATE_WRITE);
}

}  // namespace

std::shared_ptr<uint8_t> allocate_storage(uint64_t nbytes) {
  if (nbytes >= kHugeThreshold) {
    // No MADV_HUGEPAGE: huge pages halve the fault cost once memory is warm, but where the
    // hypervisor reports free pages (as on the 2-core VMs this is measured on), a process's
    // first huge pages cost several times what 4 KiB pages do (bench/results/README-notes.md).
    // The reading threads fill the pages instead, in parallel: by userfaultfd
    // copies where allowed (fresh_page_fill.h), else chunk by chunk (populate_for_write).
    void* p = mmap(nullptr, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p),
                                    [nbytes](uint8_t* q) { munmap(q, nbytes); });
  }
  uint64_t rounded = std::max<uint64_t>(kAlign, (nbytes + kAlign - 1) / kAlign * kAlign);
  void* p = std::aligned_alloc(kAlign, rounded);
  if (!p) throw std::bad_alloc();
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [](uint8_t* q) { std::free(q); });
}

Status load_storages(const std::vector<StorageInfo>& storages,
                     const std::vector<StorageOrigin>& origins, const LoadOptions& options,
                     const std::function<Status(uint32_t, uint64_t, void*, uint64_t)>& read_plugin,
                     std::vector<StorageBytes>& out) {
  out.assign(storages.size(), StorageBytes{});
  auto file_offset = [&](uint32_t i) { return origins[i].file_offset; };
  std::vector<Chunk> chunks;
  uint64_t total = 0;
  // Small storages share one arena (64-byte aligned slices): a file of 20,000 tiny tensors
  // then costs one allocation, not 20,000 (allocation and freeing dominated per-tensor cost).
  const uint64_t alias_align = options.zero_copy_alignment;
  if (options.zero_copy && (alias_align == 0 || (alias_align & (alias_align - 1)) != 0))
    return Status(Code::kInvalidArgument, "zero_copy_alignment " + std::to_string(alias_align) +
                                              " is not a power of two");
  auto aliasable = [&](uint32_t i) {
    const StorageOrigin& o = origins[i];
    const uint64_t element = std::max<uint64_t>(1, uint64_t(dtype_size(storages[i].dtype)));
    return o.file_offset != CKPTIO_NOT_PLAIN && options.zero_copy && o.src->data() &&
           o.mapping_owner && o.file_offset % alias_align == 0 && o.file_offset % element == 0;
  };
  uint64_t arena_size = 0;
  for (uint32_t i = 0; i < storages.size(); ++i)
    if (storages[i].nbytes < kSmallStorage && !aliasable(i))
      arena_size += (storages[i].nbytes + kAlign - 1) / kAlign * kAlign;
  std::shared_ptr<uint8_t> arena = arena_size ? allocate_storage(arena_size) : nullptr;
  uint64_t arena_used = 0;
  for (uint32_t i = 0; i < storages.size(); ++i) {
    uint64_t n = storages[i].nbytes;
    uint64_t off = file_offset(i);
    bool plain = off != CKPTIO_NOT_PLAIN;
    const ByteSource& src = *origins[i].src;
    if (plain && (off > src.size() || n > src.size() - off))
      return Status(Code::kCorrupt,
                    src.name() + ": storage '" + storages[i].key + "' lies outside the file");
    if (aliasable(i)) {
      out[i] = StorageBytes{src.data() + off, n, origins[i].mapping_owner, true};
      continue;
    }
    if (n < kSmallStorage) {
      out[i] = StorageBytes{arena.get() + arena_used, n, arena, false};
      arena_used += (n + kAlign - 1) / kAlign * kAlign;
    } else {
      std::shared_ptr<uint8_t> buf = allocate_storage(n);
      out[i] = StorageBytes{buf.get(), n, buf, false};
    }
    // Non-plain storages go to the plugin whole; plain ones are split for parallel reads.
    uint64_t step = plain ? kChunk : std::max<uint64_t>(n, 1);
    for (uint64_t o = 0; o < n; o += step) chunks.push_back({i, o, std::min(step, n - o)});
    total += n;
  }
  if (chunks.empty()) return Status::Ok();

  // Plain storages with a mapping of their own are filled without the kernel zeroing their
  // pages first, where userfaultfd is allowed (fresh_page_fill.h).
  std::unique_ptr<FreshPageFiller> filler;
  std::vector<bool> adopted(storages.size(), false);
  for (uint32_t i = 0; i < storages.size(); ++i) {
    if (file_offset(i) == CKPTIO_NOT_PLAIN || out[i].mapped || storages[i].nbytes < kHugeThreshold)
      continue;
    if (!filler && !(filler = FreshPageFiller::open())) break;
    adopted[i] = filler->adopt(const_cast<uint8_t*>(out[i].data), storages[i].nbytes);
  }

  unsigned threads = options.threads > 0 ? static_cast<unsigned>(options.threads)
                                         : std::max(1u, std::thread::hardware_concurrency());
  threads = std::min<unsigned>(threads, static_cast<unsigned>(chunks.size()));
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> done{0};
  std::atomic<bool> failed{false};
  std::mutex err_mu;
  Status first_error;
  std::vector<size_t> refused;  // chunks userfaultfd did not fill
  // Reads a chunk into pages faulted in (and zeroed) by the kernel.
  auto read_faulting = [&](const Chunk& c) {
    auto* dst = const_cast<uint8_t*>(out[c.index].data) + c.offset;
    populate_for_write(dst, c.length);
    return file_offset(c.index) != CKPTIO_NOT_PLAIN
               ? origins[c.index].src->read_at(file_offset(c.index) + c.offset, dst, c.length)
               : read_plugin(c.index, c.offset, dst, c.length);
  };
  auto work = [&](bool reporter) {
    for (;;) {
      size_t k = next.fetch_add(1);
      if (k >= chunks.size() || failed.load()) return;
      const Chunk& c = chunks[k];
      Status st;
      if (adopted[c.index]) {
        uint64_t at = file_offset(c.index) + c.offset;
        const ByteSource& src = *origins[c.index].src;
        auto read = [&](uint64_t o, void* buf, uint64_t n) { return src.read_at(at + o, buf, n); };
        bool filled = false;
        st = filler->fill(const_cast<uint8_t*>(out[c.index].data) + c.offset, c.length, read,
                          filled);
        if (st.ok() && !filled) {  // the kernel refused: read it again once the filler is gone
          std::lock_guard<std::mutex> lock(err_mu);
          refused.push_back(k);
          continue;
        }
      } else {
        st = read_faulting(c);
      }
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(err_mu);
        if (first_error.ok()) first_error = st;
        failed = true;
        return;
      }
      uint64_t d = done.fetch_add(c.length) + c.length;
      if (reporter && options.progress) options.progress(d, total);
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work, false);
  work(true);
  for (auto& t : pool) t.join();
  filler.reset();  // every page is an ordinary page again
  if (!first_error.ok()) return first_error;
  for (size_t k : refused)
    if (Status st = read_faulting(chunks[k]); !st.ok()) return st;
  if (options.progress) options.progress(total, total);
  return Status::Ok();
}

}  // namespace ckptio::host
