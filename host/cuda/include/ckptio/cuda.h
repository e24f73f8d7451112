// libckptio_cuda: the GPU data path, written against the CUDA runtime (no LibTorch, no .cu
// kernels). Storages go from the file straight to device memory through a bounded ring of
// pinned staging buffers, and back:
//
//   load:  file --pread / plugin decode--> pinned slot --cudaMemcpyAsync--> device
//   save:  device --cudaMemcpyAsync--> pinned slot --memcpy--> host Checkpoint --> ckptio::save
//
// Reader threads fill slots while earlier slots are being copied on several streams; a slot is
// reused once the event recorded after its copy has passed. There are no pageable-memory
// cudaMemcpy calls and no whole-file host copy: host memory in flight is the ring (plus, for a
// storage the plugin must decode, that one storage decoded).
//
// Ownership: DeviceStorage::owner frees the device memory (cudaFree) when the last copy of it
// goes. Pinned rings are cached process-wide after first use (allocating pinned memory costs
// far more than a fast load); release_staging_buffers() frees the idle ones.
//
// Saving: host_checkpoint_from_device() copies device storages into host buffers through the
// ring (the device-to-host copy of one chunk overlaps the host copy of the previous ones) and
// returns a Checkpoint that any plugin can write with ckptio::save. We chose this over a
// streaming sink because the plugin contract hands storages to plugins as bytes in memory; the
// device-to-host step runs at PCIe speed, many times faster than writing the file, so the
// overlap that matters (copy vs. write) is small next to the write itself. See README.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ckptio/ckptio.h"

namespace ckptio::cuda {

// Device memory holding one storage's bytes.
struct DeviceStorage {
  void* ptr = nullptr;
  uint64_t size = 0;
  int device = 0;
  std::shared_ptr<void> owner;  // keeps the memory alive; null for memory the caller owns
};

struct CudaLoadOptions {
  uint64_t ring_bytes = 256ull << 20;  // pinned staging memory in flight (slots * chunk)
  uint64_t chunk = 16ull << 20;        // one slot; small storages are packed into one
  int streams = 4;                     // copy streams, used round robin
  int threads = 0;                     // reader threads; 0: one per core, at most 16
  ProgressFn progress;                 // (bytes issued to the device, total)
};

struct CudaSaveOptions {
  uint64_t ring_bytes = 128ull << 20;
  uint64_t chunk = 8ull << 20;
  int streams = 2;
  int threads = 0;  // threads copying out of the ring; 0: one per core, at most 16
};

// True when a CUDA device can be used; otherwise false and, if `why` is set, the reason
// ("no CUDA-capable device is detected", "CUDA driver version is insufficient ...").
CKPTIO_API bool cuda_device_available(std::string* why = nullptr);
CKPTIO_API int device_count();    // 0 when no device is usable
CKPTIO_API int current_device();  // cudaGetDevice

// Loads storages `indices` of an open Reader to `device`, in one device allocation (each
// storage 256-byte aligned; the allocation is freed when every returned owner is gone).
// Returns one DeviceStorage per index, in order. Throws ckptio::Error naming the file.
CKPTIO_API std::vector<DeviceStorage> load_to_device(Reader& reader, const std::vector<uint32_t>& indices,
                                          int device, const CudaLoadOptions& options = {});

// The same into device memory the caller allocated: dst[k] must hold the bytes of storage
// indices[k] on `device` and not be in use by other streams meanwhile. Returns when the bytes
// are on the device.
CKPTIO_API void load_into_device(Reader& reader, const std::vector<uint32_t>& indices,
                      const std::vector<void*>& dst, int device,
                      const CudaLoadOptions& options = {});

// Copies each storage to host memory through the pinned ring and returns a Checkpoint with
// `tree` and those bytes; storages[i] belongs to tree.storages[i] (sizes must match). A
// DeviceStorage with a null ptr and size 0 is an empty storage.
CKPTIO_API Checkpoint host_checkpoint_from_device(const Tree& tree, const std::vector<DeviceStorage>& storages,
                                       const CudaSaveOptions& options = {});

// Copies each device storage to host memory through the pinned ring: storages[k].size bytes
// into dst[k], after each device involved has finished the work queued on it (our streams do
// not wait for others). Storages of size 0 are skipped.
CKPTIO_API void copy_to_host(const std::vector<DeviceStorage>& storages, const std::vector<void*>& dst,
                  const CudaSaveOptions& options = {});

// host_checkpoint_from_device, then ckptio::save (atomic replace).
CKPTIO_API void save_from_device(const std::string& path, const Tree& tree,
                      const std::vector<DeviceStorage>& storages, const SaveOptions& options = {},
                      const CudaSaveOptions& cuda_options = {});

// Frees cached pinned staging rings that no transfer is using.
CKPTIO_API void release_staging_buffers();

}  // namespace ckptio::cuda
