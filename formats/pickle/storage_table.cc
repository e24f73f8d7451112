#include "formats/pickle/storage_table.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

#include "formats/dtype.h"

namespace ckptio {
namespace {

// Python-2-era files carry bytes where Python 3 writes str; torch decodes them as ASCII.
// Null when `v` is not text. Points into `v`: this runs once per storage, so no copies.
const std::string* text(const ValuePtr& v) {
  if (!v) return nullptr;
  if (v->kind == Kind::kStr) return &v->s;
  if (v->kind == Kind::kBytes) {
    for (char c : v->s)
      if (static_cast<unsigned char>(c) >= 0x80) return nullptr;
    return &v->s;
  }
  return nullptr;
}

// torch caps nothing, but no real storage is near 2^62 bytes and keeping every size below
// it leaves headroom for offset arithmetic downstream.
constexpr uint64_t kMaxStorageBytes = uint64_t{1} << 62;

// "0", "1", ..., "123": decimal without a leading zero, below 10^9. Else -1.
int64_t canonical_number(const std::string& key) {
  if (key.empty() || key.size() > 9 || (key[0] == '0' && key.size() > 1)) return -1;
  int64_t n = 0;
  for (char c : key) {
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  return n;
}

}  // namespace

uint32_t* StorageTable::find_index(const std::string& key, bool create) {
  int64_t n = canonical_number(key);
  if (n >= 0) {
    uint64_t k = static_cast<uint64_t>(n);
    // A key may sit in the map from before the array grew past it: look there too.
    if (k < dense_index_.size() && (dense_index_[k] || create)) return &dense_index_[k];
    const uint64_t limit = 1024 + 2 * uint64_t{storages_.size()};
    if (create && k < limit) {
      dense_index_.resize(
          std::max<uint64_t>(k + 1, std::min<uint64_t>(2 * uint64_t{dense_index_.size()}, limit)));
      return &dense_index_[k];
    }
  }
  if (create) return &index_[key];
  if (index_.empty()) return nullptr;
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &it->second;
}

Result<ValuePtr> StorageTable::load(const ValuePtr& pid) {
  // Messages are built only on failure.
  auto prefix = [&] { return context_.empty() ? std::string() : context_ + ": "; };
  auto corrupt = [&](const std::string& msg) { return Status(Code::kCorrupt, prefix() + msg); };

  if (!pid || pid->kind != Kind::kTuple || pid->items.empty())
    return corrupt(std::string("persistent id must be a tuple, got ") +
                   (pid ? kind_name(pid->kind) : "nothing"));
  const std::string* type = text(pid->items[0]);
  if (!type) return corrupt("persistent id must start with a string");
  if (*type == "module" && allow_modules_) {
    if (pid->items.size() < 2 || pid->items[1]->kind != Kind::kGlobal)
      return corrupt("module persistent id must name a class");
    return pid->items[1];
  }
  if (*type == "module")
    return Status(Code::kUnsupported,
                  prefix() +
                      "the pickle holds a module class (full-model torch.save); only "
                      "tensors and containers are supported");
  if (*type != "storage")
    return corrupt("unknown persistent id type '" + *type + "' (expected 'storage')");
  const auto& f = pid->items;
  if (f.size() != 5 && f.size() != 6)
    return corrupt("storage persistent id has " + std::to_string(f.size()) +
                   " fields, expected 5 or 6");

  const std::string* key = text(f[2]);
  if (!key) return corrupt("storage persistent id key must be a string");
  auto where = [&] { return "storage '" + *key + "'"; };
  const std::string* location = text(f[3]);
  if (!location) return corrupt(where() + ": location must be a string");
  if (f[1]->kind != Kind::kGlobal)
    return corrupt(where() + ": storage type must be a class, got " + kind_name(f[1]->kind));
  const std::string& cls = f[1]->s;
  std::optional<DType> dtype;
  if (cls == "torch.storage.UntypedStorage" || cls == "torch.UntypedStorage")
    dtype = DType::kUInt8;
  else if (cls == "torch.storage.TypedStorage" || cls == "torch.TypedStorage")
    return Status(Code::kUnsupported,
                  prefix() + where() + ": storage type torch.storage.TypedStorage has no dtype");
  else if (cls.compare(0, 6, "torch.") == 0)
    dtype = dtype_from_storage_class(std::string_view(cls).substr(cls.rfind('.') + 1));
  if (!dtype) return corrupt(where() + ": unknown storage type '" + cls + "'");
  if (f[4]->kind != Kind::kInt || f[4]->i < 0)
    return corrupt(where() + ": element count must be a non-negative int");
  int64_t numel = f[4]->i;
  uint64_t size = static_cast<uint64_t>(dtype_size(*dtype));
  uint64_t nbytes;
  if (__builtin_mul_overflow(static_cast<uint64_t>(numel), size, &nbytes) ||
      nbytes >= kMaxStorageBytes)
    return corrupt(where() + ": " + std::to_string(numel) + " elements of " +
                   std::string(dtype_name(*dtype)) + " is an impossible size");

  uint32_t index;
  uint32_t* entry = find_index(*key, false);
  if (!entry) {
    if (storages_.size() >= UINT32_MAX) return Status(Code::kLimit, prefix() + "too many storages");
    index = static_cast<uint32_t>(storages_.size());
    storages_.push_back(StorageInfo{*key, *dtype, nbytes, *location});
    *find_index(*key, true) = index + 1;
  } else {
    index = *entry - 1;
    const StorageInfo& s = storages_[index];
    // torch keeps the first declaration of a key (a later one with another dtype views the
    // same bytes); sizes or devices that disagree mean the file contradicts itself.
    if (s.nbytes != nbytes || s.device != *location)
      return corrupt(where() + " is declared twice differently: " + std::to_string(s.nbytes) +
                     " bytes on '" + s.device + "', then " + std::to_string(nbytes) +
                     " bytes on '" + *location + "'");
  }
  const StorageInfo& s = storages_[index];
  TensorMeta t;
  t.dtype = s.dtype;
  t.is_storage = true;
  t.storage = index;
  t.shape = {static_cast<int64_t>(s.nbytes / static_cast<uint64_t>(dtype_size(s.dtype)))};
  t.strides = {1};

  if (f.size() == 6 && f[5]->kind != Kind::kNone) {
    // Legacy view metadata (view_key, offset, size), in elements of the storage type: the
    // value is a window into the root storage.
    const ValuePtr& vm = f[5];
    if (vm->kind != Kind::kTuple || vm->items.size() != 3 || !text(vm->items[0]) ||
        vm->items[1]->kind != Kind::kInt || vm->items[2]->kind != Kind::kInt)
      return corrupt(where() + ": view metadata must be (view_key, offset, size)");
    int64_t off = vm->items[1]->i, len = vm->items[2]->i;
    int64_t root = t.shape[0];
    if (off < 0 || len < 0 || off > root || len > root - off)
      return corrupt(where() + ": view [" + std::to_string(off) + ", +" + std::to_string(len) +
                     ") lies outside the storage's " + std::to_string(root) + " elements");
    std::string view_key = *text(vm->items[0]);
    auto v = views_.find(view_key);
    if (v != views_.end() &&
        (v->second.root != index || v->second.offset != off || v->second.size != len))
      return corrupt("storage view '" + view_key + "' is declared twice differently");
    views_[view_key] = View{index, off, len};
    t.storage_offset = off;
    t.shape = {len};
  }
  return Value::make_tensor(std::move(t));
}

Result<uint32_t> StorageTable::add_inline(DType dtype, std::string bytes) {
  if (storages_.size() >= UINT32_MAX)
    return Status(Code::kLimit, (context_.empty() ? "" : context_ + ": ") + "too many storages");
  const uint32_t index = static_cast<uint32_t>(storages_.size());
  const uint64_t nbytes = bytes.size();
  storages_.push_back(
      StorageInfo{"inline-" + std::to_string(inline_count_++), dtype, nbytes, "cpu"});
  inline_.resize(storages_.size());
  inline_[index] = std::make_shared<const std::string>(std::move(bytes));
  return index;
}

std::shared_ptr<const std::string> StorageTable::inline_bytes(uint32_t index) const {
  return index < inline_.size() ? inline_[index] : nullptr;
}

}  // namespace ckptio
