// Loading into torch tensors: storages become c10 storages (one per file storage, so
// sharing survives), tensors are set_() views onto them, devices follow the placement plan.
#include <functional>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "ckptio/torch.h"
#include "cuda_bridge.h"
#include "dtype_map.h"
#include "host/io/progress_concat.h"
#include "host/torch/torch_checkpoint_impl.h"

namespace ckptio {
namespace {

bool glob_match(const char* pat, const char* s) {
  // Iterative '*'/'?' matcher with backtracking to the last star.
  const char* star = nullptr;
  const char* retry = nullptr;
  while (*s) {
    if (*pat == '?' || *pat == *s) {
      ++pat;
      ++s;
    } else if (*pat == '*') {
      star = pat++;
      retry = s;
    } else if (star) {
      pat = star + 1;
      s = ++retry;
    } else {
      return false;
    }
  }
  while (*pat == '*') ++pat;
  return *pat == '\0';
}

std::string key_text(const Value& k) {
  switch (k.kind) {
    case Kind::kStr:
    case Kind::kBigInt:  // decimal text
      return k.s;
    case Kind::kInt:
      return std::to_string(k.i);
    case Kind::kBool:
      return k.b ? "True" : "False";
    default:
      return "<" + std::string(kind_name(k.kind)) + ">";
  }
}

// Visits tensors under `v` with dotted paths (dict keys and list indices), each node once.
template <class Fn>
void visit(const ValuePtr& v, const std::string& path, std::unordered_set<const Value*>& seen,
           Fn& fn, int depth = 0) {
  if (!v || size_t(depth) > kMaxTreeDepth || !seen.insert(v.get()).second) return;
  switch (v->kind) {
    case Kind::kTensor:
      fn(v, path);
      break;
    case Kind::kList:
    case Kind::kTuple:
      for (size_t i = 0; i < v->items.size(); ++i)
        visit(v->items[i], dotted_path(path, std::to_string(i)), seen, fn, depth + 1);
      break;
    case Kind::kDict:
      for (const auto& [k, val] : v->entries)
        visit(val, dotted_path(path, key_text(*k)), seen, fn, depth + 1);
      break;
    default:
      break;
  }
}

}  // namespace

bool TorchCheckpoint::Impl::keep(const std::string& path) const {
  if (!options.filter_glob.empty() && !glob_match(options.filter_glob.c_str(), path.c_str()))
    return false;
  if (options.filter && !options.filter(path)) return false;
  return true;
}

c10::Storage TorchCheckpoint::Impl::storage(uint32_t index) {
  auto it = storages.find(index);
  if (it != storages.end()) return it->second;
  torch::Device device = placement.device(index);
  if (device.is_cuda()) {  // lazy tensors too go file -> pinned ring -> device when possible
    torch_adapter::load_cuda_storages(*reader, {index}, placement, options.base, storages);
    it = storages.find(index);
    if (it != storages.end()) return it->second;
  }
  StorageBytes bytes = reader->storage(index);
  auto owner = std::make_shared<StorageBytes>(bytes);
  auto* holder = new std::shared_ptr<StorageBytes>(owner);
  torch::Tensor base = torch::from_blob(
      const_cast<uint8_t*>(bytes.data), {static_cast<int64_t>(bytes.size)},
      [holder](void*) { delete holder; }, torch::TensorOptions().dtype(torch::kUInt8));
  if (!device.is_cpu()) base = base.to(device);  // once per storage: sharing survives
  c10::Storage s = base.storage();
  storages.emplace(index, s);
  return s;
}

torch::Tensor TorchCheckpoint::Impl::materialize(const ValuePtr& node) {
  auto it = tensors.find(node.get());
  if (it != tensors.end()) return it->second;
  const TensorMeta& m = node->tensor;
  c10::ScalarType st = torch_adapter::to_scalar_type(m.dtype, reader->path());
  c10::Storage s = storage(m.storage);
  torch::Tensor t = torch::empty({0}, torch::TensorOptions().dtype(st).device(s.device()));
  t.set_(s, m.storage_offset, m.shape, m.strides);
  if (m.requires_grad && c10::isFloatingType(st)) t.set_requires_grad(true);
  tensors.emplace(node.get(), t);
  return t;
}

std::vector<std::pair<std::string, ValuePtr>> TorchCheckpoint::Impl::entries(
    const ValuePtr& root) const {
  std::vector<std::pair<std::string, ValuePtr>> found;
  // A state_dict lists tied tensors under each name: visit per entry, not per node.
  std::function<void(const ValuePtr&, const std::string&, int)> go =
      [&](const ValuePtr& v, const std::string& path, int depth) {
        if (!v || size_t(depth) > kMaxTreeDepth) return;
        if (v->kind == Kind::kTensor) {
          found.emplace_back(path, v);
        } else if (v->kind == Kind::kDict) {
          for (const auto& [k, val] : v->entries)
            go(val, dotted_path(path, key_text(*k)), depth + 1);
        } else if (v->kind == Kind::kList || v->kind == Kind::kTuple) {
          for (size_t i = 0; i < v->items.size(); ++i)
            go(v->items[i], dotted_path(path, std::to_string(i)), depth + 1);
        }
      };
  go(root, "", 0);
  return found;
}

TorchCheckpoint::TorchCheckpoint(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

namespace {

TorchCheckpoint finish_load(const std::function<std::unique_ptr<Reader>(const LoadOptions&)>& open,
                            const TorchLoadOptions& options) {
  LoadOptions base = options.base;
  base.load_data = false;
  // CUDA-bound storages and host ones are separate reads, each counting from zero; the user
  // sees one sequence over both. (A lazy checkpoint's reads stay a sequence each.)
  std::shared_ptr<host::ProgressConcat> progress;
  if (!options.lazy && base.progress) {
    progress = std::make_shared<host::ProgressConcat>(base.progress, 0);
    base.progress = host::ProgressConcat::forwarder(progress);
  }
  auto impl = std::make_shared<TorchCheckpoint::Impl>();
  impl->reader = open(base);
  impl->options = options;
  impl->options.base.progress = base.progress;
  impl->filtered = !options.filter_glob.empty() || options.filter;
  std::vector<uint32_t> needed;
  std::unordered_set<uint32_t> needed_set;
  std::unordered_set<const Value*> seen;
  std::vector<ValuePtr> nodes;
  auto pick = [&](const ValuePtr& t, const std::string& path) {
    if (impl->filtered && !impl->keep(path)) return;
    impl->selected.insert(t.get());
    nodes.push_back(t);
    if (needed_set.insert(t->tensor.storage).second) needed.push_back(t->tensor.storage);
  };
  visit(impl->reader->tree().root, "", seen, pick);
  // Resolved now, lazy or not, as torch.load does: a mapping that cannot be satisfied fails
  // the load rather than a later access.
  impl->placement = torch_adapter::PlacementPlan(
      options.map_location, impl->reader->tree().storages, impl->reader->path());
  impl->placement.resolve(needed);
  if (!options.lazy) {
    if (progress) {
      uint64_t total = 0;
      for (uint32_t i : needed) total += impl->reader->tree().storages.at(i).nbytes;
      progress->set_total(total);
    }
    // CUDA-bound storages go straight to their devices; the rest are read into host memory.
    needed = torch_adapter::load_cuda_storages(*impl->reader, needed, impl->placement,
                                               impl->options.base, impl->storages);
    impl->reader->read_storages(needed);  // parallel, selected storages only
    std::lock_guard<std::mutex> lock(impl->mu);
    for (const ValuePtr& v : nodes) impl->materialize(v);
  }
  if (progress) progress->finish();
  return TorchCheckpoint(impl);
}

}  // namespace

TorchCheckpoint load(const std::string& path, const TorchLoadOptions& options) {
  return finish_load([&](const LoadOptions& base) { return Reader::open(path, base); }, options);
}

TorchCheckpoint load(const void* data, uint64_t size, const TorchLoadOptions& options) {
  return finish_load(
      [&](const LoadOptions& base) { return Reader::open_buffer(data, size, "<buffer>", base); },
      options);
}

const Tree& TorchCheckpoint::tree() const { return impl_->reader->tree(); }
const std::string& TorchCheckpoint::format() const { return impl_->reader->format(); }
const std::string& TorchCheckpoint::path() const { return impl_->reader->path(); }

ValuePtr TorchCheckpoint::find(const std::string& dotted_path) const {
  // Keys may contain dots ("fc1.weight"), so at each dict try every key that is a prefix of
  // what is left, preferring an exact match.
  std::function<ValuePtr(const ValuePtr&, const std::string&, int)> go =
      [&](const ValuePtr& v, const std::string& rest, int depth) -> ValuePtr {
    if (rest.empty()) return v;
    if (!v || size_t(depth) > kMaxTreeDepth) return nullptr;
    if (v->kind == Kind::kDict) {
      for (const auto& [k, val] : v->entries)
        if (key_text(*k) == rest) return val;
      for (const auto& [k, val] : v->entries) {
        std::string kt = key_text(*k);
        if (rest.size() > kt.size() && rest.compare(0, kt.size(), kt) == 0 &&
            rest[kt.size()] == '.')
          if (ValuePtr r = go(val, rest.substr(kt.size() + 1), depth + 1)) return r;
      }
      return nullptr;
    }
    if (v->kind == Kind::kList || v->kind == Kind::kTuple) {
      size_t dot = rest.find('.');
      std::string head = rest.substr(0, dot);
      char* end = nullptr;
      unsigned long idx = std::strtoul(head.c_str(), &end, 10);
      if (head.empty() || *end || idx >= v->items.size()) return nullptr;
      return go(v->items[idx], dot == std::string::npos ? "" : rest.substr(dot + 1), depth + 1);
    }
    return nullptr;
  };
  return go(tree().root, dotted_path, 0);
}

torch::Tensor TorchCheckpoint::tensor(const ValuePtr& node) {
  if (!node || node->kind != Kind::kTensor)
    throw Error(Code::kInvalidArgument, impl_->reader->path() + ": not a tensor node");
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->materialize(node);
}

torch::Tensor TorchCheckpoint::tensor(const std::string& dotted_path) {
  ValuePtr v = find(dotted_path);
  if (!v || v->kind != Kind::kTensor)
    throw Error(Code::kNotFound, impl_->reader->path() + ": no tensor at '" + dotted_path + "'");
  return tensor(v);
}

StateDict TorchCheckpoint::state_dict(const std::string& dotted_path) {
  ValuePtr root = find(dotted_path);
  if (!root)
    throw Error(Code::kNotFound, impl_->reader->path() + ": nothing at '" + dotted_path + "'");
  StateDict sd;
  std::vector<std::pair<std::string, ValuePtr>> found;
  for (auto& [path, node] : impl_->entries(root))
    if (!impl_->filtered || impl_->selected.count(node.get())) found.emplace_back(path, node);
  for (auto& [path, node] : found) sd.insert(path, tensor(node));
  return sd;
}

c10::IValue TorchCheckpoint::to_ivalue(const std::string& dotted_path) {
  ValuePtr root = find(dotted_path);
  if (!root)
    throw Error(Code::kNotFound, impl_->reader->path() + ": nothing at '" + dotted_path + "'");
  std::unordered_map<const Value*, c10::IValue> memo;  // shared nodes stay shared
  std::function<c10::IValue(const ValuePtr&, int)> conv = [&](const ValuePtr& v,
                                                              int depth) -> c10::IValue {
    if (size_t(depth) > kMaxTreeDepth) throw Error(Code::kLimit,
                                    "value tree nested deeper than " + std::to_string(kMaxTreeDepth));
    auto it = memo.find(v.get());
    if (it != memo.end()) return it->second;
    c10::IValue out;
    switch (v->kind) {
      case Kind::kNone:
        break;
      case Kind::kBool:
        out = v->b;
        break;
      case Kind::kInt:
        out = v->i;
        break;
      case Kind::kFloat:
        out = v->f;
        break;
      case Kind::kBigInt:
      case Kind::kStr:
      case Kind::kBytes:
      case Kind::kGlobal:
      case Kind::kObject:  // by class name: objects are data here, never constructed
        out = v->s;
        break;
      case Kind::kTensor:
        out = (!impl_->filtered || impl_->selected.count(v.get())) ? tensor(v) : c10::IValue();
        break;
      case Kind::kList: {
        c10::impl::GenericList list(c10::AnyType::get());
        for (const auto& item : v->items) list.push_back(conv(item, depth + 1));
        out = list;
        break;
      }
      case Kind::kTuple: {
        std::vector<c10::IValue> items;
        for (const auto& item : v->items) items.push_back(conv(item, depth + 1));
        out = c10::ivalue::Tuple::create(std::move(items));
        break;
      }
      case Kind::kDict: {
        bool all_str = true, all_int = true;
        for (const auto& [k, val] : v->entries) {
          all_str &= k->kind == Kind::kStr;
          all_int &= k->kind == Kind::kInt;
        }
        c10::TypePtr kt = all_str   ? c10::TypePtr(c10::StringType::get())
                          : all_int ? c10::TypePtr(c10::IntType::get())
                                    : c10::TypePtr(c10::AnyType::get());
        c10::impl::GenericDict dict(kt, c10::AnyType::get());
        for (const auto& [k, val] : v->entries)
          dict.insert_or_assign(conv(k, depth + 1), conv(val, depth + 1));
        out = dict;
        break;
      }
    }
    memo.emplace(v.get(), out);
    return out;
  };
  return conv(root, 0);
}

}  // namespace ckptio
