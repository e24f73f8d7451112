// LibTorch optimizers <-> Python torch.optim state_dicts (see ckptio/optim.h).
#include "ckptio/optim.h"

#include <torch/optim/adagrad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/rmsprop.h>
#include <torch/optim/sgd.h>

#include <cmath>
#include <map>
#include <memory>
#include <sstream>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

namespace ckptio {
namespace {

namespace optim = torch::optim;

// ---- the optimizer's state map key -------------------------------------------------------
// LibTorch 1.13 keys Optimizer::state() by c10::guts::to_string(param.unsafeGetTensorImpl())
// (an ostream of the pointer); 2.x by the void* itself. The key type decides.

using StateMap = std::decay_t<decltype(std::declval<optim::Optimizer&>().state())>;

template <class Map>
typename Map::key_type state_key_of(const torch::Tensor& p) {
  using Key = typename Map::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream ss;  // exactly what c10::guts::to_string does
    ss << p.unsafeGetTensorImpl();
    return ss.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

typename StateMap::key_type state_key(const torch::Tensor& p) { return state_key_of<StateMap>(p); }

// ---- which optimizer ----------------------------------------------------------------------

enum class Type { kSGD, kAdam, kAdamW, kRMSprop, kAdagrad };

Type type_of(const optim::Optimizer& opt) {
  if (dynamic_cast<const optim::SGD*>(&opt)) return Type::kSGD;
  if (dynamic_cast<const optim::Adam*>(&opt)) return Type::kAdam;
  if (dynamic_cast<const optim::AdamW*>(&opt)) return Type::kAdamW;
  if (dynamic_cast<const optim::RMSprop*>(&opt)) return Type::kRMSprop;
  if (dynamic_cast<const optim::Adagrad*>(&opt)) return Type::kAdagrad;
  throw Error(Code::kUnsupported,
              "optimizer state: only torch::optim::SGD, Adam, AdamW, RMSprop and Adagrad can be "
              "converted to and from Python's layout (got " +
                  std::string(typeid(opt).name()) + ")");
}

const char* type_name(Type t) {
  switch (t) {
    case Type::kSGD:
      return "SGD";
    case Type::kAdam:
      return "Adam";
    case Type::kAdamW:
      return "AdamW";
    case Type::kRMSprop:
      return "RMSprop";
    case Type::kAdagrad:
      return "Adagrad";
  }
  return "?";
}

template <class T>
const T& options_as(const optim::OptimizerParamGroup& g) {
  return static_cast<const T&>(g.options());
}

// ---- building the Python layout ----------------------------------------------------------

void put(const ValuePtr& d, const char* key, ValuePtr v) {
  d->entries.emplace_back(Value::str(key), std::move(v));
}

ValuePtr num(double v) { return Value::floating(v); }

ValuePtr step_tensor(int64_t step, CheckpointBuilder& b) {
  // Python 1.12+ keeps Adam/AdamW/Adagrad 'step' as a 0-dim float32 CPU tensor.
  return b.tensor(torch::scalar_tensor(static_cast<double>(step), torch::kFloat32));
}

ValuePtr state_tensor(const torch::Tensor& t, CheckpointBuilder& b) { return b.tensor(t.detach()); }

ValuePtr group_value(Type type, const optim::OptimizerParamGroup& g) {
  // Keys and order as each torch.optim class of PyTorch 1.13 writes its param_groups.
  auto d = Value::dict();
  switch (type) {
    case Type::kSGD: {
      const auto& o = options_as<optim::SGDOptions>(g);
      put(d, "lr", num(o.lr()));
      put(d, "momentum", num(o.momentum()));
      put(d, "dampening", num(o.dampening()));
      put(d, "weight_decay", num(o.weight_decay()));
      put(d, "nesterov", Value::boolean(o.nesterov()));
      put(d, "maximize", Value::boolean(false));
      put(d, "foreach", Value::none());
      put(d, "differentiable", Value::boolean(false));
      break;
    }
    case Type::kAdam:
    case Type::kAdamW: {
      // Same fields in both option structs.
      auto fill = [&](const auto& o) {
        put(d, "lr", num(o.lr()));
        put(d, "betas", Value::tuple({num(std::get<0>(o.betas())), num(std::get<1>(o.betas()))}));
        put(d, "eps", num(o.eps()));
        put(d, "weight_decay", num(o.weight_decay()));
        put(d, "amsgrad", Value::boolean(o.amsgrad()));
      };
      if (type == Type::kAdam) {
        fill(options_as<optim::AdamOptions>(g));
        put(d, "maximize", Value::boolean(false));
        put(d, "foreach", Value::none());
        put(d, "capturable", Value::boolean(false));
        put(d, "differentiable", Value::boolean(false));
        put(d, "fused", Value::boolean(false));
      } else {
        fill(options_as<optim::AdamWOptions>(g));
        put(d, "foreach", Value::none());
        put(d, "maximize", Value::boolean(false));
        put(d, "capturable", Value::boolean(false));
      }
      break;
    }
    case Type::kRMSprop: {
      const auto& o = options_as<optim::RMSpropOptions>(g);
      put(d, "lr", num(o.lr()));
      put(d, "momentum", num(o.momentum()));
      put(d, "alpha", num(o.alpha()));
      put(d, "eps", num(o.eps()));
      put(d, "centered", Value::boolean(o.centered()));
      put(d, "weight_decay", num(o.weight_decay()));
      put(d, "foreach", Value::none());
      put(d, "maximize", Value::boolean(false));
      put(d, "differentiable", Value::boolean(false));
      break;
    }
    case Type::kAdagrad: {
      const auto& o = options_as<optim::AdagradOptions>(g);
      put(d, "lr", num(o.lr()));
      put(d, "lr_decay", num(o.lr_decay()));
      put(d, "eps", num(o.eps()));
      put(d, "weight_decay", num(o.weight_decay()));
      put(d, "initial_accumulator_value", num(o.initial_accumulator_value()));
      put(d, "foreach", Value::none());
      put(d, "maximize", Value::boolean(false));
      break;
    }
  }
  return d;
}

ValuePtr param_state_value(Type type, const optim::OptimizerParamState& s, CheckpointBuilder& b) {
  auto d = Value::dict();
  auto opt_tensor = [&](const char* key, const torch::Tensor& t) {
    if (t.defined()) put(d, key, state_tensor(t, b));
  };
  switch (type) {
    case Type::kSGD: {
      const auto& st = static_cast<const optim::SGDParamState&>(s);
      put(d, "momentum_buffer",
          st.momentum_buffer().defined() ? state_tensor(st.momentum_buffer(), b) : Value::none());
      break;
    }
    case Type::kAdam:
    case Type::kAdamW: {
      auto fill = [&](const auto& st) {
        put(d, "step", step_tensor(st.step(), b));
        opt_tensor("exp_avg", st.exp_avg());
        opt_tensor("exp_avg_sq", st.exp_avg_sq());
        opt_tensor("max_exp_avg_sq", st.max_exp_avg_sq());
      };
      if (type == Type::kAdam)
        fill(static_cast<const optim::AdamParamState&>(s));
      else
        fill(static_cast<const optim::AdamWParamState&>(s));
      break;
    }
    case Type::kRMSprop: {
      const auto& st = static_cast<const optim::RMSpropParamState&>(s);
      put(d, "step", Value::integer(st.step()));  // a Python int in 1.13's RMSprop
      opt_tensor("square_avg", st.square_avg());
      opt_tensor("momentum_buffer", st.momentum_buffer());
      opt_tensor("grad_avg", st.grad_avg());
      break;
    }
    case Type::kAdagrad: {
      const auto& st = static_cast<const optim::AdagradParamState&>(s);
      put(d, "step", step_tensor(st.step(), b));
      opt_tensor("sum", st.sum());
      break;
    }
  }
  return d;
}

// ---- reading the Python layout -----------------------------------------------------------

std::string shape_text(c10::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::string keys_text(const Value& d) {
  std::string out;
  for (const auto& [k, v] : d.entries) {
    if (!out.empty()) out += ", ";
    out += k->kind == Kind::kStr ? k->s : k->kind == Kind::kInt ? std::to_string(k->i) : "?";
  }
  return out;
}

[[noreturn]] void fail(Code code, const std::string& msg) { throw Error(code, msg); }

struct ValueReader {
  const TensorAccessor& tensor_of;

  double number(const ValuePtr& v, const std::string& where) const {
    if (v->kind == Kind::kFloat) return v->f;
    if (v->kind == Kind::kInt) return static_cast<double>(v->i);
    if (v->kind == Kind::kTensor) {  // 2.x may keep lr (and step) as a tensor
      torch::Tensor t = tensor_of(v);
      if (t.numel() == 1) return t.detach().to(torch::kCPU).to(torch::kDouble).item<double>();
      fail(Code::kInvalidArgument,
           where + ": a tensor of shape " + shape_text(t.sizes()) + ", expected a number");
    }
    fail(Code::kInvalidArgument, where + ": " + kind_name(v->kind) + ", expected a number");
  }

  int64_t step(const ValuePtr& v, const std::string& where) const {
    double d = number(v, where);
    if (!(d >= 0) || d > 9.0e15 || d != std::floor(d))
      fail(Code::kInvalidArgument, where + ": " + std::to_string(d) + " is not a step count");
    return static_cast<int64_t>(d);
  }

  bool boolean(const ValuePtr& v, const std::string& where) const {
    if (v->kind == Kind::kBool) return v->b;
    if (v->kind == Kind::kInt && (v->i == 0 || v->i == 1)) return v->i == 1;
    fail(Code::kInvalidArgument, where + ": " + kind_name(v->kind) + ", expected a bool");
  }

  // The state tensor for `param`: shape checked, copied to its device (and dtype, when both
  // are floating point).
  torch::Tensor like_param(const ValuePtr& v, const torch::Tensor& param,
                           const std::string& where) const {
    if (v->kind != Kind::kTensor)
      fail(Code::kInvalidArgument, where + ": " + kind_name(v->kind) + ", expected a tensor");
    torch::Tensor t = tensor_of(v);
    if (t.sizes() != param.sizes())
      fail(Code::kInvalidArgument, where + ": shape " + shape_text(t.sizes()) +
                                       ", the parameter has " + shape_text(param.sizes()));
    auto options = t.options().device(param.device());
    if (c10::isFloatingType(t.scalar_type()) && c10::isFloatingType(param.scalar_type()))
      options = options.dtype(param.scalar_type());
    return t.detach().to(options, /*non_blocking=*/false, /*copy=*/true);
  }
};

ValuePtr required(const ValuePtr& d, const char* key, const std::string& where) {
  ValuePtr v = d->get(key);
  if (!v) fail(Code::kInvalidArgument, where + ": no '" + key + "' (keys: " + keys_text(*d) + ")");
  return v;
}

// A staged load: everything parsed and checked, applied by commit() (which cannot fail).
struct StagedLoad {
  optim::Optimizer* opt = nullptr;
  std::vector<std::unique_ptr<optim::OptimizerOptions>> options;  // per group
  std::vector<std::pair<torch::Tensor, std::unique_ptr<optim::OptimizerParamState>>> states;

  void commit() {
    auto& groups = opt->param_groups();
    for (size_t i = 0; i < groups.size(); ++i) groups[i].set_options(std::move(options[i]));
    auto& state = opt->state();
    for (const auto& g : groups)
      for (const auto& p : g.params()) state.erase(state_key(p));
    for (auto& [p, s] : states) state[state_key(p)] = std::move(s);
  }
};

// Sets one group's options from a Python param_group (keys absent in the file keep the
// optimizer's value).
std::unique_ptr<optim::OptimizerOptions> group_options(Type type,
                                                       const optim::OptimizerParamGroup& g,
                                                       const ValuePtr& pg, const ValueReader& r,
                                                       const std::string& where) {
  auto key = [&](const char* k) { return where + "." + k; };
  auto set_num = [&](const char* k, auto&& setter) {
    if (ValuePtr v = pg->get(k)) setter(r.number(v, key(k)));
  };
  auto set_bool = [&](const char* k, auto&& setter) {
    if (ValuePtr v = pg->get(k)) setter(r.boolean(v, key(k)));
  };
  if (ValuePtr v = pg->get("maximize"); v && r.boolean(v, key("maximize")))
    fail(Code::kUnsupported,
         key("maximize") + " is True: LibTorch's " + type_name(type) + " cannot maximize");
  // The key only this kind of optimizer writes: catches e.g. Adam state loaded into SGD.
  const char* signature = type == Type::kSGD       ? "momentum"
                          : type == Type::kRMSprop ? "alpha"
                          : type == Type::kAdagrad ? "lr_decay"
                                                   : "betas";
  if (!pg->get(signature))
    fail(Code::kInvalidArgument, where + ": no '" + signature + "', so not " + type_name(type) +
                                     " state (keys: " + keys_text(*pg) + ")");
  std::unique_ptr<optim::OptimizerOptions> out = g.options().clone();
  switch (type) {
    case Type::kSGD: {
      auto& o = static_cast<optim::SGDOptions&>(*out);
      set_num("lr", [&](double x) { o.lr(x); });
      set_num("momentum", [&](double x) { o.momentum(x); });
      set_num("dampening", [&](double x) { o.dampening(x); });
      set_num("weight_decay", [&](double x) { o.weight_decay(x); });
      set_bool("nesterov", [&](bool x) { o.nesterov(x); });
      break;
    }
    case Type::kAdam:
    case Type::kAdamW: {
      // PyTorch 2.7+ writes decoupled_weight_decay (AdamW is Adam with it True). LibTorch's
      // Adam always couples weight decay into the gradient, its AdamW never does: with a
      // nonzero weight_decay the other kind would train differently.
      if (ValuePtr v = pg->get("decoupled_weight_decay")) {
        bool decoupled = r.boolean(v, key("decoupled_weight_decay"));
        ValuePtr wd = pg->get("weight_decay");
        if (decoupled != (type == Type::kAdamW) && wd && r.number(wd, key("weight_decay")) != 0)
          fail(Code::kUnsupported,
               key("decoupled_weight_decay") + " is " + (decoupled ? "True" : "False") +
                   " with a nonzero weight_decay: LibTorch's " + type_name(type) +
                   (decoupled ? " couples weight decay into the gradient; load it into "
                                "torch::optim::AdamW"
                              : " decouples weight decay; load it into torch::optim::Adam"));
      }
      auto fill = [&](auto& o) {
        set_num("lr", [&](double x) { o.lr(x); });
        if (ValuePtr v = pg->get("betas")) {
          if ((v->kind != Kind::kTuple && v->kind != Kind::kList) || v->items.size() != 2)
            fail(Code::kInvalidArgument, key("betas") + ": expected a pair of numbers");
          o.betas(std::make_tuple(r.number(v->items[0], key("betas") + ".0"),
                                  r.number(v->items[1], key("betas") + ".1")));
        }
        set_num("eps", [&](double x) { o.eps(x); });
        set_num("weight_decay", [&](double x) { o.weight_decay(x); });
        set_bool("amsgrad", [&](bool x) { o.amsgrad(x); });
      };
      if (type == Type::kAdam)
        fill(static_cast<optim::AdamOptions&>(*out));
      else
        fill(static_cast<optim::AdamWOptions&>(*out));
      break;
    }
    case Type::kRMSprop: {
      auto& o = static_cast<optim::RMSpropOptions&>(*out);
      set_num("lr", [&](double x) { o.lr(x); });
      set_num("momentum", [&](double x) { o.momentum(x); });
      set_num("alpha", [&](double x) { o.alpha(x); });
      set_num("eps", [&](double x) { o.eps(x); });
      set_bool("centered", [&](bool x) { o.centered(x); });
      set_num("weight_decay", [&](double x) { o.weight_decay(x); });
      break;
    }
    case Type::kAdagrad: {
      auto& o = static_cast<optim::AdagradOptions&>(*out);
      set_num("lr", [&](double x) { o.lr(x); });
      set_num("lr_decay", [&](double x) { o.lr_decay(x); });
      set_num("eps", [&](double x) { o.eps(x); });
      set_num("weight_decay", [&](double x) { o.weight_decay(x); });
      set_num("initial_accumulator_value", [&](double x) { o.initial_accumulator_value(x); });
      break;
    }
  }
  return out;
}

// One parameter's state; null when the file has none for it (SGD's None momentum_buffer
// included) and the optimizer starts it afresh.
std::unique_ptr<optim::OptimizerParamState> param_state(Type type,
                                                        const optim::OptimizerOptions& options,
                                                        const torch::Tensor& p, const ValuePtr& s,
                                                        const ValueReader& r,
                                                        const std::string& where) {
  auto key = [&](const char* k) { return where + "." + k; };
  auto tensor = [&](const char* k) { return r.like_param(required(s, k, where), p, key(k)); };
  auto optional_tensor = [&](const char* k) {
    ValuePtr v = s->get(k);
    return v && v->kind != Kind::kNone ? r.like_param(v, p, key(k)) : torch::Tensor();
  };
  switch (type) {
    case Type::kSGD: {
      torch::Tensor buf = optional_tensor("momentum_buffer");
      if (!buf.defined()) return nullptr;
      auto st = std::make_unique<optim::SGDParamState>();
      st->momentum_buffer(buf);
      return st;
    }
    case Type::kAdam:
    case Type::kAdamW: {
      auto fill = [&](auto& st, bool amsgrad) {
        st.step(r.step(required(s, "step", where), key("step")));
        st.exp_avg(tensor("exp_avg"));
        st.exp_avg_sq(tensor("exp_avg_sq"));
        st.max_exp_avg_sq(optional_tensor("max_exp_avg_sq"));
        if (amsgrad && !st.max_exp_avg_sq().defined())
          fail(Code::kInvalidArgument,
               where + ": no 'max_exp_avg_sq', but the param_group has amsgrad True");
      };
      if (type == Type::kAdam) {
        auto st = std::make_unique<optim::AdamParamState>();
        fill(*st, static_cast<const optim::AdamOptions&>(options).amsgrad());
        return st;
      }
      auto st = std::make_unique<optim::AdamWParamState>();
      fill(*st, static_cast<const optim::AdamWOptions&>(options).amsgrad());
      return st;
    }
    case Type::kRMSprop: {
      const auto& o = static_cast<const optim::RMSpropOptions&>(options);
      auto st = std::make_unique<optim::RMSpropParamState>();
      st->step(r.step(required(s, "step", where), key("step")));
      st->square_avg(tensor("square_avg"));
      st->momentum_buffer(optional_tensor("momentum_buffer"));
      st->grad_avg(optional_tensor("grad_avg"));
      if (o.momentum() > 0 && !st->momentum_buffer().defined())
        fail(Code::kInvalidArgument,
             where + ": no 'momentum_buffer', but the param_group has momentum " +
                 std::to_string(o.momentum()));
      if (o.centered() && !st->grad_avg().defined())
        fail(Code::kInvalidArgument, where + ": no 'grad_avg', but the param_group is centered");
      return st;
    }
    case Type::kAdagrad: {
      auto st = std::make_unique<optim::AdagradParamState>();
      st->step(r.step(required(s, "step", where), key("step")));
      st->sum(tensor("sum"));
      return st;
    }
  }
  return nullptr;
}

StagedLoad stage(optim::Optimizer& opt, const ValuePtr& sd, const TensorAccessor& tensor_of,
                 const std::string& where) {
  Type type = type_of(opt);
  ValueReader r{tensor_of};
  if (!sd || sd->kind != Kind::kDict)
    fail(Code::kInvalidArgument, where + ": " + (sd ? kind_name(sd->kind) : "nothing") +
                                     ", expected an optimizer state_dict (a dict)");
  ValuePtr groups = required(sd, "param_groups", where);
  ValuePtr state = required(sd, "state", where);
  if (groups->kind != Kind::kList)
    fail(Code::kInvalidArgument,
         where + ".param_groups: " + kind_name(groups->kind) + ", expected a list");
  if (state->kind != Kind::kDict)
    fail(Code::kInvalidArgument, where + ".state: " + kind_name(state->kind) + ", expected a dict");
  const auto& ogroups = opt.param_groups();
  if (groups->items.size() != ogroups.size())
    fail(Code::kInvalidArgument, where + ".param_groups: " + std::to_string(groups->items.size()) +
                                     " groups in the checkpoint, the " + type_name(type) +
                                     " optimizer has " + std::to_string(ogroups.size()));

  StagedLoad out;
  out.opt = &opt;
  // Python's index -> (group, parameter), from the saved params lists (as Python's
  // load_state_dict pairs them: saved group i's j-th id with the optimizer's group i's j-th).
  std::map<int64_t, std::pair<size_t, size_t>> where_is;
  for (size_t gi = 0; gi < ogroups.size(); ++gi) {
    std::string gw = where + ".param_groups." + std::to_string(gi);
    const ValuePtr& pg = groups->items[gi];
    if (pg->kind != Kind::kDict)
      fail(Code::kInvalidArgument, gw + ": " + kind_name(pg->kind) + ", expected a dict");
    ValuePtr params = required(pg, "params", gw);
    if (params->kind != Kind::kList && params->kind != Kind::kTuple)
      fail(Code::kInvalidArgument,
           gw + ".params: " + kind_name(params->kind) + ", expected a list");
    if (params->items.size() != ogroups[gi].params().size())
      fail(Code::kInvalidArgument, gw + ".params: " + std::to_string(params->items.size()) +
                                       " parameters in the checkpoint, the optimizer's group has " +
                                       std::to_string(ogroups[gi].params().size()));
    for (size_t pi = 0; pi < params->items.size(); ++pi) {
      const ValuePtr& id = params->items[pi];
      if (id->kind != Kind::kInt)
        fail(Code::kInvalidArgument, gw + ".params." + std::to_string(pi) + ": " +
                                         kind_name(id->kind) + ", expected an int");
      if (!where_is.emplace(id->i, std::make_pair(gi, pi)).second)
        fail(Code::kInvalidArgument,
             gw + ".params: parameter " + std::to_string(id->i) + " listed twice");
    }
    out.options.push_back(group_options(type, ogroups[gi], pg, r, gw));
  }

  for (const auto& [k, s] : state->entries) {
    if (k->kind != Kind::kInt)
      fail(Code::kInvalidArgument, where + ".state: a " + std::string(kind_name(k->kind)) +
                                       " key, expected parameter indices");
    auto it = where_is.find(k->i);
    if (it == where_is.end()) continue;  // Python keeps it but no parameter ever reads it
    std::string sw = where + ".state." + std::to_string(k->i);
    if (s->kind != Kind::kDict)
      fail(Code::kInvalidArgument, sw + ": " + kind_name(s->kind) + ", expected a dict");
    if (s->entries.empty()) continue;
    auto [gi, pi] = it->second;
    const torch::Tensor& p = ogroups[gi].params()[pi];
    if (auto st = param_state(type, *out.options[gi], p, s, r, sw))
      out.states.emplace_back(p, std::move(st));
  }

  if (type == Type::kAdagrad) {
    // LibTorch's Adagrad (like Python's) expects state for every parameter: start the ones
    // the checkpoint has none for as its constructor does.
    std::unordered_set<const c10::TensorImpl*> has;
    for (const auto& [q, st] : out.states) has.insert(q.unsafeGetTensorImpl());
    for (size_t gi = 0; gi < ogroups.size(); ++gi) {
      const auto& o = static_cast<const optim::AdagradOptions&>(*out.options[gi]);
      for (const auto& p : ogroups[gi].params()) {
        if (has.count(p.unsafeGetTensorImpl())) continue;
        auto st = std::make_unique<optim::AdagradParamState>();
        st->step(0);
        st->sum(torch::full_like(p.detach(), o.initial_accumulator_value(),
                                 at::MemoryFormat::Preserve));
        out.states.emplace_back(p, std::move(st));
      }
    }
  }
  return out;
}

double scalar_of(const ValuePtr& v, TorchCheckpoint& ckpt, const std::string& where) {
  if (v->kind == Kind::kFloat) return v->f;
  if (v->kind == Kind::kInt) return static_cast<double>(v->i);
  if (v->kind == Kind::kTensor) {
    torch::Tensor t = ckpt.tensor(v);
    if (t.numel() == 1) return t.detach().to(torch::kCPU).to(torch::kDouble).item<double>();
  }
  fail(Code::kInvalidArgument, where + ": " + kind_name(v->kind) + ", expected a number");
}

}  // namespace

ValuePtr optimizer_state_value(const optim::Optimizer& opt, CheckpointBuilder& builder) {
  Type type = type_of(opt);
  const auto& state = opt.state();
  auto states = Value::dict();
  auto groups = Value::list();
  int64_t index = 0;
  for (const auto& g : opt.param_groups()) {
    ValuePtr group = group_value(type, g);
    auto params = Value::list();
    for (const auto& p : g.params()) {
      auto it = state.find(state_key(p));
      if (it != state.end() && it->second)
        states->entries.emplace_back(Value::integer(index),
                                     param_state_value(type, *it->second, builder));
      params->items.push_back(Value::integer(index++));
    }
    put(group, "params", params);
    groups->items.push_back(group);
  }
  auto sd = Value::dict();
  put(sd, "state", states);
  put(sd, "param_groups", groups);
  return sd;
}

void load_optimizer_state(optim::Optimizer& opt, const ValuePtr& state_dict,
                          const TensorAccessor& tensor_of, const std::string& where) {
  stage(opt, state_dict, tensor_of, where).commit();
}

void load_optimizer_state(optim::Optimizer& opt, TorchCheckpoint& ckpt,
                          const std::string& dotted_path) {
  ValuePtr node = ckpt.find(dotted_path);
  std::string where = dotted_path.empty() ? "optimizer state_dict" : dotted_path;
  if (!node) fail(Code::kNotFound, "no optimizer state_dict at '" + dotted_path + "'");
  load_optimizer_state(
      opt, node, [&](const ValuePtr& v) { return ckpt.tensor(v); }, where);
}

void save_training_checkpoint(const std::string& path, const torch::nn::Module& module,
                              const optim::Optimizer& optimizer, int64_t epoch, double loss,
                              const SaveOptions& options) {
  CheckpointBuilder b;
  auto root = Value::dict();
  put(root, "epoch", Value::integer(epoch));
  put(root, "model_state_dict", b.module(module));
  put(root, "optimizer_state_dict", optimizer_state_value(optimizer, b));
  put(root, "loss", Value::floating(loss));
  save(path, b.finish(root), options);
}

TrainingProgress load_training_checkpoint(const std::string& path, torch::nn::Module& module,
                                          optim::Optimizer& optimizer,
                                          const TorchLoadOptions& options,
                                          const LoadStateDictOptions& state_options) {
  TorchCheckpoint ckpt = load(path, options);
  const ValuePtr& root = ckpt.tree().root;
  if (!root || root->kind != Kind::kDict)
    fail(Code::kInvalidArgument, path +
                                     ": not a training checkpoint (a dict with epoch, "
                                     "model_state_dict, optimizer_state_dict, loss)");
  auto need = [&](const char* key) {
    ValuePtr v = root->get(key);
    if (!v) fail(Code::kNotFound, path + ": no '" + key + "' (keys: " + keys_text(*root) + ")");
    return v;
  };
  TrainingProgress out;
  ValuePtr epoch = need("epoch");
  if (epoch->kind != Kind::kInt)
    fail(Code::kInvalidArgument,
         path + ": epoch is " + kind_name(epoch->kind) + ", expected an int");
  out.epoch = epoch->i;
  out.loss = scalar_of(need("loss"), ckpt, path + ": loss");
  need("model_state_dict");
  StagedLoad staged = stage(
      optimizer, need("optimizer_state_dict"), [&](const ValuePtr& v) { return ckpt.tensor(v); },
      path + ": optimizer_state_dict");
  load_state_dict(module, ckpt.state_dict("model_state_dict"), state_options);
  staged.commit();
  return out;
}

}  // namespace ckptio
