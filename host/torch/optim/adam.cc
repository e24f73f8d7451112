// torch::optim::Adam <-> torch.optim.Adam's state_dict.
#include <torch/optim/adam.h>

#include "adam_family.h"

namespace ckptio::optim_codec {
namespace {

using Options = optim::AdamOptions;
using State = optim::AdamParamState;

void write_group(const optim::OptimizerOptions& options, const ValuePtr& d) {
  adam_family::write_group_head(static_cast<const Options&>(options), d);
  put(d, "maximize", Value::boolean(false));
  put(d, "foreach", Value::none());
  put(d, "capturable", Value::boolean(false));
  put(d, "differentiable", Value::boolean(false));
  put(d, "fused", Value::boolean(false));
}

void read_group(optim::OptimizerOptions& options, const GroupReader& g) {
  adam_family::read_group<Options>(options, g, /*decoupled=*/false, "Adam");
}

}  // namespace

const Codec kAdam = {"Adam",
                     "betas",
                     is_a<optim::Adam>,
                     write_group,
                     adam_family::write_state<State>,
                     read_group,
                     adam_family::read_state<Options, State>,
                     nullptr};

}  // namespace ckptio::optim_codec
