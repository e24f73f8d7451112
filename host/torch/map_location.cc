#include <torch/cuda.h>

#include "ckptio/torch.h"

namespace ckptio {
namespace {

// "cpu", "cuda", "cuda:1", "meta"; refuses what torch::Device cannot parse.
torch::Device parse_device(const std::string& tag) {
  try {
    return torch::Device(tag);
  } catch (const std::exception&) {
    throw Error(Code::kUnsupported, "don't know how to restore data saved on device '" + tag +
                                        "'; map it with map_location (e.g. \"cpu\")");
  }
}

void check_usable(const torch::Device& d, const std::string& saved_tag) {
  if (d.is_cuda()) {
    if (!torch::cuda::is_available())
      throw Error(Code::kUnsupported,
                  "storage saved on '" + saved_tag + "' needs CUDA (device '" + d.str() +
                      "'), but CUDA is not available here; load with map_location \"cpu\" "
                      "(TorchLoadOptions::map_location) to map it to the CPU");
    int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    if (d.has_index() && d.index() >= count)
      throw Error(Code::kUnsupported,
                  "storage saved on '" + saved_tag + "' maps to " + d.str() + ", but only " +
                      std::to_string(count) +
                      " CUDA device(s) exist; remap it with map_location (e.g. {\"" +
                      saved_tag + "\": \"cuda:0\"})");
  }
}

}  // namespace

MapLocation::MapLocation(const std::string& device) : target_(device) {
  parse_device(device);  // validate early
}
MapLocation::MapLocation(torch::Device device) : target_(device.str()) {}

MapLocation MapLocation::remap(std::map<std::string, std::string> table) {
  MapLocation m;
  m.table_ = std::move(table);
  return m;
}

MapLocation MapLocation::callback(
    std::function<std::optional<torch::Device>(const std::string&)> fn) {
  MapLocation m;
  m.fn_ = std::move(fn);
  return m;
}

torch::Device MapLocation::resolve(const std::string& saved_tag) const {
  std::string tag = saved_tag;
  if (target_) {
    tag = *target_;
  } else if (!table_.empty()) {
    auto it = table_.find(saved_tag);
    if (it != table_.end()) tag = it->second;
  } else if (fn_) {
    if (auto d = fn_(saved_tag)) {
      check_usable(*d, saved_tag);
      return *d;
    }
  }
  torch::Device d = parse_device(tag);
  check_usable(d, saved_tag);
  return d;
}

}  // namespace ckptio
