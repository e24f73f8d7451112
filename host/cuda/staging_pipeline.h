// The overlapped transfer pipeline behind libckptio_cuda, with the copy engine injected so it
// can be tested without a GPU (a memcpy engine on threads in tests, CUDA streams and events in
// cuda_loader.cc).
//
// A transfer is a list of batches; each batch fits one slot of a staging ring (pinned memory
// in production) and holds pieces of one or more storages: small storages are packed together
// (one read-copy round trip for many tiny tensors), large ones are split across batches.
//
// Upload (file -> staging -> device): reader threads take batches in turn, wait until their
// slot's previous copy has finished, fill it (pread of plain bytes, or the plugin's decoding),
// and hand it to the issuing thread (the caller), which enqueues the copies on the lanes
// (streams) round robin, fences the slot and puts it back in the free list. So reading,
// copying and the next reads overlap, and memory is bounded by the ring.
//
// Download (device -> staging -> host): the caller enqueues copies into free slots and fences
// them; consumer threads wait for each fence, consume the slot (copy it out, or write it) and
// free it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "ckptio/ckptio.h"

namespace ckptio::cuda_detail {

// `n` bytes at `offset` within `storage`, staged at `slot_offset` in a slot.
struct Piece {
  uint32_t storage;
  uint64_t offset;
  uint64_t n;
  uint64_t slot_offset;
};

struct Batch {
  std::vector<Piece> pieces;
  uint64_t bytes = 0;  // end of the last piece in the slot
};

// Splits storages (index, size) into batches of at most `slot_bytes`; pieces start at
// 256-byte aligned slot offsets (DMA- and memcpy-friendly). Empty storages get no piece.
std::vector<Batch> plan_batches(const std::vector<std::pair<uint32_t, uint64_t>>& storages,
                                uint64_t slot_bytes);

// Moves bytes between staging slots and the other side (device memory), asynchronously.
// copy_async and fence are called from one thread at a time (the issuing thread); wait may be
// called concurrently from worker threads for different slots.
class CopyEngine {
 public:
  virtual ~CopyEngine() = default;
  virtual int lanes() const = 0;
  // Called once on each worker thread before it calls wait() (e.g. cudaSetDevice).
  virtual void thread_init() {}
  // Starts copying n bytes from src to dst on `lane`.
  virtual Status copy_async(int lane, void* dst, const void* src, uint64_t n) = 0;
  // The slot stays busy until everything enqueued on `lane` so far has completed.
  virtual Status fence(int lane, int slot) = 0;
  // Blocks until the slot's last fence has passed; returns at once if it was never fenced.
  virtual Status wait(int slot) = 0;
  // Blocks until every lane is idle.
  virtual Status drain() = 0;
};

struct Ring {
  uint8_t* base = nullptr;  // slots * slot_bytes bytes
  uint64_t slot_bytes = 0;
  int slots = 0;
  uint8_t* slot(int i) const { return base + static_cast<uint64_t>(i) * slot_bytes; }
};

// Fills `dst` with the piece's bytes (upload) ...
using FillFn = std::function<Status(const Piece& piece, void* dst)>;
// ... the device address a piece goes to or comes from ...
using DeviceAddrFn = std::function<void*(const Piece& piece)>;
// ... and takes a staged piece's bytes (download).
using DrainFn = std::function<Status(const Piece& piece, const void* staged)>;

// Runs an upload; `threads` readers. Progress (bytes issued, total) from the calling thread.
// On error, stops early, waits for what is in flight and returns the first error.
Status run_upload(const std::vector<Batch>& batches, const Ring& ring, CopyEngine& engine,
                  int threads, const FillFn& fill, const DeviceAddrFn& device_addr,
                  const ProgressFn& progress = nullptr);

// Runs a download; `threads` consumers.
Status run_download(const std::vector<Batch>& batches, const Ring& ring, CopyEngine& engine,
                    int threads, const DeviceAddrFn& device_addr, const DrainFn& drain,
                    const ProgressFn& progress = nullptr);

// Produces the pieces of storages `indices` of a Reader (Piece::storage is a position in
// `indices`). Plain storages are read range by range (a pread into the slot); a storage the
// plugin must decode and that spans several pieces is decoded once into host memory, served
// from there and freed after its last piece; one that fits a piece is decoded into the slot.
class ReaderPieces {
 public:
  ReaderPieces(Reader& reader, const std::vector<uint32_t>& indices,
               const std::vector<Batch>& batches);
  Status fill(const Piece& piece, void* dst);

 private:
  struct Decoded {
    std::mutex mu;
    std::shared_ptr<uint8_t> bytes;
    uint64_t remaining = 0;  // pieces not served yet
  };
  Reader& reader_;
  const std::vector<uint32_t>& indices_;
  std::unordered_map<uint32_t, std::unique_ptr<Decoded>> decoded_;  // by position
};

}  // namespace ckptio::cuda_detail
