// libckptio_torch: checkpoints as LibTorch values. Loads a file into torch::Tensor leaves
// (storages shared exactly as in the file), maps devices like torch.load's map_location,
// validates and loads state_dicts into torch::nn::Module with load_state_dict semantics,
// saves modules the way Python writes model.state_dict(), and converts optimizer state to
// and from Python's torch.optim layout.
//
// Ownership: tensors of a TorchCheckpoint own (share) their storage bytes; in zero-copy mode
// a CPU tensor may alias the file's private mapping (see ckptio.h) and stays valid after the
// TorchCheckpoint is gone. Writes to such tensors are private copy-on-write pages.
#pragma once

// The narrowest LibTorch headers that declare what this API uses (torch/torch.h is much
// heavier to compile).
#include <ATen/core/ivalue.h>
#include <torch/nn/module.h>
#include <torch/ordered_dict.h>
#include <torch/types.h>

#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ckptio/ckptio.h"

namespace ckptio {

// torch.load's map_location: keep the saved tags, send everything to one device, remap tags
// through a table, or ask a callback (returning nullopt keeps the saved tag).
class CKPTIO_API MapLocation {
 public:
  MapLocation() = default;                                               // keep saved tags
  MapLocation(const char* device) : MapLocation(std::string(device)) {}  // NOLINT
  MapLocation(const std::string& device);                                // NOLINT
  MapLocation(torch::Device device);                                     // NOLINT
  static MapLocation remap(std::map<std::string, std::string> table);
  static MapLocation callback(
      std::function<std::optional<torch::Device>(const std::string& saved_tag)> fn);

  // The device for a storage saved under `saved_tag`. Throws ckptio::Error for an unknown
  // tag, or a CUDA device this process cannot use (naming the tag and the fix). A load asks
  // once per storage of the file, so a callback runs once per storage.
  torch::Device resolve(const std::string& saved_tag) const;
  // True for MapLocation(): no device, table or callback was given.
  bool keeps_saved_tags() const { return !target_ && table_.empty() && !fn_; }

 private:
  std::optional<std::string> target_;
  std::map<std::string, std::string> table_;
  std::function<std::optional<torch::Device>(const std::string&)> fn_;
};

struct TorchLoadOptions {
  LoadOptions base;  // format, zero_copy, threads, allow_objects, progress, registry
  MapLocation map_location;
  // Partial loading: only tensors whose dotted path (e.g. "model_state_dict.fc1.weight")
  // matches are read. Glob: '*' matches any run of characters, '?' one character.
  std::string filter_glob;
  std::function<bool(const std::string& dotted_path)> filter;
  // Read tensors on first access instead of at load time.
  bool lazy = false;
};

using StateDict = torch::OrderedDict<std::string, torch::Tensor>;

// A checkpoint with torch tensors. The value tree is available at once; tensors are
// materialized at load time, or on first access when lazy.
class CKPTIO_API TorchCheckpoint {
 public:
  const Tree& tree() const;
  const std::string& format() const;
  const std::string& path() const;  // the file (or "<buffer>"), for messages

  // The node at a dotted path of string/int dict keys and list indices ("" = root), or null.
  ValuePtr find(const std::string& dotted_path) const;
  // The tensor for a tensor node (reads its storage if not read yet).
  torch::Tensor tensor(const ValuePtr& node);
  torch::Tensor tensor(const std::string& dotted_path);
  // All (selected) tensors reachable from `dotted_path`, keyed by dotted path relative to it,
  // in tree order. For a state_dict node this is the state_dict itself.
  StateDict state_dict(const std::string& dotted_path = "");
  // The subtree as a c10::IValue: dicts become GenericDict (str/int/float/bool keys),
  // tuples Tuple, lists GenericList, big ints and bytes strings, tensors tensors.
  c10::IValue to_ivalue(const std::string& dotted_path = "");

  struct Impl;
  explicit TorchCheckpoint(std::shared_ptr<Impl> impl);

