// torch::optim::SGD <-> torch.optim.SGD's state_dict.
#include <torch/optim/sgd.h>

#include "optimizer_codec.h"

namespace ckptio::optim_codec {
namespace {

using Options = optim::SGDOptions;
using State = optim::SGDParamState;

void write_group(const optim::OptimizerOptions& options, const ValuePtr& d) {
  const auto& o = static_cast<const Options&>(options);
  put(d, "lr", num(o.lr()));
  put(d, "momentum", num(o.momentum()));
  put(d, "dampening", num(o.dampening()));
  put(d, "weight_decay", num(o.weight_decay()));
  put(d, "nesterov", Value::boolean(o.nesterov()));
  put(d, "maximize", Value::boolean(false));
  put(d, "foreach", Value::none());
  put(d, "differentiable", Value::boolean(false));
}

void write_state(const optim::OptimizerParamState& state, const StateWriter& w) {
  const auto& st = static_cast<const State&>(state);
  // Python writes the key even before its first step with momentum, as None.
  put(w.state, "momentum_buffer",
      st.momentum_buffer().defined() ? w.tensor_value(st.momentum_buffer()) : Value::none());
}

void read_group(optim::OptimizerOptions& options, const GroupReader& g) {
  auto& o = static_cast<Options&>(options);
  g.number("lr", [&](double x) { o.lr(x); });
  g.number("momentum", [&](double x) { o.momentum(x); });
  g.number("dampening", [&](double x) { o.dampening(x); });
  g.number("weight_decay", [&](double x) { o.weight_decay(x); });
  g.boolean("nesterov", [&](bool x) { o.nesterov(x); });
}

std::unique_ptr<optim::OptimizerParamState> read_state(const optim::OptimizerOptions&,
                                                       const StateReader& s) {
  torch::Tensor buf = s.optional_tensor("momentum_buffer");
  if (!buf.defined()) return nullptr;
  auto st = std::make_unique<State>();
  st->momentum_buffer(buf);
  return st;
}

}  // namespace

const Codec kSGD = {"SGD",      "momentum", is_a<optim::SGD>, write_group,
                    write_state, read_group, read_state,       nullptr};

}  // namespace ckptio::optim_codec
