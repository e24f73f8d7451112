#include "cuda_bridge.h"

#include <torch/cuda.h>

#include <map>
#include <unordered_set>

#ifdef CKPTIO_HAVE_CUDA
#include "ckptio/cuda.h"
#endif

namespace ckptio::torch_adapter {

bool cuda_path_available() {
#ifdef CKPTIO_HAVE_CUDA
  static const bool available = torch::cuda::is_available() && cuda::cuda_device_available();
  return available;
#else
  return false;
#endif
}

std::vector<uint32_t> load_cuda_storages(Reader& reader, const std::vector<uint32_t>& indices,
                                         PlacementPlan& placement, const LoadOptions& base,
                                         std::unordered_map<uint32_t, c10::Storage>& out) {
#ifndef CKPTIO_HAVE_CUDA
  (void)reader, (void)placement, (void)base, (void)out;
  return indices;
#else
  if (indices.empty() || !cuda_path_available()) return indices;
  std::vector<uint32_t> host, to_device;
  std::vector<torch::Tensor> bufs;
  std::unordered_set<uint32_t> seen;
  const auto& infos = reader.tree().storages;
  for (uint32_t i : indices) {
    if (out.count(i)) continue;
    torch::Device d = placement.device(i);
    if (!d.is_cuda()) {
      host.push_back(i);
      continue;
    }
    if (!seen.insert(i).second) continue;
    int dev = d.has_index() ? d.index() : cuda::current_device();
    // Destinations come from LibTorch's caching allocator, so the tensors free and account
    // like any other (a recycled block's queued work is waited for before it is written).
    auto opts = torch::TensorOptions().dtype(torch::kUInt8).device(torch::kCUDA, dev);
    bufs.push_back(torch::empty({static_cast<int64_t>(infos[i].nbytes)}, opts));
    to_device.push_back(i);
  }
  read_storages_into_cuda(reader, to_device, bufs, base);
  for (size_t k = 0; k < to_device.size(); ++k) out.emplace(to_device[k], bufs[k].storage());
  return host;
#endif
}

void read_storages_into_cuda(Reader& reader, const std::vector<uint32_t>& storages,
                             const std::vector<torch::Tensor>& dst, const LoadOptions& base) {
#ifndef CKPTIO_HAVE_CUDA
  (void)storages, (void)dst, (void)base;
  throw Error(Code::kInternal, reader.path() + ": this build has no GPU data path");
#else
  struct DeviceWork {
    std::vector<uint32_t> storages;
    std::vector<void*> dst;
  };
  std::map<int, DeviceWork> by_device;
  for (size_t k = 0; k < storages.size(); ++k) {
    DeviceWork& w = by_device[dst[k].device().index()];
    w.storages.push_back(storages[k]);
    w.dst.push_back(dst[k].data_ptr());
  }
  for (const auto& [dev, work] : by_device) {
    try {
      torch::cuda::synchronize(dev);
    } catch (const c10::Error& e) {
      throw Error(Code::kIo, reader.path() + ": waiting for cuda:" + std::to_string(dev) +
                                 " before loading into it failed: " + e.what_without_backtrace());
    }
    cuda::CudaLoadOptions copts;
    copts.threads = base.threads;
    copts.progress = base.progress;
    cuda::load_into_device(reader, work.storages, work.dst, dev, copts);
  }
#endif
}

void copy_cuda_storages_to_host(const std::vector<c10::Storage>& src,
                                const std::vector<void*>& dst) {
#ifndef CKPTIO_HAVE_CUDA
  (void)src, (void)dst;
  throw Error(Code::kInternal, "this build has no GPU data path");
#else
  std::vector<cuda::DeviceStorage> on_device(src.size());
  for (size_t k = 0; k < src.size(); ++k) {
    on_device[k].ptr = const_cast<void*>(src[k].data());
    on_device[k].size = src[k].nbytes();
    on_device[k].device = src[k].device().index();
  }
  cuda::copy_to_host(on_device, dst);
#endif
}

}  // namespace ckptio::torch_adapter
