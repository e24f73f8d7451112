#include "host/api/key_selection.h"

#include "ckptio/plugin.hpp"

namespace ckptio::host {

Result<std::vector<uint32_t>> select_root_entries(Tree& tree, const std::vector<std::string>& keys,
                                                  const std::string& file) {
  if (!tree.root || tree.root->kind != Kind::kDict)
    return Status(Code::kInvalidArgument,
                  file + ": keys select entries of a dict, and its root is a " +
                      kind_name(tree.root ? tree.root->kind : Kind::kNone));
  std::vector<bool> used(keys.size(), false);
  std::vector<std::pair<ValuePtr, ValuePtr>> kept;
  for (auto& entry : tree.root->entries) {
    if (!entry.first || entry.first->kind != Kind::kStr) continue;
    bool selected = false;
    for (size_t i = 0; i < keys.size(); ++i)
      if (sdk::key_selects(keys[i], entry.first->s)) selected = used[i] = true;
    if (selected) kept.push_back(std::move(entry));
  }
  for (size_t i = 0; i < keys.size(); ++i)
    if (!used[i])
      return Status(Code::kNotFound,
                    file + ": has no entry '" + keys[i] +
                        "' (a key names an entry of the state_dict, or ends in '.' to select "
                        "every entry it begins)");
  tree.root->entries = std::move(kept);

  // Storages in their old order, so a selection reads the file front to back as a full load.
  std::vector<ValuePtr> tensors;
  for_each_tensor(tree.root, [&](const ValuePtr& t, const std::string&) { tensors.push_back(t); });
  std::vector<bool> referenced(tree.storages.size(), false);
  for (const ValuePtr& t : tensors)
    if (t->tensor.storage < referenced.size()) referenced[t->tensor.storage] = true;
  std::vector<uint32_t> before;
  std::vector<uint32_t> renumbered(tree.storages.size(), 0);
  std::vector<StorageInfo> storages;
  for (uint32_t i = 0; i < tree.storages.size(); ++i) {
    if (!referenced[i]) continue;
    renumbered[i] = uint32_t(before.size());
    before.push_back(i);
    storages.push_back(std::move(tree.storages[i]));
  }
  tree.storages = std::move(storages);
  for (const ValuePtr& t : tensors)
    if (t->tensor.storage < renumbered.size()) t->tensor.storage = renumbered[t->tensor.storage];
  return before;
}

}  // namespace ckptio::host
