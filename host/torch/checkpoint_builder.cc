// Torch values -> a Checkpoint (value tree + storage bytes) that any plugin can write.
#include <unordered_map>

#include "ckptio/torch.h"
#include "cuda_bridge.h"
#include "dtype_map.h"

namespace ckptio {

struct CheckpointBuilder::Impl {
  Checkpoint ckpt;
  std::unordered_map<const c10::StorageImpl*, uint32_t> index;  // one entry per storage
  // CUDA storages whose host copies are taken together, through the pinned ring, at finish().
  std::vector<c10::Storage> cuda_sources;
  std::vector<void*> cuda_copies;

  uint32_t storage_of(const torch::Tensor& t) {
    const c10::Storage& s = t.storage();
    auto it = index.find(s.unsafeGetStorageImpl());
    if (it != index.end()) return it->second;
    uint32_t i = static_cast<uint32_t>(ckpt.tree.storages.size());
    uint64_t nbytes = s.nbytes();
    ckpt.tree.storages.push_back(StorageInfo{std::to_string(i),
                                             torch_adapter::from_scalar_type(t.scalar_type()),
                                             nbytes, t.device().str()});
    // The bytes: CPU storages are aliased (kept alive by the holder); others are copied to
    // host once, whole, so every view of the storage reads the same copy. CUDA storages go
    // through libckptio_cuda's pinned ring, all at once, when the checkpoint is finished.
    torch::Tensor whole = torch::empty({0}, t.options().dtype(torch::kUInt8));
    whole.set_(s, 0, {static_cast<int64_t>(nbytes)}, {1});
    if (whole.is_cuda() && nbytes > 0 && torch_adapter::cuda_path_available()) {
      cuda_sources.push_back(s);
      whole = torch::empty({static_cast<int64_t>(nbytes)}, torch::kUInt8);
      cuda_copies.push_back(whole.data_ptr());
    } else if (!whole.is_cpu()) {
      whole = whole.cpu();
    }
    auto holder = std::make_shared<torch::Tensor>(whole);
    ckpt.storages.push_back(
        StorageBytes{static_cast<const uint8_t*>(whole.data_ptr()), nbytes, holder, false});
    index.emplace(s.unsafeGetStorageImpl(), i);
    return i;
  }
};

CheckpointBuilder::CheckpointBuilder() : impl_(std::make_unique<Impl>()) {}
CheckpointBuilder::~CheckpointBuilder() = default;

ValuePtr CheckpointBuilder::tensor(const torch::Tensor& t, bool as_parameter) {
  if (!t.defined()) return Value::none();
  if (t.is_sparse() || t.is_quantized() || t.is_mkldnn())
    throw Error(Code::kUnsupported, "only dense strided tensors can be saved");
  TensorMeta m;
  m.dtype = torch_adapter::from_scalar_type(t.scalar_type());
  m.shape = t.sizes().vec();
  m.strides = t.strides().vec();
  m.storage_offset = t.storage_offset();
  m.requires_grad = t.requires_grad();
  m.is_parameter = as_parameter;
  m.storage = impl_->storage_of(t);
  return Value::make_tensor(std::move(m));
}

ValuePtr CheckpointBuilder::state_dict(const StateDict& sd) {
  auto d = Value::dict(/*ordered=*/true);
  for (const auto& item : sd)
    d->entries.emplace_back(Value::str(item.key()), tensor(item.value().detach()));
  return d;
}

ValuePtr CheckpointBuilder::module(const torch::nn::Module& m) {
  // Keys and order as Python's Module.state_dict(): own parameters, own buffers, children.
  auto d = Value::dict(/*ordered=*/true);
  auto metadata = Value::dict(/*ordered=*/true);
  std::function<void(const torch::nn::Module&, const std::string&)> walk =
      [&](const torch::nn::Module& mod, const std::string& prefix) {
        auto version = Value::dict();
        // PyTorch bumps _version only for modules whose state layout changed (BatchNorm: 2).
        bool batch_norm = mod.name().find("BatchNorm") != std::string::npos;
        version->entries.emplace_back(Value::str("version"), Value::integer(batch_norm ? 2 : 1));
        metadata->entries.emplace_back(
            Value::str(prefix.empty() ? "" : prefix.substr(0, prefix.size() - 1)), version);
        for (const auto& p : mod.named_parameters(false))
          if (p.value().defined())
            d->entries.emplace_back(Value::str(prefix + p.key()), tensor(p.value().detach()));
        for (const auto& b : mod.named_buffers(false))
          if (b.value().defined())
            d->entries.emplace_back(Value::str(prefix + b.key()), tensor(b.value().detach()));
        for (const auto& c : mod.named_children()) walk(*c.value(), prefix + c.key() + ".");
      };
  walk(m, "");
  auto attrs = Value::dict();
  attrs->entries.emplace_back(Value::str("_metadata"), metadata);
  d->attrs = attrs;
  return d;
}

ValuePtr CheckpointBuilder::ivalue(const c10::IValue& v) {
  if (v.isNone()) return Value::none();
  if (v.isBool()) return Value::boolean(v.toBool());
  if (v.isInt()) return Value::integer(v.toInt());
  if (v.isDouble()) return Value::floating(v.toDouble());
  if (v.isString()) return Value::str(v.toStringRef());
  if (v.isTensor()) return tensor(v.toTensor());
  if (v.isTuple()) {
    auto t = Value::tuple();
    for (const auto& e : v.toTupleRef().elements()) t->items.push_back(ivalue(e));
    return t;
  }
  if (v.isList()) {
    auto l = Value::list();
    for (const c10::IValue& e : v.toListRef()) l->items.push_back(ivalue(e));
    return l;
  }
  if (v.isGenericDict()) {
    auto d = Value::dict();
    for (const auto& e : v.toGenericDict())
      d->entries.emplace_back(ivalue(e.key()), ivalue(e.value()));
    return d;
  }
  throw Error(Code::kUnsupported, "cannot save an IValue of type " + v.tagKind());
}

Checkpoint CheckpointBuilder::finish(ValuePtr root) {
  if (!impl_->cuda_sources.empty())
    torch_adapter::copy_cuda_storages_to_host(impl_->cuda_sources, impl_->cuda_copies);
  impl_->ckpt.tree.root = std::move(root);
  Checkpoint out = std::move(impl_->ckpt);
  impl_ = std::make_unique<Impl>();
  return out;
}

ValuePtr module_state_dict_value(const torch::nn::Module& module) {
  CheckpointBuilder b;
  return b.module(module);
}

void save(const std::string& path, const torch::nn::Module& module, const SaveOptions& options) {
  CheckpointBuilder b;
  save(path, b.finish(b.module(module)), options);
}

void save(const std::string& path, const StateDict& state, const SaveOptions& options) {
  CheckpointBuilder b;
  save(path, b.finish(b.state_dict(state)), options);
}

void save(const std::string& path, const c10::IValue& value, const SaveOptions& options) {
  CheckpointBuilder b;
  save(path, b.finish(b.ivalue(value)), options);
}

}  // namespace ckptio

namespace ckptio {

Checkpoint snapshot(const torch::nn::Module& module) {
  CheckpointBuilder b;
  return snapshot(b.finish(b.module(module)));
}

Checkpoint snapshot(const StateDict& state) {
  CheckpointBuilder b;
  return snapshot(b.finish(b.state_dict(state)));
}

}  // namespace ckptio
