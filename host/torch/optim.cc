// LibTorch optimizers <-> Python torch.optim state_dicts (see ckptio/optim.h).
#include "ckptio/optim.h"

#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <type_traits>
#include <typeinfo>
#include <unordered_set>
#include <utility>
#include <vector>

#include "optim/optimizer_codec.h"

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

using optim_codec::Codec;

// Every class ckptio converts; the message for any other lists them in this order.
const Codec* const kCodecs[] = {&optim_codec::kSGD, &optim_codec::kAdam, &optim_codec::kAdamW,
                                &optim_codec::kRMSprop, &optim_codec::kAdagrad};

const Codec& codec_of(const optim::Optimizer& opt) {
  for (const Codec* c : kCodecs)
    if (c->matches(opt)) return *c;
  std::string names;  // "SGD, Adam, ... and Adagrad"
  const size_t n = std::size(kCodecs);
  for (size_t i = 0; i < n; ++i)
    names += (i == 0 ? "" : i + 1 == n ? " and " : ", ") + std::string(kCodecs[i]->name);
  throw Error(Code::kUnsupported, "optimizer state: only torch::optim::" + names +
                                      " can be converted to and from Python's layout (got " +
                                      std::string(typeid(opt).name()) + ")");
}

using optim_codec::fail;
using optim_codec::index_path;
using optim_codec::key_path;
using optim_codec::keys_text;
using optim_codec::put;
using optim_codec::required;
using optim_codec::ValueReader;

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

// One group's options from a Python param_group (keys absent in the file keep the
// optimizer's value).
std::unique_ptr<optim::OptimizerOptions> group_options(const Codec& codec,
                                                       const optim::OptimizerParamGroup& g,
                                                       const ValuePtr& pg, const ValueReader& r,
                                                       const std::string& where) {
  const std::string maximize = key_path(where, "maximize");
  if (ValuePtr v = pg->get("maximize"); v && r.boolean(v, maximize))
    fail(Code::kUnsupported, maximize + " is True: LibTorch's " + codec.name + " cannot maximize");
  if (!pg->get(codec.signature))
    fail(Code::kInvalidArgument, where + ": no '" + codec.signature + "', so not " + codec.name +
                                     " state (keys: " + keys_text(*pg) + ")");
  std::unique_ptr<optim::OptimizerOptions> out = g.options().clone();
  codec.read_group(*out, optim_codec::GroupReader{pg, r, where});
  return out;
}

StagedLoad stage(optim::Optimizer& opt, const ValuePtr& sd, const TensorAccessor& tensor_of,
                 const std::string& where) {
  const Codec& codec = codec_of(opt);
  ValueReader r{tensor_of};
  if (!sd || sd->kind != Kind::kDict)
    fail(Code::kInvalidArgument, where + ": " + (sd ? kind_name(sd->kind) : "nothing") +
                                     ", expected an optimizer state_dict (a dict)");
  ValuePtr groups = required(sd, "param_groups", where);
  ValuePtr state = required(sd, "state", where);
  if (groups->kind != Kind::kList)
    fail(Code::kInvalidArgument,
         key_path(where, "param_groups") + ": " + kind_name(groups->kind) + ", expected a list");
  if (state->kind != Kind::kDict)
    fail(Code::kInvalidArgument,
         key_path(where, "state") + ": " + kind_name(state->kind) + ", expected a dict");
  const auto& ogroups = opt.param_groups();
  if (groups->items.size() != ogroups.size())
    fail(Code::kInvalidArgument,
         key_path(where, "param_groups") + ": " + std::to_string(groups->items.size()) +
                                     " groups in the checkpoint, the " + codec.name +
                                     " optimizer has " + std::to_string(ogroups.size()));

  StagedLoad out;
  out.opt = &opt;
  // Python's index -> (group, parameter), from the saved params lists (as Python's
  // load_state_dict pairs them: saved group i's j-th id with the optimizer's group i's j-th).
  std::map<int64_t, std::pair<size_t, size_t>> where_is;
  for (size_t gi = 0; gi < ogroups.size(); ++gi) {
    std::string gw = index_path(key_path(where, "param_groups"), gi);
    const ValuePtr& pg = groups->items[gi];
    if (pg->kind != Kind::kDict)
      fail(Code::kInvalidArgument, gw + ": " + kind_name(pg->kind) + ", expected a dict");
    ValuePtr params = required(pg, "params", gw);
    if (params->kind != Kind::kList && params->kind != Kind::kTuple)
      fail(Code::kInvalidArgument,
           key_path(gw, "params") + ": " + kind_name(params->kind) + ", expected a list");
    if (params->items.size() != ogroups[gi].params().size())
      fail(Code::kInvalidArgument,
           key_path(gw, "params") + ": " + std::to_string(params->items.size()) +
                                       " parameters in the checkpoint, the optimizer's group has " +
                                       std::to_string(ogroups[gi].params().size()));
    for (size_t pi = 0; pi < params->items.size(); ++pi) {
      const ValuePtr& id = params->items[pi];
      if (id->kind != Kind::kInt)
        fail(Code::kInvalidArgument, index_path(key_path(gw, "params"), pi) + ": " +
                                         kind_name(id->kind) + ", expected an int");
      if (!where_is.emplace(id->i, std::make_pair(gi, pi)).second)
        fail(Code::kInvalidArgument,
             key_path(gw, "params") + ": parameter " + std::to_string(id->i) + " listed twice");
    }
    out.options.push_back(group_options(codec, ogroups[gi], pg, r, gw));
  }

  for (const auto& [k, s] : state->entries) {
    if (k->kind != Kind::kInt)
      fail(Code::kInvalidArgument,
           key_path(where, "state") + ": a " + std::string(kind_name(k->kind)) +
                                       " key, expected parameter indices");
    auto it = where_is.find(k->i);
    if (it == where_is.end()) continue;  // Python keeps it but no parameter ever reads it
    std::string sw = index_path(key_path(where, "state"), k->i);
    if (s->kind != Kind::kDict)
      fail(Code::kInvalidArgument, sw + ": " + kind_name(s->kind) + ", expected a dict");
    if (s->entries.empty()) continue;
    auto [gi, pi] = it->second;
    const torch::Tensor& p = ogroups[gi].params()[pi];
    if (auto st = codec.read_state(*out.options[gi], optim_codec::StateReader{s, p, r, sw}))
      out.states.emplace_back(p, std::move(st));
  }

  if (codec.fresh_state) {
    // The class expects state for every parameter: start the ones the checkpoint has none
    // for as its constructor does.
    std::unordered_set<const c10::TensorImpl*> has;
    for (const auto& [q, st] : out.states) has.insert(q.unsafeGetTensorImpl());
    for (size_t gi = 0; gi < ogroups.size(); ++gi)
      for (const auto& p : ogroups[gi].params())
        if (!has.count(p.unsafeGetTensorImpl()))
          out.states.emplace_back(p, codec.fresh_state(*out.options[gi], p));
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
  const Codec& codec = codec_of(opt);
  const auto& state = opt.state();
  auto states = Value::dict();
  auto groups = Value::list();
  int64_t index = 0;
  for (const auto& g : opt.param_groups()) {
    auto group = Value::dict();
    codec.write_group(g.options(), group);
    auto params = Value::list();
    for (const auto& p : g.params()) {
      auto it = state.find(state_key(p));
      if (it != state.end() && it->second) {
        auto st = Value::dict();
        codec.write_state(*it->second, optim_codec::StateWriter{st, builder});
        states->entries.emplace_back(Value::integer(index), st);
      }
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
