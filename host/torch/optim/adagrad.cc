// torch::optim::Adagrad <-> torch.optim.Adagrad's state_dict.
#include <torch/optim/adagrad.h>

#include "optimizer_codec.h"

namespace ckptio::optim_codec {
namespace {

using Options = optim::AdagradOptions;
using State = optim::AdagradParamState;

void write_group(const optim::OptimizerOptions& options, const ValuePtr& d) {
  const auto& o = static_cast<const Options&>(options);
  put(d, "lr", num(o.lr()));
  put(d, "lr_decay", num(o.lr_decay()));
  put(d, "eps", num(o.eps()));
  put(d, "weight_decay", num(o.weight_decay()));
  put(d, "initial_accumulator_value", num(o.initial_accumulator_value()));
  put(d, "foreach", Value::none());
  put(d, "maximize", Value::boolean(false));
}

void write_state(const optim::OptimizerParamState& state, const StateWriter& w) {
  const auto& st = static_cast<const State&>(state);
  w.step_tensor(st.step());
  w.optional_tensor("sum", st.sum());
}

void read_group(optim::OptimizerOptions& options, const GroupReader& g) {
  auto& o = static_cast<Options&>(options);
  g.number("lr", [&](double x) { o.lr(x); });
  g.number("lr_decay", [&](double x) { o.lr_decay(x); });
  g.number("eps", [&](double x) { o.eps(x); });
  g.number("weight_decay", [&](double x) { o.weight_decay(x); });
  g.number("initial_accumulator_value", [&](double x) { o.initial_accumulator_value(x); });
}

std::unique_ptr<optim::OptimizerParamState> read_state(const optim::OptimizerOptions&,
                                                       const StateReader& s) {
  auto st = std::make_unique<State>();
  st->step(s.step());
  st->sum(s.tensor("sum"));
  return st;
}

// LibTorch's Adagrad (like Python's) expects state for every parameter.
std::unique_ptr<optim::OptimizerParamState> fresh_state(const optim::OptimizerOptions& options,
                                                        const torch::Tensor& p) {
  const auto& o = static_cast<const Options&>(options);
  auto st = std::make_unique<State>();
  st->step(0);
  st->sum(
      torch::full_like(p.detach(), o.initial_accumulator_value(), at::MemoryFormat::Preserve));
  return st;
}

}  // namespace

const Codec kAdagrad = {"Adagrad",   "lr_decay", is_a<optim::Adagrad>, write_group,
                        write_state, read_group, read_state,           fresh_state};

}  // namespace ckptio::optim_codec
