// load_state_dict with PyTorch's semantics (torch/nn/modules/module.py), for C++ modules.
#include <regex>
#include <sstream>
#include <unordered_map>

#include "ckptio/torch.h"
#include "host/torch/load_state_dict_core.h"

namespace ckptio {
namespace {

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "torch.Size([";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "])";
}

// Python's state_dict order: each module's own parameters, then its buffers, then children.
void collect(const torch::nn::Module& m, const std::string& prefix,
             std::vector<std::pair<std::string, torch::Tensor>>& out) {
  for (const auto& p : m.named_parameters(/*recurse=*/false))
    if (p.value().defined()) out.emplace_back(prefix + p.key(), p.value());
  for (const auto& b : m.named_buffers(/*recurse=*/false))
    if (b.value().defined()) out.emplace_back(prefix + b.key(), b.value());
  for (const auto& c : m.named_children()) collect(*c.value(), prefix + c.key() + ".", out);
}

std::string transform_key(std::string key, const LoadStateDictOptions& o,
                          const std::vector<std::pair<std::regex, std::string>>& renames) {
  for (const auto& p : o.strip_prefixes)
    if (!p.empty() && key.rfind(p, 0) == 0) {
      key = key.substr(p.size());
      break;
    }
  for (const auto& [re, rep] : renames) key = std::regex_replace(key, re, rep);
  return o.add_prefix + key;
}

std::string class_name(const torch::nn::Module& m) {
  std::string n = m.name();
  auto pos = n.rfind("::");
  return pos == std::string::npos ? n : n.substr(pos + 2);
}

}  // namespace

std::string Mismatch::message() const {
  if (!checkpoint_dtype.empty())
    return "dtype mismatch for " + key + ": checkpoint has " + checkpoint_dtype +
           ", the model has " + model_dtype + " (DTypePolicy::kRefuse)";
  return "size mismatch for " + key + ": copying a param with shape " +
         shape_text(checkpoint_shape) + " from checkpoint, the shape in current model is " +
         shape_text(model_shape) + ".";
}

LoadStateDictReport load_state_dict(torch::nn::Module& module, const StateDict& state,
                                    const LoadStateDictOptions& options) {
  std::vector<std::pair<std::string, torch::Tensor>> model;
  collect(module, "", model);
  return detail::load_state_dict_into(model, class_name(module), state, options);
}

LoadStateDictReport load_state_dict(torch::nn::Module& module, const std::string& path,
                                    const StateDictFileOptions& options) {
  std::vector<std::pair<std::string, torch::Tensor>> model;
  collect(module, "", model);
  return detail::load_state_dict_from_file(model, class_name(module), path, options);
}

namespace detail {

LoadStateDictReport plan_state_dict_load(
    const std::vector<std::pair<std::string, torch::Tensor>>& model,
    const std::string& module_class, const StateDict& state, const LoadStateDictOptions& options,
    std::vector<PlannedCopy>& plan) {
  std::vector<std::pair<std::regex, std::string>> renames;
  for (const auto& [pattern, rep] : options.renames) {
    try {
      renames.emplace_back(std::regex(pattern), rep);
    } catch (const std::regex_error& e) {
      throw Error(Code::kInvalidArgument, "rename pattern '" + pattern + "': " + e.what());
    }
  }
  std::unordered_map<std::string, size_t> ckpt;  // key after the rules -> index in `state`
  std::vector<std::string> ckpt_order;
  for (size_t i = 0; i < state.size(); ++i) {
    std::string k = transform_key(state[i].key(), options, renames);
    if (!ckpt.emplace(k, i).second)
      throw Error(Code::kInvalidArgument,
                  "two checkpoint keys map to '" + k + "' after prefix and rename rules");
    ckpt_order.push_back(k);
  }
  LoadStateDictReport report;
  plan.clear();
  std::unordered_map<std::string, bool> in_model;
  for (const auto& [key, dst] : model) {
    in_model[key] = true;
    auto it = ckpt.find(key);
    if (it == ckpt.end()) {
      report.missing_keys.push_back(key);
      continue;
    }
    torch::Tensor src = state[it->second].value();
    // PyTorch's backward-compatibility rule: a 0-dim parameter accepts a 1-element vector.
    if (dst.dim() == 0 && src.dim() == 1 && src.numel() == 1) src = src[0];
    if (src.sizes() != dst.sizes()) {
      report.mismatched.push_back(Mismatch{key, src.sizes().vec(), dst.sizes().vec(), "", ""});
      continue;
    }
    if (src.scalar_type() != dst.scalar_type()) {
      if (options.dtype_policy == DTypePolicy::kRefuse) {
        report.mismatched.push_back(Mismatch{key, src.sizes().vec(), dst.sizes().vec(),
                                             c10::toString(src.scalar_type()),
                                             c10::toString(dst.scalar_type())});
        continue;
      }
      report.dtype_casts.push_back(key);
    }
    plan.push_back(PlannedCopy{dst, src, it->second, key});
  }
  for (const auto& k : ckpt_order)
    if (!in_model.count(k)) report.unexpected_keys.push_back(k);

  if (options.strict && !report.ok()) {
    std::ostringstream msg;
    msg << "Error(s) in loading state_dict for " << module_class << ":";
    auto list = [&](const char* what, const std::vector<std::string>& keys) {
      if (keys.empty()) return;
      msg << "\n\t" << what << " key(s) in state_dict: ";
      for (size_t i = 0; i < keys.size(); ++i) msg << (i ? ", " : "") << '"' << keys[i] << '"';
      msg << ". ";
    };
    list("Missing", report.missing_keys);
    list("Unexpected", report.unexpected_keys);
    for (const auto& m : report.mismatched) msg << "\n\t" << m.message();
    throw Error(Code::kInvalidArgument, msg.str());
  }
  return report;
}

void apply_planned_copy(const PlannedCopy& c, bool assign) {
  torch::NoGradGuard no_grad;
  try {
    if (assign) {
      // Share the checkpoint's storage when it already has the module tensor's dtype and
      // device (no copy); otherwise convert first.
      torch::Tensor s = c.src.to(c.dst.device(), c.dst.scalar_type());
      c.dst.set_(s);
    } else {
      c.dst.copy_(c.src);
    }
  } catch (const c10::Error& e) {
    // LibTorch refuses some copies: a module made under InferenceMode, a cast it has no
    // kernel for (2.x's bits and sub-byte dtypes). The caller's promise is ckptio::Error.
    std::string why = e.what_without_backtrace();
    why = why.substr(0, why.find('\n'));
    throw Error(Code::kUnsupported, "'" + c.key + "': LibTorch cannot " +
                                        (assign ? "assign" : "copy") + " the checkpoint's " +
                                        c10::toString(c.src.scalar_type()) +
                                        " tensor into the module's " +
                                        c10::toString(c.dst.scalar_type()) + " tensor: " + why);
  }
}

LoadStateDictReport load_state_dict_into(
    const std::vector<std::pair<std::string, torch::Tensor>>& model,
    const std::string& module_class, const StateDict& state, const LoadStateDictOptions& options) {
  std::vector<PlannedCopy> plan;
  LoadStateDictReport report = plan_state_dict_load(model, module_class, state, options, plan);
  for (size_t k = 0; k < plan.size(); ++k) {
    try {
      apply_planned_copy(plan[k], options.assign);
    } catch (const Error& e) {
      throw Error(e.code(), std::string(e.what()) + (k ? " (the module may now be partly loaded)"
                                                       : " (nothing was written to the module)"));
    }
  }
  return report;
}

}  // namespace detail
}  // namespace ckptio
