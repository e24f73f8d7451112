// The torch adapter's door to libckptio_cuda: storages that map_location sends to a CUDA
// device are loaded file -> pinned ring -> device (ckptio/cuda.h) instead of being read into
// host memory and copied with Tensor::to(). Compiled to a no-op unless the build has
// libckptio_cuda (CKPTIO_HAVE_CUDA); at run time it acts only when LibTorch itself has CUDA,
// so the CPU-only build behaves exactly as before.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "ckptio/torch.h"
#include "host/torch/placement_plan.h"

namespace ckptio::torch_adapter {

// Loads the storages among `indices` that `placement` sends to a CUDA device straight to
// that device, adding them to `out` (as c10::Storage of LibTorch's CUDA allocator), and
// returns the indices left to read into host memory (CPU-bound ones, or all of them when the
// GPU path is unavailable). Throws ckptio::Error as PlacementPlan::device does.
std::vector<uint32_t> load_cuda_storages(Reader& reader, const std::vector<uint32_t>& indices,
                                         PlacementPlan& placement, const LoadOptions& base,
                                         std::unordered_map<uint32_t, c10::Storage>& out);

// Reads storage storages[k] straight into the CUDA memory of dst[k], a contiguous tensor of
// exactly that storage's bytes (a module's parameter, or a new buffer), device by device,
// after each device has finished the work queued on it: our copy streams do not wait for
// LibTorch's, and queued kernels may still read or write that memory. Returns when the
// bytes are on the devices. Only when cuda_path_available(); throws ckptio::Error.
void read_storages_into_cuda(Reader& reader, const std::vector<uint32_t>& storages,
                             const std::vector<torch::Tensor>& dst, const LoadOptions& base);

// Copies whole CUDA storages to host memory through libckptio_cuda's pinned ring (after their
// devices finish the work queued on them); dst[k] holds src[k].nbytes() bytes. Only when
// cuda_path_available(); throws ckptio::Error.
void copy_cuda_storages_to_host(const std::vector<c10::Storage>& src,
                                const std::vector<void*>& dst);

// Whether load_cuda_storages can move storages to CUDA devices in this process.
bool cuda_path_available();

}  // namespace ckptio::torch_adapter
