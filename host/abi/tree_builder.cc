#include "host/abi/tree_builder.h"

#include "host/abi/c_status.h"

namespace ckptio::host {
namespace {
constexpr uint32_t kMaxDims = 64;
}  // namespace

TreeBuilder::TreeBuilder() {
  builder_.struct_size = sizeof builder_;
  builder_.ctx = this;
  builder_.add_storage = cb_add_storage;
  builder_.scalar = cb_scalar;
  builder_.begin = cb_begin;
  builder_.end = cb_end;
  builder_.tensor = cb_tensor;
  builder_.share = cb_share;
  builder_.ref = cb_ref;
}

#define CKPTIO_BUILDER_CALL(expr)                            \
  auto* self = static_cast<TreeBuilder*>(ctx);              \
  if (!self->error_.ok()) return make_c_status(self->error_); \
  Status st = (expr);                                        \
  if (!st.ok()) self->error_ = st;                           \
  return make_c_status(st)

ckptio_status TreeBuilder::cb_add_storage(void* ctx, const ckptio_storage_desc* d) {
  CKPTIO_BUILDER_CALL(self->add_storage(d));
}
ckptio_status TreeBuilder::cb_scalar(void* ctx, int32_t kind, int64_t i, double f,
                                     const char* text, size_t len) {
  auto make = [&]() -> Result<ValuePtr> {
    std::string s = text ? std::string(text, len) : std::string();
    switch (kind) {
      case CKPTIO_NONE: return Value::none();
      case CKPTIO_BOOL: return Value::boolean(i != 0);
      case CKPTIO_INT: return Value::integer(i);
      case CKPTIO_BIGINT: return Value::big_integer(std::move(s));
      case CKPTIO_FLOAT: return Value::floating(f);
      case CKPTIO_STR: return Value::str(std::move(s));
      case CKPTIO_BYTES: return Value::bytes(std::move(s));
      case CKPTIO_GLOBAL: return Value::global(std::move(s));
      default: return Status(Code::kInternal, "plugin emitted unknown scalar kind " +
                                                  std::to_string(kind));
    }
  };
  auto* self = static_cast<TreeBuilder*>(ctx);
  if (!self->error_.ok()) return make_c_status(self->error_);
  auto v = make();
  Status st = v.ok() ? self->add(v.value()) : v.status();
  if (!st.ok()) self->error_ = st;
  return make_c_status(st);
}
ckptio_status TreeBuilder::cb_begin(void* ctx, int32_t kind, uint64_t count, const char* name,
                                    size_t len, uint32_t flags) {
  CKPTIO_BUILDER_CALL(self->begin(kind, count, name, len, flags));
}
ckptio_status TreeBuilder::cb_end(void* ctx) { CKPTIO_BUILDER_CALL(self->end()); }
ckptio_status TreeBuilder::cb_tensor(void* ctx, const ckptio_tensor_desc* d) {
  CKPTIO_BUILDER_CALL(self->tensor(d));
}
ckptio_status TreeBuilder::cb_share(void* ctx, uint64_t id) { CKPTIO_BUILDER_CALL(self->share(id)); }
ckptio_status TreeBuilder::cb_ref(void* ctx, uint64_t id) { CKPTIO_BUILDER_CALL(self->ref(id)); }

Status TreeBuilder::add_storage(const ckptio_storage_desc* d) {
  if (root_set_ || !stack_.empty())
    return Status(Code::kInternal, "plugin added a storage after the tree started");
  auto dtype = dtype_from_code(d->dtype);
  if (!dtype)
    return Status(Code::kInternal, "plugin declared storage with unknown dtype code " +
                                       std::to_string(d->dtype));
  tree_.storages.push_back(
      StorageInfo{d->key ? d->key : std::to_string(tree_.storages.size()), *dtype, d->nbytes,
                  d->device ? d->device : "cpu"});
  offsets_.push_back(d->file_offset);
  // A version-1 plugin's smaller struct has no member: its bytes are in the source.
  members_.push_back(CKPTIO_HAS_FIELD(d, ckptio_storage_desc, member) ? d->member : 0);
  return Status::Ok();
}

void TreeBuilder::register_shared(const ValuePtr& v) {
  if (pending_share_) {
    shared_[pending_share_] = v;
    pending_share_ = 0;
  }
}

Status TreeBuilder::add(ValuePtr v) {
  register_shared(v);
  if (stack_.empty()) {
    if (root_set_) return Status(Code::kInternal, "plugin emitted more than one root value");
    tree_.root = std::move(v);
    root_set_ = true;
    return Status::Ok();
  }
  Frame& f = stack_.back();
  if (f.expected == 0)
    return Status(Code::kInternal, std::string("plugin emitted too many children for a ") +
                                       kind_name(f.node->kind));
  --f.expected;
  Value& n = *f.node;
  switch (n.kind) {
    case Kind::kList:
    case Kind::kTuple:
      n.items.push_back(std::move(v));
      break;
    case Kind::kDict:
      if (n.attrs == nullptr && f.expected == 0 && f.pending_key == nullptr &&
          f.slot == 1) {
        n.attrs = std::move(v);  // the attrs child of a HAS_ATTRS dict
      } else if (!f.pending_key) {
        f.pending_key = std::move(v);
      } else {
        n.entries.emplace_back(std::move(f.pending_key), std::move(v));
        f.pending_key = nullptr;
      }
      break;
    case Kind::kObject:
      if (f.slot == 0 && !n.args) {
        n.args = std::move(v);
      } else {
        n.state = std::move(v);
      }
      break;
    default:
      return Status(Code::kInternal, "plugin added a child to a scalar");
  }
  return Status::Ok();
}

Status TreeBuilder::begin(int32_t kind, uint64_t count, const char* name, size_t len,
                          uint32_t flags) {
  if (stack_.size() >= kMaxTreeDepth)
    return Status(Code::kLimit, "value tree nested deeper than " + std::to_string(kMaxTreeDepth));
  ValuePtr v;
  uint64_t expected = count;
  int slot = 0;
  switch (kind) {
    case CKPTIO_LIST: v = Value::list(); break;
    case CKPTIO_TUPLE: v = Value::tuple(); break;
    case CKPTIO_DICT: {
      v = Value::dict(flags & CKPTIO_DICT_ORDERED);
      if (count > (UINT64_MAX - 1) / 2) return Status(Code::kInternal, "dict too large");
      expected = 2 * count;
      if (flags & CKPTIO_DICT_HAS_ATTRS) {
        ++expected;
        slot = 1;  // marks that the last child is the attrs dict
      }
      break;
    }
    case CKPTIO_OBJECT: {
      v = Value::object(name ? std::string(name, len) : std::string(), nullptr);
      bool has_args = flags & CKPTIO_OBJECT_HAS_ARGS;
      expected = (has_args ? 1 : 0) + ((flags & CKPTIO_OBJECT_HAS_STATE) ? 1 : 0);
      slot = has_args ? 0 : 1;
      break;
    }
    default:
      return Status(Code::kInternal, "plugin began unknown container kind " +
                                         std::to_string(kind));
  }
  // Reserve nothing from `count`: it is the plugin's claim, not memory we have checked.
  register_shared(v);
  open_[v.get()] = true;
  stack_.push_back(Frame{v, expected, nullptr, slot});
  return Status::Ok();
}

Status TreeBuilder::end() {
  if (stack_.empty()) return Status(Code::kInternal, "plugin ended a container never begun");
  Frame f = std::move(stack_.back());
  stack_.pop_back();
  if (f.expected != 0 || f.pending_key)
    return Status(Code::kInternal, std::string("plugin ended a ") + kind_name(f.node->kind) +
                                       " before all its declared children");
  open_.erase(f.node.get());
  ValuePtr node = std::move(f.node);
  // add() would re-register a pending share meant for the next node; containers were
  // registered at begin().
  uint64_t pending = pending_share_;
  pending_share_ = 0;
  Status st = add(std::move(node));
  pending_share_ = pending;
  return st;
}

Status TreeBuilder::tensor(const ckptio_tensor_desc* d) {
  auto dtype = dtype_from_code(d->dtype);
  if (!dtype)
    return Status(Code::kInternal, "plugin emitted tensor with unknown dtype code " +
                                       std::to_string(d->dtype));
  if (d->ndim > kMaxDims)
    return Status(Code::kLimit, "tensor with " + std::to_string(d->ndim) + " dimensions");
  if (d->ndim && (!d->shape || !d->strides))
    return Status(Code::kInternal, "plugin emitted tensor without shape or strides");
  TensorMeta m;
  m.dtype = *dtype;
  m.shape.assign(d->shape, d->shape + d->ndim);
  m.strides.assign(d->strides, d->strides + d->ndim);
  m.storage_offset = d->storage_offset;
  m.storage = d->storage;
  m.requires_grad = d->flags & CKPTIO_TENSOR_REQUIRES_GRAD;
  m.is_parameter = d->flags & CKPTIO_TENSOR_PARAMETER;
  m.is_storage = d->flags & CKPTIO_TENSOR_STORAGE;
  m.conj = d->flags & CKPTIO_TENSOR_CONJ;
  m.neg = d->flags & CKPTIO_TENSOR_NEG;
  if (!tensor_view_fits(m, tree_.storages)) return check_tensor_view(m, tree_.storages, "tensor");
  return add(Value::make_tensor(std::move(m)));
}

Status TreeBuilder::share(uint64_t id) {
  if (id == 0 || shared_.count(id))
    return Status(Code::kInternal, "plugin reused shared node id " + std::to_string(id));
  pending_share_ = id;
  return Status::Ok();
}

Status TreeBuilder::ref(uint64_t id) {
  auto it = shared_.find(id);
  if (it == shared_.end())
    return Status(Code::kInternal, "plugin referenced unknown node id " + std::to_string(id));
  if (open_.count(it->second.get()))
    return Status(Code::kUnsupported,
                  "the file contains a container that includes itself (a reference cycle)");
  ValuePtr v = it->second;
  uint64_t pending = pending_share_;
  pending_share_ = 0;
  Status st = add(std::move(v));
  pending_share_ = pending;
  return st;
}

Result<Tree> TreeBuilder::finish() {
  if (!error_.ok()) return error_;
  if (!stack_.empty()) return Status(Code::kInternal, "plugin left containers open");
  if (!root_set_) return Status(Code::kInternal, "plugin emitted no value");
  return std::move(tree_);
}

}  // namespace ckptio::host
