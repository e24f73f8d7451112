// A module whose parameters mirror a state_dict's keys ("layers.0.attn.q.weight" becomes
// submodules layers -> 0 -> attn -> q with a parameter "weight"), initialized with copies of
// the state_dict's tensors (on their devices). The benches load checkpoints into it as into an
// application's existing model.
#pragma once

#include <torch/nn/module.h>

#include <memory>
#include <string>

#include "ckptio/torch.h"

namespace ckptio_bench {

inline std::shared_ptr<torch::nn::Module> mirror_module(const ckptio::StateDict& sd) {
  auto root = std::make_shared<torch::nn::Module>();
  for (const auto& item : sd) {
    torch::nn::Module* m = root.get();
    std::string key = item.key();
    for (size_t dot; (dot = key.find('.')) != std::string::npos; key = key.substr(dot + 1)) {
      std::string name = key.substr(0, dot);
      auto children = m->named_children();
      if (!children.contains(name)) m->register_module(name, std::make_shared<torch::nn::Module>());
      m = m->named_children()[name].get();
    }
    m->register_parameter(key, item.value().clone());
  }
  return root;
}

}  // namespace ckptio_bench
