// torch::optim::RMSprop <-> torch.optim.RMSprop's state_dict.
#include <torch/optim/rmsprop.h>

#include "optimizer_codec.h"

namespace ckptio::optim_codec {
namespace {

using Options = optim::RMSpropOptions;
using State = optim::RMSpropParamState;

void write_group(const optim::OptimizerOptions& options, const ValuePtr& d) {
  const auto& o = static_cast<const Options&>(options);
  put(d, "lr", num(o.lr()));
  put(d, "momentum", num(o.momentum()));
  put(d, "alpha", num(o.alpha()));
  put(d, "eps", num(o.eps()));
  put(d, "centered", Value::boolean(o.centered()));
  put(d, "weight_decay", num(o.weight_decay()));
  put(d, "foreach", Value::none());
  put(d, "maximize", Value::boolean(false));
  put(d, "differentiable", Value::boolean(false));
}

void write_state(const optim::OptimizerParamState& state, const StateWriter& w) {
  const auto& st = static_cast<const State&>(state);
  put(w.state, "step", Value::integer(st.step()));  // a Python int in 1.13's RMSprop
  w.optional_tensor("square_avg", st.square_avg());
  w.optional_tensor("momentum_buffer", st.momentum_buffer());
  w.optional_tensor("grad_avg", st.grad_avg());
}

void read_group(optim::OptimizerOptions& options, const GroupReader& g) {
  auto& o = static_cast<Options&>(options);
  g.number("lr", [&](double x) { o.lr(x); });
  g.number("momentum", [&](double x) { o.momentum(x); });
  g.number("alpha", [&](double x) { o.alpha(x); });
  g.number("eps", [&](double x) { o.eps(x); });
  g.boolean("centered", [&](bool x) { o.centered(x); });
  g.number("weight_decay", [&](double x) { o.weight_decay(x); });
}

std::unique_ptr<optim::OptimizerParamState> read_state(const optim::OptimizerOptions& options,
                                                       const StateReader& s) {
  const auto& o = static_cast<const Options&>(options);
  auto st = std::make_unique<State>();
  st->step(s.step());
  st->square_avg(s.tensor("square_avg"));
  st->momentum_buffer(s.optional_tensor("momentum_buffer"));
  st->grad_avg(s.optional_tensor("grad_avg"));
  if (o.momentum() > 0 && !st->momentum_buffer().defined())
    fail(Code::kInvalidArgument,
         s.where + ": no 'momentum_buffer', but the param_group has momentum " +
             std::to_string(o.momentum()));
  if (o.centered() && !st->grad_avg().defined())
    fail(Code::kInvalidArgument, s.where + ": no 'grad_avg', but the param_group is centered");
  return st;
}

}  // namespace

const Codec kRMSprop = {"RMSprop",   "alpha",    is_a<optim::RMSprop>, write_group,
                        write_state, read_group, read_state,           nullptr};

}  // namespace ckptio::optim_codec
