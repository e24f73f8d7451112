// TorchScript modules through LibTorch (see ckptio/script.h). The only TU of libckptio_torch
// that includes the JIT serialization headers.
#include <c10/util/Optional.h>  // c10::optional, which LibTorch 2.x headers no longer include
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/import.h>

#include <set>

#include "ckptio/script.h"
#include "host/io/atomic_sink.h"
#include "host/torch/load_state_dict_core.h"
#include "host/torch/placement_plan.h"

namespace ckptio {
namespace {

void collect(const torch::jit::Module& m, const std::string& prefix,
             std::vector<std::pair<std::string, torch::Tensor>>& out) {
  for (const auto& p : m.named_parameters(/*recurse=*/false))
    if (p.value.defined()) out.emplace_back(prefix + p.name, p.value);
  for (const auto& b : m.named_buffers(/*recurse=*/false))
    if (b.value.defined()) out.emplace_back(prefix + b.name, b.value);
  for (const auto& c : m.named_children()) collect(c.value, prefix + c.name + ".", out);
}

// The one device torch::jit::load should use, from the archive's saved storage tags (read
// as data by the torchscript plugin: nothing is run) and map_location. nullopt: keep tags.
c10::optional<torch::Device> single_device(const std::string& path, const MapLocation& map) {
  LoadOptions lo;
  lo.format = "torchscript";
  lo.load_data = false;
  lo.plugin_options.emplace_back("view", "modules");  // constants' storages too
  std::unique_ptr<Reader> reader = Reader::open(path, lo);
  const std::vector<StorageInfo>& storages = reader->tree().storages;
  torch_adapter::PlacementPlan placement(map, storages, path);
  std::set<std::string> targets;
  bool identity = true;
  for (uint32_t i = 0; i < storages.size(); ++i) {
    torch::Device d = placement.device(i);  // throws for unusable devices, naming the storage
    targets.insert(d.str());
    identity = identity && d == torch::Device(storages[i].device);
  }
  if (identity) return c10::nullopt;
  if (targets.size() > 1) {
    std::string list;
    for (const auto& t : targets) list += (list.empty() ? "" : ", ") + t;
    throw Error(Code::kUnsupported,
                path + ": map_location sends the archive's storages to several devices (" + list +
                    "), but torch::jit::load places a module on one device; map them all to "
                    "one (e.g. map_location \"cpu\") and move submodules afterwards");
  }
  return torch::Device(*targets.begin());
}

}  // namespace

torch::jit::Module load_script_module(const std::string& path, const ScriptLoadOptions& options) {
  c10::optional<torch::Device> device = single_device(path, options.map_location);
  torch::jit::ExtraFilesMap extra;
  if (options.extra_files)
    for (const auto& [name, content] : *options.extra_files) extra.emplace(name, "");
  try {
    torch::jit::Module m = torch::jit::load(path, device, extra);
    if (options.extra_files)
      for (const auto& [name, content] : extra) (*options.extra_files)[name] = content;
    return m;
  } catch (const c10::Error& e) {
    throw Error(Code::kCorrupt, path + ": torch::jit::load failed: " + e.what_without_backtrace());
  }
}

void save_script_module(const std::string& path, const torch::jit::Module& module,
                        const ScriptSaveOptions& options) {
  // The same atomic file as every other save: temporary beside `path`, fsync, rename, and
  // stale temporaries of killed processes cleaned up.
  auto sink = host::AtomicFileSink::create(path, options.fsync);
  if (!sink.ok()) throw Error(sink.status());
  host::AtomicFileSink& file = **sink;
  Status write_error;
  torch::jit::ExtraFilesMap extra(options.extra_files.begin(), options.extra_files.end());
  try {
    torch::jit::ExportModule(
        module,
        // After a failed write the rest is discarded, but reported as written: a short count
        // makes LibTorch's zip writer throw, and its destructor then writes the directory
        // through us and throws again, during unwinding: std::terminate. The serializer runs
        // to the end; the error is thrown below and the temporary file removed.
        [&](const void* data, size_t n) -> size_t {
          if (write_error.ok()) write_error = file.write(data, n);
          return n;
        },
        extra, /*bytecode_format=*/options.lite);
  } catch (const c10::Error& e) {
    if (!write_error.ok()) throw Error(write_error);
    throw Error(Code::kInternal,
                path + ": saving the TorchScript module failed: " + e.what_without_backtrace());
  }
  if (!write_error.ok()) throw Error(write_error);
  if (Status st = file.commit(); !st.ok()) throw Error(st);
}

StateDict script_state_dict(const torch::jit::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> items;
  collect(module, "", items);
  StateDict sd;
  for (auto& [k, t] : items) sd.insert(k, t.detach());
  return sd;
}

namespace {
// PyTorch's name for the module in "Error(s) in loading state_dict for <class>".
std::string script_class_name(const torch::jit::Module& module) {
  if (auto t = module.type(); t && t->name()) return t->name()->name();
  return "RecursiveScriptModule";
}
}  // namespace

LoadStateDictReport load_state_dict(torch::jit::Module& module, const StateDict& state,
                                    const LoadStateDictOptions& options) {
  std::vector<std::pair<std::string, torch::Tensor>> model;
  collect(module, "", model);
  return detail::load_state_dict_into(model, script_class_name(module), state, options);
}

LoadStateDictReport load_state_dict(torch::jit::Module& module, const std::string& path,
                                    const StateDictFileOptions& options) {
  std::vector<std::pair<std::string, torch::Tensor>> model;
  collect(module, "", model);
  return detail::load_state_dict_from_file(model, script_class_name(module), path, options);
}

}  // namespace ckptio
