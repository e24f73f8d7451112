// libckptio_torch, TorchScript: runnable torch::jit::Module loading with torch.load-style
// map_location, atomic saves of scripted modules (with extra files), and load_state_dict into
// a scripted module with the same validation as for torch::nn::Module — the deploy flow:
// train in Python, script once, then update the weights from new checkpoints of any format
// in C++ and save the module again.
//
// For reading a TorchScript archive as data (no interpreter, nothing run), use ckptio::load
// or ckptio::load(path, TorchLoadOptions): the "torchscript" format plugin gives the
// module's state_dict (option view=state_dict, the default) or the module tree
// (view=modules).
//
// Ownership: load_script_module returns a module that owns its tensors; load_state_dict
// copies into (or, with assign, re-points) the module's own parameters and buffers.
#pragma once

#include <torch/csrc/jit/api/module.h>

#include <string>
#include <unordered_map>

#include "ckptio/torch.h"

namespace ckptio {

using ExtraFiles = std::unordered_map<std::string, std::string>;

struct ScriptLoadOptions {
  // torch::jit::load places every storage on one device: the saved tags of the archive's
  // storages are mapped through map_location (the same rules as TorchLoadOptions), and must
  // all land on one device, or all keep their saved tags (the default). A mapping that would
  // need several devices is refused (kUnsupported) naming them.
  MapLocation map_location;
  // Names of extra files (torch.jit.save's _extra_files) to read; filled with their content
  // (names absent from the archive are left empty, as torch::jit::load does).
  ExtraFiles* extra_files = nullptr;
};

// Loads a runnable module through LibTorch's own loader (torch::jit::load). Errors are
// ckptio::Error naming the file.
CKPTIO_API torch::jit::Module load_script_module(const std::string& path,
                                      const ScriptLoadOptions& options = {});

struct ScriptSaveOptions {
  ExtraFiles extra_files;   // written under <archive>/extra/<name>
  bool lite = false;        // _save_for_lite_interpreter: also write bytecode.pkl
  bool fsync = true;        // make the file durable before it replaces the old one
};

// Saves like module.save(path, extra_files), but atomically: the archive is streamed into a
// temporary file beside `path`, flushed, and renamed over it; on failure an existing file is
// untouched and nothing is left behind. The archive's record prefix is "archive" (as for
// torch.jit.save into a buffer); torch.jit.load and torch::jit::load do not depend on it.
CKPTIO_API void save_script_module(const std::string& path, const torch::jit::Module& module,
                        const ScriptSaveOptions& options = {});

// The scripted module's state_dict keys and tensors (parameters, then buffers, then
// submodules, recursively, as Python's scripted_module.state_dict()).
CKPTIO_API StateDict script_state_dict(const torch::jit::Module& module);

// load_state_dict into a scripted module: the same rules, report and messages as the
// torch::nn::Module overload (strict, missing/unexpected keys, shape mismatches, prefix
// stripping, renames, dtype policy, assign).
CKPTIO_API LoadStateDictReport load_state_dict(torch::jit::Module& module, const StateDict& state,
                                    const LoadStateDictOptions& options = {});
// ... and straight from a checkpoint file, reading in place as the torch::nn::Module overload.
CKPTIO_API LoadStateDictReport load_state_dict(torch::jit::Module& module, const std::string& path,
                                    const StateDictFileOptions& options = {});

}  // namespace ckptio
