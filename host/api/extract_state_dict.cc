#include "host/api/extract_state_dict.h"

#include <set>

namespace ckptio::host {
namespace {

constexpr size_t kMaxEntries = 10'000'000;

bool is_module(const ValuePtr& v) {
  return v && v->kind == Kind::kObject && v->state && v->state->kind == Kind::kDict &&
         v->state->get("_parameters") && v->state->get("_modules");
}

std::string describe(const ValuePtr& v) {
  if (!v) return "nothing";
  if (v->kind == Kind::kObject) return "an object of class " + v->s;
  return std::string("a ") + kind_name(v->kind);
}

class Extractor {
 public:
  explicit Extractor(ValuePtr out) : out_(std::move(out)) {}

  Status module(const ValuePtr& m, const std::string& prefix, size_t depth) {
    if (depth > kMaxTreeDepth) return Status(Code::kLimit, "modules nested too deeply");
    const ValuePtr& state = m->state;
    std::set<std::string> non_persistent;
    if (ValuePtr s = state->get("_non_persistent_buffers_set");
        s && s->kind == Kind::kObject && s->args && !s->args->items.empty())
      for (const ValuePtr& name : s->args->items.front()->items)
        if (name->kind == Kind::kStr) non_persistent.insert(name->s);
    for (const char* group : {"_parameters", "_buffers"}) {
      ValuePtr d = state->get(group);
      if (!d) continue;
      if (d->kind != Kind::kDict)
        return Status(Code::kInvalidArgument, "module '" + where(prefix) + "': " + group + " is " +
                                                  describe(d) + ", not a dict");
      const bool buffers = group[1] == 'b';
      for (const auto& [k, v] : d->entries) {
        if (k->kind != Kind::kStr)
          return Status(Code::kInvalidArgument,
                        "module '" + where(prefix) + "': a " + group + " key is not a string");
        if (v->kind == Kind::kNone || (buffers && non_persistent.count(k->s))) continue;
        if (v->kind != Kind::kTensor)
          return Status(Code::kInvalidArgument,
                        "'" + prefix + k->s + "' is " + describe(v) + ", not a tensor");
        if (++entries_ > kMaxEntries)
          return Status(Code::kLimit,
                        "the state_dict has more than 10,000,000 entries "
                        "(a shared sub-module expanded exponentially?)");
        TensorMeta t = v->tensor;
        t.is_parameter = false;  // state_dict() holds detached tensors
        t.requires_grad = false;
        out_->entries.emplace_back(Value::str(prefix + k->s), Value::make_tensor(std::move(t)));
      }
    }
    ValuePtr children = state->get("_modules");
    if (children->kind != Kind::kDict)
      return Status(Code::kInvalidArgument,
                    "module '" + where(prefix) + "': _modules is " + describe(children));
    for (const auto& [k, child] : children->entries) {
      if (k->kind != Kind::kStr)
        return Status(Code::kInvalidArgument,
                      "module '" + where(prefix) + "': a _modules key is not a string");
      if (child->kind == Kind::kNone) continue;
      if (!is_module(child))
        return Status(Code::kInvalidArgument, "sub-module '" + prefix + k->s + "' is " +
                                                  describe(child) + ", not a module");
      CKPTIO_RETURN_IF_ERROR(module(child, prefix + k->s + ".", depth + 1));
    }
    return Status::Ok();
  }

 private:
  static std::string where(const std::string& prefix) {
    return prefix.empty() ? "<root>" : prefix.substr(0, prefix.size() - 1);
  }
  ValuePtr out_;
  size_t entries_ = 0;
};

}  // namespace

Result<Tree> extract_state_dict(const Tree& tree) {
  if (!is_module(tree.root))
    return Status(Code::kInvalidArgument,
                  "cannot extract a state_dict: the root is " + describe(tree.root) +
                      ", not a torch.nn.Module object (a whole-model torch.save read with "
                      "--allow-objects)");
  Tree out;
  out.root = Value::dict(/*ordered=*/true);
  out.storages = tree.storages;
  Extractor x(out.root);
  CKPTIO_RETURN_IF_ERROR(x.module(tree.root, "", 0));
  return out;
}

Checkpoint extract_state_dict(const Checkpoint& ckpt) {
  auto t = extract_state_dict(ckpt.tree);
  if (!t.ok()) throw Error(t.status().with_context(ckpt.path));
  Checkpoint out = ckpt;
  out.tree = std::move(t).value();
  return out;
}

}  // namespace ckptio::host

namespace ckptio {
Checkpoint extract_state_dict(const Checkpoint& ckpt) { return host::extract_state_dict(ckpt); }
}  // namespace ckptio
