// Tensors that share a storage, as safetensors.torch sees them (torch.py:
// _find_shared_tensors, _filter_shared_not_shared, _remove_duplicate_names). save_file
// refuses a group of names whose byte ranges overlap in one storage; save_model keeps one
// name per group (the first, in code-point order, of those that cover the whole storage),
// drops the others and records each dropped name -> kept name in the metadata; it also
// refuses a lone tensor that covers only part of its storage (no "complete" name).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "formats/status.h"

namespace ckptio::safetensors {

struct TensorSpan {
  std::string name;
  uint32_t storage = 0;
  uint64_t storage_nbytes = 0;
  uint64_t begin = 0, end = 0;  // bytes of the storage the view spans (end exclusive)
  bool complete = false;        // offset 0 and numel * size == storage_nbytes
};

// The groups of two or more names that safetensors.torch treats as shared, each sorted.
std::vector<std::vector<std::string>> shared_groups(const std::vector<TensorSpan>& tensors);

// save_model's choice: the names to drop (dropped -> kept), or kUnsupported naming a group
// with no name covering its whole storage. `file` prefixes messages.
Result<std::map<std::string, std::string>> names_to_drop(const std::vector<TensorSpan>& tensors,
                                                         const std::string& file);

}  // namespace ckptio::safetensors
