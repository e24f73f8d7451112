#include "host/torch/placement_plan.h"

#include <utility>

namespace ckptio::torch_adapter {

PlacementPlan::PlacementPlan(MapLocation map, const std::vector<StorageInfo>& storages,
                             std::string path)
    : map_(std::move(map)),
      storages_(&storages),
      path_(std::move(path)),
      devices_(storages.size()) {}

void PlacementPlan::resolve(const std::vector<uint32_t>& indices) {
  for (uint32_t i : indices) device(i);
}

torch::Device PlacementPlan::device(uint32_t index) {
  if (!storages_ || index >= devices_.size())
    throw Error(Code::kInternal, path_ + ": no storage #" + std::to_string(index) + " to place");
  if (devices_[index]) return *devices_[index];
  const StorageInfo& info = (*storages_)[index];
  const std::string where = path_ + ": storage '" + info.key + "'";
  try {
    devices_[index] = map_.resolve(info.device);
  } catch (const Error& e) {
    throw Error(e.code(), where + ": " + e.what());
  } catch (const std::exception& e) {
    // Only a user callback throws anything but ckptio::Error here; say whose error it is.
    throw Error(Code::kInvalidArgument, where + " (saved on '" + info.device +
                                            "'): the map_location callback failed: " + e.what());
  }
  return *devices_[index];
}

}  // namespace ckptio::torch_adapter
