// Private to libckptio_torch: what a TorchCheckpoint holds, shared by torch_checkpoint.cc
// (loading) and load_state_dict_file.cc (reading a state_dict straight into a module).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ckptio/torch.h"
#include "host/torch/placement_plan.h"

namespace ckptio {

// The dotted path of `name` under `prefix` ("" at the root), as state_dict keys are named.
inline std::string dotted_path(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

struct TorchCheckpoint::Impl {
  std::unique_ptr<Reader> reader;
  TorchLoadOptions options;
  torch_adapter::PlacementPlan placement;                   // each storage's device, once
  std::mutex mu;                                            // guards storages and tensors
  std::unordered_map<uint32_t, c10::Storage> storages;      // per (storage, device)
  std::unordered_map<const Value*, torch::Tensor> tensors;  // materialized nodes
  std::unordered_set<const Value*> selected;                // tensors the filter keeps
  bool filtered = false;

  // Whether options' filter (glob and/or callback) keeps the tensor at `path`.
  bool keep(const std::string& path) const;
  // The storage (read on first use, on its placement device). Caller holds mu.
  c10::Storage storage(uint32_t index);
  // The tensor for a tensor node (reads its storage if needed). Caller holds mu.
  torch::Tensor materialize(const ValuePtr& node);
  // Every tensor under `root` as (dotted path relative to root, node), in tree order; tied
  // tensors appear under each of their names, as in a state_dict.
  std::vector<std::pair<std::string, ValuePtr>> entries(const ValuePtr& root) const;
};

}  // namespace ckptio
