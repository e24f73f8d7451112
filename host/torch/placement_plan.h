// Private to libckptio_torch: where each storage of one file goes. map_location is resolved
// here and nowhere else, once per storage and load, so a user callback runs once per storage
// (as torch.load calls it) however many paths ask: CPU materialization, the CUDA staging of
// cuda_bridge, load_state_dict_file's choice between reading in place and staging, and
// TorchScript's one-device check.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ckptio/torch.h"

namespace ckptio::torch_adapter {

class PlacementPlan {
 public:
  PlacementPlan() = default;
  // `storages` (the file's storage table) must outlive the plan; `path` names the file in
  // messages.
  PlacementPlan(MapLocation map, const std::vector<StorageInfo>& storages, std::string path);

  // Resolves these storages now, in this order, so that an unusable mapping fails the load
  // before anything is read.
  void resolve(const std::vector<uint32_t>& indices);
  // The device of storage `index`, resolved on first use (a lazy or filtered-out tensor asked
  // for later). Throws ckptio::Error naming the file, the storage's key and its saved tag.
  // Not thread-safe: callers serialize (TorchCheckpoint::Impl::mu, or a single thread).
  torch::Device device(uint32_t index);

 private:
  MapLocation map_;
  const std::vector<StorageInfo>* storages_ = nullptr;
  std::string path_;
  std::vector<std::optional<torch::Device>> devices_;  // by storage index, once resolved
};

}  // namespace ckptio::torch_adapter
