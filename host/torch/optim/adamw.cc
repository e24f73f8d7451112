// torch::optim::AdamW <-> torch.optim.AdamW's state_dict.
#include <torch/optim/adamw.h>

#include "adam_family.h"

namespace ckptio::optim_codec {
namespace {

using Options = optim::AdamWOptions;
using State = optim::AdamWParamState;

void write_group(const optim::OptimizerOptions& options, const ValuePtr& d) {
  adam_family::write_group_head(static_cast<const Options&>(options), d);
  // 1.13's AdamW writes these three, in this order (not Adam's).
  put(d, "foreach", Value::none());
  put(d, "maximize", Value::boolean(false));
  put(d, "capturable", Value::boolean(false));
}

void read_group(optim::OptimizerOptions& options, const GroupReader& g) {
  adam_family::read_group<Options>(options, g, /*decoupled=*/true, "AdamW");
}

}  // namespace

const Codec kAdamW = {"AdamW",
                      "betas",
                      is_a<optim::AdamW>,
                      write_group,
                      adam_family::write_state<State>,
                      read_group,
                      adam_family::read_state<Options, State>,
                      nullptr};

}  // namespace ckptio::optim_codec
