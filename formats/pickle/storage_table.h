// torch.save's persistent ids: turns ('storage', <StorageClass>, key, location, numel
// [, view_metadata]) into a storage view, registering each distinct key once in a storage
// list (so tensors that shared a storage in Python share it here).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "formats/status.h"
#include "formats/value.h"

namespace ckptio {

class StorageTable {
 public:
  explicit StorageTable(std::string context) : context_(std::move(context)) {}

  // The UnpickleOptions::persistent_load hook. Checks the tuple's shape and types, that the
  // storage class is known, that numel * element size does not overflow (and stays below
  // 2^62), and that a key seen twice declares the same byte size and device (like torch,
  // the first declaration's dtype wins). Returns a kTensor with is_storage = true.
  // Legacy view metadata (view_key, offset, size) yields a view into the root storage.
  Result<ValuePtr> load(const ValuePtr& pid);

  // Legacy whole-model pickles (torch.save(model) before 1.6, or with the legacy option)
  // stand for each module class with a ('module', <class>, source_file, source) persistent
  // id. By default that is kUnsupported; when allowed (the caller's allow_objects), the id
  // yields the class reference itself (a kGlobal the unpickler already accepted), so the
  // object built from it becomes an opaque kObject. The source text is ignored, never run.
  void allow_module_classes(bool allow) { allow_modules_ = allow; }

  // The UnpickleOptions::inline_storage hook: a numpy array's bytes, which live inside the
  // pickle, become a new storage held in memory (key "inline-<n>", device "cpu"). Such a
  // storage is never looked up by key, so no key in the file can alias it.
  Result<uint32_t> add_inline(DType dtype, std::string bytes);
  // Storage `index`'s bytes when add_inline made it, else null (its bytes are in the file).
  std::shared_ptr<const std::string> inline_bytes(uint32_t index) const;

  std::vector<StorageInfo>& storages() { return storages_; }

 private:
  std::string context_;
  bool allow_modules_ = false;
  std::vector<StorageInfo> storages_;
  // Storage index by key. torch.save numbers its storages "0", "1", ...: such keys index a
  // dense array (entry = index + 1, 0 = not seen) while they stay below 1024 + 2 x storages;
  // any other key (legacy files use ids like "94823749823") goes to the map.
  uint32_t* find_index(const std::string& key, bool create);
  std::vector<uint32_t> dense_index_;
  std::unordered_map<std::string, uint32_t> index_;
  struct View {
    uint32_t root;
    int64_t offset;
    int64_t size;
  };
  std::unordered_map<std::string, View> views_;  // legacy view keys, checked for agreement
  std::vector<std::shared_ptr<const std::string>> inline_;  // by storage index, null: in file
  uint32_t inline_count_ = 0;
};

}  // namespace ckptio
