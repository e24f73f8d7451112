// Hugging Face sharded checkpoints: the index JSON, the file names, and which file of a
// directory to open. Pure: no LibTorch, no I/O. The real packages are the arbiter
// (transformers 5.24.0 modeling_utils.py save_pretrained and utils/hub.py
// get_checkpoint_shard_files; huggingface_hub 2.4.0 serialization/_base.py and _torch.py;
// /work/shared/docs/sharded-formats.md §3).
//
// A sharded checkpoint is a directory:
//
//   model.safetensors.index.json        the index (below); only when there are 2+ shards
//   model-00001-of-00003.safetensors    the shards: "-{i+1:05d}-of-{count:05d}" (at least five
//   model-00002-of-00003.safetensors    digits, more when the number needs them)
//   model-00003-of-00003.safetensors
//
// or, unsharded, one model.safetensors and no index. The pickle flavour is the same with
// pytorch_model.bin.index.json and pytorch_model-00001-of-00003.bin (huggingface_hub's
// PYTORCH_WEIGHTS_FILE_PATTERN). transformers 5.24 save_pretrained writes safetensors only
// (its safe_serialization argument is gone: passed, it lands in **kwargs and is ignored);
// from_pretrained still reads pytorch_model.bin and pytorch_model.bin.index.json when
// use_safetensors is not True.
//
// The index, exactly as transformers 5.24 writes it (json.dumps(index, indent=2,
// sort_keys=True) + "\n", UTF-8 file; ensure_ascii: every character outside ' '..'~' is a
// \uXXXX escape, lowercase hex, astral characters as surrogate pairs; '"' and '\' and
// \b \f \n \r \t as two-character escapes):
//
//   {
//     "metadata": {
//       "total_parameters": 5712,
//       "total_size": 22848
//     },
//     "weight_map": {
//       "lm_head.weight": "model-00002-of-00002.safetensors",
//       "model.embed_tokens.weight": "model-00001-of-00002.safetensors"
//     }
//   }
//
// Keys sorted by code point at every level. total_size: the bytes of the storages saved,
// each storage once (shard_plan.h); total_parameters: the model's num_parameters()
// (shard_plan.h says how plan_shards estimates it). huggingface_hub's save_torch_state_dict
// writes the same object unsorted, "metadata" first, with json.dump(indent=2) and no
// trailing newline, and no total_parameters.
//
// Readers: transformers takes shard_files = sorted(set(weight_map.values())) and loads
// each; it needs "metadata" (index["metadata"], a KeyError without it); huggingface_hub's
// loader does not, and refuses an index over 10 MiB, a shard name with a drive, a root or a
// ".." component (PureWindowsPath: '/' and '\' both separate), and a shard whose extension
// is not the index's. parse_index below is stricter than both where they differ (duplicate
// keys, the byte-order mark) and takes up to 64 MiB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "formats/status.h"

namespace ckptio::hf {

enum class ShardKind { kSafetensors, kBin };

const char* single_file_name(ShardKind);  // "model.safetensors" / "pytorch_model.bin"
const char* index_file_name(ShardKind);   // "model.safetensors.index.json" / "pytorch_model.bin.index.json"
const char* shard_extension(ShardKind);   // ".safetensors" / ".bin"
// Shard `index0` (0-based) of `count`: model-00001-of-00004.safetensors,
// pytorch_model-00001-of-00004.bin, as transformers and huggingface_hub name them.
std::string shard_file_name(ShardKind, size_t index0, size_t count);

constexpr size_t kMaxIndexBytes = size_t{64} << 20;  // parse_index refuses longer text
constexpr size_t kMaxIndexDepth = 128;               // and JSON nested deeper than this

struct Index {
  std::vector<std::pair<std::string, std::string>> weight_map;  // tensor -> shard file, file order
  std::vector<std::string> shards;  // the distinct shard files, sorted (sorted(set(...)))
  // "metadata" entries as text, in file order: strings as they are, integers in decimal,
  // other numbers as the file spells them, true/false/null, objects and arrays as compact
  // JSON. Empty when the index has no "metadata".
  std::vector<std::pair<std::string, std::string>> metadata;
  // metadata["total_size"] when it is an integer in [0, 2^64); informational only.
  std::optional<uint64_t> total_size;
};

// Strict: a JSON object with "weight_map" (object of str -> str) and optional "metadata"
// (an object); other top-level keys are ignored, as both readers ignore them. Refused, with
// one line naming `file`, the key or tensor, and what is wrong: text over kMaxIndexBytes
// (kLimit), not JSON or not an object, a UTF-8 byte-order mark (Python's json refuses it),
// nesting deeper than kMaxIndexDepth (kLimit), a duplicate key in any object, weight_map
// missing, not an object or empty, a value in it that is not a string, "metadata" that is
// not an object, and a shard file name that is empty, absolute, starts with a drive letter
// ("C:", as huggingface_hub refuses), has a ".." component, or holds a backslash or a NUL.
// Example: "idx.json: weight_map['a.b'] is 5, not a shard file name". The host still checks
// that each shard resolves inside the directory.
Result<Index> parse_index(const char* text, size_t n, const std::string& file);

// huggingface_hub's other refusal, for a caller that knows which index it opened: every
// shard must end in the kind's extension (case-sensitive), so a safetensors index cannot
// route a load to a pickle. kCorrupt naming `file` and the first offending shard.
Status check_shard_kind(const Index& index, ShardKind kind, const std::string& file);

// Which kind of index a file head is (its first n bytes; n may be less than the file): a
// JSON object, after blanks, whose "weight_map" comes before the head ends and whose first
// value ends in ".safetensors" or ".bin". nullopt when it is not an index, and when the head
// ends before that is decided. Pure, never throws, reads no byte past head[n-1]. A raw
// safetensors file (8-byte length, then '{') is never taken: its length holds NUL bytes,
// which JSON allows neither between tokens nor in strings. Files transformers and
// huggingface_hub write decide within their first few hundred bytes ("metadata" first).
std::optional<ShardKind> probe_index_head(const uint8_t* head, size_t n);

// The index JSON exactly as transformers 5.24 save_pretrained writes it (the format at the
// top), for a weight_map in any order. A name given twice keeps its last shard (a Python
// dict). total_parameters, when absent, is left out (then it is the huggingface_hub
// metadata, written transformers' way). Names are UTF-8; a byte that is not part of valid
// UTF-8 is written as \ufffd.
struct IndexMetadata {
  uint64_t total_size = 0;
  std::optional<uint64_t> total_parameters;
};
std::string write_index(const std::vector<std::pair<std::string, std::string>>& weight_map,
                        const IndexMetadata& meta);

// Which file of a directory listing (file names; order does not matter) to open for a HF
// checkpoint of `kind`: the index when it is there, else the single file; nullopt when
// neither is. Variants (model.fp16.safetensors, model.fp16.safetensors.index.json,
// from save_pretrained(variant=...)) and adapter_model.* are ignored. Precedence: this is
// huggingface_hub's load_torch_model order; transformers 5.24 from_pretrained prefers
// model.safetensors over the index when a directory has both (a stale single file left by
// an earlier unsharded save; save_pretrained does not delete it).
std::optional<std::string> entry_file(ShardKind, const std::vector<std::string>& listing);

}  // namespace ckptio::hf
