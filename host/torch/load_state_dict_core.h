// Private to libckptio_torch: the load_state_dict core shared by torch::nn::Module
// (load_state_dict.cc) and torch::jit::Module (script_module.cc). `model` lists the module's
// parameters and buffers as (dotted name, tensor) in state_dict order; `module_class` names
// the module in PyTorch's "Error(s) in loading state_dict for <class>" message.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ckptio/torch.h"

namespace ckptio::detail {

// One tensor to load: `src` is state[state_index] (after PyTorch's 0-dim rule), `key` the
// module's name for it.
struct PlannedCopy {
  torch::Tensor dst, src;
  size_t state_index;
  std::string key;
};

// Matches `state` against `model` under `options` (prefix and rename rules, shapes, dtype
// policy) and fills `plan`; strict: throws the PyTorch-worded error before anything is copied.
LoadStateDictReport plan_state_dict_load(
    const std::vector<std::pair<std::string, torch::Tensor>>& model,
    const std::string& module_class, const StateDict& state, const LoadStateDictOptions& options,
    std::vector<PlannedCopy>& plan);
// copy_ (or, with assign, set_) one planned tensor, without autograd. What LibTorch refuses
// (a module made under InferenceMode, a cast without a kernel) is thrown as ckptio::Error
// naming the key.
void apply_planned_copy(const PlannedCopy& c, bool assign);

// plan_state_dict_load + apply_planned_copy for each.
LoadStateDictReport load_state_dict_into(
    const std::vector<std::pair<std::string, torch::Tensor>>& model,
    const std::string& module_class, const StateDict& state, const LoadStateDictOptions& options);

// load_state_dict straight from a checkpoint file (see ckptio::load_state_dict(Module&, path)).
LoadStateDictReport load_state_dict_from_file(
    const std::vector<std::pair<std::string, torch::Tensor>>& model,
    const std::string& module_class, const std::string& path, const StateDictFileOptions& options);

}  // namespace ckptio::detail
