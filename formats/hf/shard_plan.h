// Shard planning for Hugging Face sharded checkpoints, exactly as huggingface_hub 2.4.0's
// split_state_dict_into_shards_factory does it for torch (split_torch_state_dict_into_shards,
// which transformers 5.24 save_pretrained calls), and the size option's parser
// (parse_size_to_int). Pure: the caller describes the tensors; hf_index.h names the files and
// writes the index. Reference: huggingface_hub/serialization/_base.py and _torch.py;
// /work/shared/docs/sharded-formats.md §3.2.
//
// The split, in state_dict order, with no bin-packing:
//   1. A tensor whose storage was seen before is set aside; it joins the shard of the first
//      tensor of that storage at the end (appended to that shard, after its other names, in
//      the order the storages first appeared).
//   2. Size = the storage's bytes (untyped_storage().nbytes(): the whole storage, not the
//      view). Larger than the maximum: a shard of its own, appended at once (before the shard
//      being filled).
//   3. Else, when current + size > maximum, the current shard is closed; then it is added.
// One shard: no index, the single file. total_size = the sizes of step 2/3, each storage
// once. The hub's storage id is (device, data_ptr, nbytes): every zero-byte storage on the
// CPU has data_ptr 0, so all of them count as one storage and follow the first zero-byte
// tensor (plan_shards does so whatever their storage_id).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "formats/hf/hf_index.h"
#include "formats/status.h"

namespace ckptio::hf {

// huggingface_hub's MAX_SHARD_SIZE ("5GB"); transformers 5.24 save_pretrained's default is
// "50GB".
constexpr uint64_t kHubDefaultMaxShardSize = 5'000'000'000;
constexpr uint64_t kTransformersDefaultMaxShardSize = 50'000'000'000;

// "5GB", "2.5MB", "10kb", " 1.5 GB " -> bytes, exactly as parse_size_to_int: strip, the last
// two characters upper-cased must be TB, GB, MB or KB (10^12, 10^9, 10^6, 10^3: decimal, no
// GiB), the rest stripped is a Python float (sign, '_' between digits, exponent; "inf" and
// "nan" are refused, as int() refuses them), bytes = int(float * unit), truncated toward 0.
// Also, unlike parse_size_to_int (which refuses "1000": unit "00"), a string of decimal
// digits alone is that many bytes, as an int max_shard_size is. Refused with one line naming
// the text (kInvalidArgument): what parse_size_to_int refuses, and besides a negative
// result, one past 2^64 - 1 (Python returns both), and any non-ASCII byte (Python would
// also take Unicode digits and blanks).
Result<uint64_t> parse_size(const std::string& text);

struct ShardItem {
  std::string name;
  uint64_t storage_id;     // equal for tensors that share one storage (views, tied weights)
  uint64_t storage_bytes;  // the whole storage's bytes (the same for every item sharing it)
  uint64_t numel;          // the tensor's elements
};

// shards: item indices per shard, in the order of the hub's filename_to_tensors (shard i is
// shard_file_name(kind, i, shards.size())); empty when items is. meta.total_size as the
// hub's metadata; meta.total_parameters as transformers 5.24 writes it when the items are
// the state_dict it splits: it writes self.num_parameters(), the numel of every parameter of
// the model once (tied ones once, buffers not at all), and it drops tied duplicates from the
// state_dict before splitting, so plan_shards sums numel over all items. That is exact for
// a model without persistent buffers; a caller that knows the model's count may replace it.
struct ShardPlan {
  std::vector<std::vector<size_t>> shards;
  IndexMetadata meta;
};
ShardPlan plan_shards(const std::vector<ShardItem>& items, uint64_t max_shard_size);

// The weight_map of a plan (tensor name -> shard file, shard by shard), for write_index; the
// one file of a one-shard plan is single_file_name(kind), as the hub names it.
std::vector<std::pair<std::string, std::string>> plan_weight_map(
    const std::vector<ShardItem>& items, const ShardPlan& plan, ShardKind kind);

}  // namespace ckptio::hf
