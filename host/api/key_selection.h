// LoadOptions::keys: a checkpoint cut down to some entries of its root dict, before any
// storage is read. The plugin is told the selection too (sdk::kSelectOption, one per key:
// ckptio/plugin.hpp) so that a checkpoint of several files opens only the files holding it; the
// cut here is what the caller gets either way, whatever the plugin did with the hint.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/status.h"
#include "formats/value.h"

namespace ckptio::host {

// Keeps the entries of tree.root (a dict) whose string key one of `keys` selects, in their
// order, and the storages their tensors use, renumbered in their order (the root's attrs,
// which hold no tensors in a state_dict, are kept). Returns, per kept storage, its index
// before. The tree must be the caller's own (tensor nodes are renumbered in place). Fails,
// naming `file`, when the root is not a dict or a key selects nothing.
Result<std::vector<uint32_t>> select_root_entries(Tree& tree, const std::vector<std::string>& keys,
                                                  const std::string& file);

}  // namespace ckptio::host