 private:
  std::shared_ptr<Impl> impl_;
};

CKPTIO_API TorchCheckpoint load(const std::string& path, const TorchLoadOptions& options);
// `data` must stay alive while lazy tensors may still be read.
CKPTIO_API TorchCheckpoint load(const void* data, uint64_t size, const TorchLoadOptions& options);

// ---- load_state_dict ----------------------------------------------------------------------

enum class DTypePolicy { kCast, kRefuse };

struct LoadStateDictOptions {
  bool strict = true;
  // Applied in this order to every checkpoint key: strip_prefix (when present, e.g.
  // "module." from DataParallel or "_orig_mod." from torch.compile), then the renames (regex
  // -> replacement, ECMAScript syntax, each applied in turn), then add_prefix.
  std::vector<std::string> strip_prefixes;
  std::vector<std::pair<std::string, std::string>> renames;
  std::string add_prefix;
  DTypePolicy dtype_policy = DTypePolicy::kCast;  // kCast is PyTorch's copy_ behaviour
  // false: copy values into the module's tensors (keeps their dtype and device).
  // true: the module's tensors take the checkpoint's storage (no copy; dtype and device
  // come from the checkpoint), as PyTorch's assign=True.
  bool assign = false;
};

// A key present in both whose tensor cannot be loaded: a shape mismatch, or a dtype
// mismatch under DTypePolicy::kRefuse.
struct Mismatch {
  std::string key;
  std::vector<int64_t> checkpoint_shape, model_shape;
  std::string checkpoint_dtype, model_dtype;
  std::string message() const;  // PyTorch's wording for shapes
};

struct LoadStateDictReport {
  std::vector<std::string> missing_keys;
  std::vector<std::string> unexpected_keys;
  std::vector<Mismatch> mismatched;      // skipped (strict: reported in the error)
  std::vector<std::string> dtype_casts;  // keys whose values were cast
  // Loading from a file: keys whose bytes were read straight into the module's memory, CPU or
  // CUDA (the others went through a checkpoint tensor: casts, views, compressed storages,
  // assign, and on CUDA also slices of a larger storage or a build without the GPU path).
  std::vector<std::string> read_in_place;
  bool ok() const { return missing_keys.empty() && unexpected_keys.empty() && mismatched.empty(); }
};

// PyTorch semantics: parameters and buffers; strict (default) throws one ckptio::Error
// listing every missing key, unexpected key and size mismatch at once, in PyTorch's wording,
// and then leaves the module unchanged (PyTorch would have copied the matching tensors
// already); non-strict loads what matches and returns the report.
CKPTIO_API LoadStateDictReport load_state_dict(torch::nn::Module& module, const StateDict& state,
                                    const LoadStateDictOptions& options = {});

struct StateDictFileOptions {
  // Where the state_dict sits in the file, as a dotted path: "" for a file that is one (what
  // torch.save(model.state_dict()) writes), "model_state_dict" inside a training checkpoint.
  std::string state_dict_path;
  LoadStateDictOptions load_state_dict;  // strict, key rules, dtype policy, assign
  // format, threads, verify, registry, filter (on paths from the file's root). lazy does not
  // apply. map_location as in model.load_state_dict(torch.load(f, map_location=m)): each
  // storage is resolved once (a callback runs once per storage), and a mapping that cannot be
  // satisfied (a CUDA device without CUDA, a callback that throws) fails the load naming the
  // file and storage, before the module is written. With assign the module's tensors land
  // where it says. Without assign the values end up on the module's devices either way, so
  // the mapping only says where they are staged: a tensor mapped to the CPU or to its module
  // tensor's own device ("cuda" without an index counts as that) takes the direct routes
  // below, one mapped elsewhere is staged on that device and then copied. Left at its
  // default (keep the saved tags) without assign, nothing is staged on the saved devices:
  // the module's devices decide, so a GPU-saved file loads into a CPU module on a machine
  // without CUDA.
  TorchLoadOptions load;
};

// load_state_dict straight from a checkpoint file, with the same rules, report and messages
// as load_state_dict(module, state). The file's structure is checked against the module
// first (strict: nothing is written on a mismatch). Then each CPU module tensor that
// already has the checkpoint's dtype and a dense layout is filled by reading its bytes from
// the file directly into the module's memory, on `load.base.threads` threads: no
// intermediate tensors, so peak memory is the model's, and the copy runs at file read()
// speed. A CUDA module tensor that is a whole plain storage of the file is read through a
// pinned ring straight into its device memory (libckptio_cuda). Other tensors (casts, strided
// views, slices of larger storages on CUDA, compressed storages, assign, a map_location that
// stages them on another device) are read into checkpoint tensors first and copied; those
// are read before anything is written, so a storage that fails to read or decode leaves the
// module unchanged ("nothing was written to the module"). Only an I/O error while reading in place (e.g. a file truncated under us)
// leaves it partly loaded, as PyTorch's load_state_dict does when a copy fails; the error
// names the tensor and says so.
CKPTIO_API LoadStateDictReport load_state_dict(torch::nn::Module& module, const std::string& path,
                                    const StateDictFileOptions& options = {});

// The module's state_dict as Python writes it: keys in Python's order (each module's
// parameters, then buffers, then children), detached tensors, and the _metadata entries.
CKPTIO_API ValuePtr module_state_dict_value(const torch::nn::Module& module);

// ---- building and saving ------------------------------------------------------------------

// Builds a Checkpoint (value tree + storages) from torch values; tensors sharing a storage
// stay shared. Storage bytes alias the tensors (CPU) or are copied to host (CUDA: by finish(),
// all together through libckptio_cuda's pinned ring where LibTorch has CUDA), so the tensors
// must not change until the Checkpoint is saved: use snapshot() for that.
class CKPTIO_API CheckpointBuilder {
 public:
  CheckpointBuilder();
  ~CheckpointBuilder();
  ValuePtr tensor(const torch::Tensor& t, bool as_parameter = false);
  ValuePtr state_dict(const StateDict& sd);          // OrderedDict of detached tensors
  ValuePtr module(const torch::nn::Module& module);  // like module_state_dict_value
  ValuePtr ivalue(const c10::IValue& v);             // generic IValues (dicts, lists...)
  Checkpoint finish(ValuePtr root);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

CKPTIO_API void save(const std::string& path, const torch::nn::Module& module,
          const SaveOptions& options = {});
CKPTIO_API void save(const std::string& path, const StateDict& state, const SaveOptions& options = {});
CKPTIO_API void save(const std::string& path, const c10::IValue& value, const SaveOptions& options = {});

// Snapshots of live torch state: consistent copies taken now (see ckptio::snapshot), e.g.
// best = snapshot(model) cannot alias the model as Python's best = model.state_dict() does.
CKPTIO_API Checkpoint snapshot(const torch::nn::Module& module);
CKPTIO_API Checkpoint snapshot(const StateDict& state);

}  // namespace ckptio
