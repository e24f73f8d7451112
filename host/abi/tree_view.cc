#include "host/abi/tree_view.h"

#include <cstring>

#include "host/abi/c_status.h"

namespace ckptio::host {
namespace {

const Value& node(ckptio_node n) { return *reinterpret_cast<const Value*>(n); }
ckptio_node handle(const ValuePtr& v) { return reinterpret_cast<ckptio_node>(v.get()); }
const TreeView& self(void* ctx) { return *static_cast<const TreeView*>(ctx); }

}  // namespace

TreeView::TreeView(const Checkpoint& ckpt, std::function<void(uint64_t)> on_bytes)
    : ckpt_(ckpt), on_bytes_(std::move(on_bytes)) {
  tree_.struct_size = sizeof tree_;
  tree_.ctx = this;
  tree_.root = handle(ckpt.tree.root);
  tree_.storage_count = static_cast<uint32_t>(ckpt.tree.storages.size());
  tree_.storage = storage;
  tree_.storage_data = storage_data;
  tree_.read_storage = read_storage;
  tree_.kind = kind;
  tree_.flags = flags;
  tree_.int_value = int_value;
  tree_.float_value = float_value;
  tree_.text = text;
  tree_.child_count = child_count;
  tree_.child = child;
  tree_.tensor = tensor;
}

void TreeView::storage(void* ctx, uint32_t i, ckptio_storage_desc* out) {
  const StorageInfo& s = self(ctx).ckpt_.tree.storages.at(i);
  out->dtype = static_cast<int32_t>(s.dtype);
  out->key = s.key.c_str();
  out->device = s.device.c_str();
  out->nbytes = s.nbytes;
  out->file_offset = CKPTIO_NOT_PLAIN;
}

const void* TreeView::storage_data(void* ctx, uint32_t i) {
  const TreeView& v = self(ctx);
  if (i >= v.ckpt_.storages.size()) return nullptr;
  const StorageBytes& b = v.ckpt_.storages[i];
  if (b.data && v.on_bytes_) v.on_bytes_(b.size);
  return b.data;
}

ckptio_status TreeView::read_storage(void* ctx, uint32_t i, uint64_t off, void* dst,
                                     uint64_t n) {
  const TreeView& v = self(ctx);
  if (i >= v.ckpt_.storages.size() || !v.ckpt_.storages[i].data)
    return make_c_status(Status(Code::kInvalidArgument, "storage " + std::to_string(i) +
                                                            " has no bytes loaded"));
  const StorageBytes& b = v.ckpt_.storages[i];
  if (off > b.size || n > b.size - off)
    return make_c_status(Status(Code::kInvalidArgument, "read_storage out of range"));
  std::memcpy(dst, b.data + off, n);
  if (v.on_bytes_) v.on_bytes_(n);
  return nullptr;
}

int32_t TreeView::kind(void*, ckptio_node n) {
  switch (node(n).kind) {
    case Kind::kNone: return CKPTIO_NONE;
    case Kind::kBool: return CKPTIO_BOOL;
    case Kind::kInt: return CKPTIO_INT;
    case Kind::kBigInt: return CKPTIO_BIGINT;
    case Kind::kFloat: return CKPTIO_FLOAT;
    case Kind::kStr: return CKPTIO_STR;
    case Kind::kBytes: return CKPTIO_BYTES;
    case Kind::kList: return CKPTIO_LIST;
    case Kind::kTuple: return CKPTIO_TUPLE;
    case Kind::kDict: return CKPTIO_DICT;
    case Kind::kTensor: return CKPTIO_TENSOR;
    case Kind::kGlobal: return CKPTIO_GLOBAL;
    case Kind::kObject: return CKPTIO_OBJECT;
  }
  return CKPTIO_NONE;
}

uint32_t TreeView::flags(void*, ckptio_node n) {
  const Value& v = node(n);
  switch (v.kind) {
    case Kind::kBool: return v.b ? 1 : 0;
    case Kind::kDict:
      return (v.ordered ? CKPTIO_DICT_ORDERED : 0) | (v.attrs ? CKPTIO_DICT_HAS_ATTRS : 0);
    case Kind::kObject:
      return (v.args ? CKPTIO_OBJECT_HAS_ARGS : 0) | (v.state ? CKPTIO_OBJECT_HAS_STATE : 0);
    default: return 0;
  }
}

int64_t TreeView::int_value(void*, ckptio_node n) { return node(n).i; }
double TreeView::float_value(void*, ckptio_node n) { return node(n).f; }

const char* TreeView::text(void*, ckptio_node n, size_t* len) {
  const Value& v = node(n);
  if (len) *len = v.s.size();
  return v.s.data();
}

size_t TreeView::child_count(void*, ckptio_node n) {
  const Value& v = node(n);
  switch (v.kind) {
    case Kind::kList:
    case Kind::kTuple: return v.items.size();
    case Kind::kDict: return 2 * v.entries.size() + (v.attrs ? 1 : 0);
    case Kind::kObject: return (v.args ? 1 : 0) + (v.state ? 1 : 0);
    default: return 0;
  }
}

ckptio_node TreeView::child(void*, ckptio_node n, size_t i) {
  const Value& v = node(n);
  switch (v.kind) {
    case Kind::kList:
    case Kind::kTuple: return handle(v.items.at(i));
    case Kind::kDict:
      if (i == 2 * v.entries.size()) return handle(v.attrs);
      return handle(i % 2 ? v.entries.at(i / 2).second : v.entries.at(i / 2).first);
    case Kind::kObject:
      if (i == 0 && v.args) return handle(v.args);
      return handle(v.state);
    default: return nullptr;
  }
}

void TreeView::tensor(void*, ckptio_node n, ckptio_tensor_desc* out) {
  const TensorMeta& t = node(n).tensor;
  out->dtype = static_cast<int32_t>(t.dtype);
  out->ndim = static_cast<uint32_t>(t.shape.size());
  out->storage = t.storage;
  out->shape = t.shape.data();
  out->strides = t.strides.data();
  out->storage_offset = t.storage_offset;
  out->flags = (t.requires_grad ? CKPTIO_TENSOR_REQUIRES_GRAD : 0) |
               (t.is_parameter ? CKPTIO_TENSOR_PARAMETER : 0) |
               (t.is_storage ? CKPTIO_TENSOR_STORAGE : 0) | (t.conj ? CKPTIO_TENSOR_CONJ : 0) |
               (t.neg ? CKPTIO_TENSOR_NEG : 0);
}

}  // namespace ckptio::host
