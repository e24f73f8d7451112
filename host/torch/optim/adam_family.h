// Private to libckptio_torch: what torch::optim::Adam and AdamW share. Their option and state
// structs have the same fields but are unrelated types, so adam.cc and adamw.cc each
// instantiate these with their own.
#pragma once

#include <tuple>

#include "optimizer_codec.h"

namespace ckptio::optim_codec::adam_family {

// The keys both write first; each class then adds its own Python-only flags.
template <class Options>
void write_group_head(const Options& o, const ValuePtr& d) {
  put(d, "lr", num(o.lr()));
  put(d, "betas", Value::tuple({num(std::get<0>(o.betas())), num(std::get<1>(o.betas()))}));
  put(d, "eps", num(o.eps()));
  put(d, "weight_decay", num(o.weight_decay()));
  put(d, "amsgrad", Value::boolean(o.amsgrad()));
}

template <class State>
void write_state(const optim::OptimizerParamState& state, const StateWriter& w) {
  const auto& st = static_cast<const State&>(state);
  w.step_tensor(st.step());
  w.optional_tensor("exp_avg", st.exp_avg());
  w.optional_tensor("exp_avg_sq", st.exp_avg_sq());
  w.optional_tensor("max_exp_avg_sq", st.max_exp_avg_sq());
}

// `decoupled`: whether this class decouples weight decay (AdamW) or not (Adam).
template <class Options>
void read_group(optim::OptimizerOptions& options, const GroupReader& g, bool decoupled,
                const char* name) {
  // PyTorch 2.7+ writes decoupled_weight_decay (AdamW is Adam with it True). LibTorch's
  // Adam always couples weight decay into the gradient, its AdamW never does: with a
  // nonzero weight_decay the other kind would train differently.
  if (ValuePtr v = g.group->get("decoupled_weight_decay")) {
    bool file_decoupled = g.r.boolean(v, g.key("decoupled_weight_decay"));
    ValuePtr wd = g.group->get("weight_decay");
    if (file_decoupled != decoupled && wd && g.r.number(wd, g.key("weight_decay")) != 0)
      fail(Code::kUnsupported,
           g.key("decoupled_weight_decay") + " is " + (file_decoupled ? "True" : "False") +
               " with a nonzero weight_decay: LibTorch's " + name +
               (file_decoupled ? " couples weight decay into the gradient; load it into "
                                 "torch::optim::AdamW"
                               : " decouples weight decay; load it into torch::optim::Adam"));
  }
  auto& o = static_cast<Options&>(options);
  g.number("lr", [&](double x) { o.lr(x); });
  if (ValuePtr v = g.group->get("betas")) {
    if ((v->kind != Kind::kTuple && v->kind != Kind::kList) || v->items.size() != 2)
      fail(Code::kInvalidArgument, g.key("betas") + ": expected a pair of numbers");
    o.betas(std::make_tuple(g.r.number(v->items[0], index_path(g.key("betas"), 0)),
                            g.r.number(v->items[1], index_path(g.key("betas"), 1))));
  }
  g.number("eps", [&](double x) { o.eps(x); });
  g.number("weight_decay", [&](double x) { o.weight_decay(x); });
  g.boolean("amsgrad", [&](bool x) { o.amsgrad(x); });
}

template <class Options, class State>
std::unique_ptr<optim::OptimizerParamState> read_state(const optim::OptimizerOptions& options,
                                                       const StateReader& s) {
  auto st = std::make_unique<State>();
  st->step(s.step());
  st->exp_avg(s.tensor("exp_avg"));
  st->exp_avg_sq(s.tensor("exp_avg_sq"));
  st->max_exp_avg_sq(s.optional_tensor("max_exp_avg_sq"));
  if (static_cast<const Options&>(options).amsgrad() && !st->max_exp_avg_sq().defined())
    fail(Code::kInvalidArgument,
         s.where + ": no 'max_exp_avg_sq', but the param_group has amsgrad True");
  return st;
}

}  // namespace ckptio::optim_codec::adam_family
