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

LoadStateDictReport load_state_dict_into(
    const std::vector<std::pair<std::string, torch::Tensor>>& model,
    const std::string& module_class, const StateDict& state, const LoadStateDictOptions& options);

}  // namespace ckptio::detail
