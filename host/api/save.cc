// save(): a checkpoint written through its format's plugin into an atomic file.
#include <algorithm>
#include <mutex>

#include "ckptio/ckptio.h"
#include "host/abi/c_options.h"
#include "host/abi/c_status.h"
#include "host/abi/registry_impl.h"
#include "host/abi/tree_view.h"
#include "host/api/call_context.h"
#include "host/api/save_output.h"

namespace ckptio {
namespace {

// " (tensor ['model']['w'])": the first tensor using storage `i`, for messages.
std::string first_tensor_of(const Tree& tree, uint32_t i) {
  std::string found;
  for_each_tensor(tree.root, [&](const ValuePtr& t, const std::string& path) {
    if (found.empty() && t->tensor.storage == i) found = path.empty() ? "<root>" : path;
  });
  return found.empty() ? "" : " (tensor " + found + ")";
}

}  // namespace


using host::fail;
using host::registry_of;
using host::with_file;

void save(const std::string& path, const Checkpoint& ckpt, const SaveOptions& options) {
  Registry& reg = registry_of(options.registry);
  FormatEntry fmt;
  {
    std::lock_guard<std::mutex> lock(reg.impl().mu);
    const FormatEntry* f = reg.impl().find(options.format);
    if (!f)
      fail(Status(Code::kInvalidArgument, path + ": unknown format '" + options.format +
                                              "'; available: " + reg.impl().format_list_unlocked()));
    fmt = *f;
  }
  if (!(fmt.caps & CKPTIO_CAN_WRITE) || !CKPTIO_HAS_FIELD(fmt.api, ckptio_plugin_api, save) ||
      !fmt.api->save)
    fail(Status(Code::kUnsupported, path + ": format '" + fmt.name + "' cannot be written"));
  if (!ckpt.tree.root) fail(Status(Code::kInvalidArgument, path + ": nothing to save"));
  if (ckpt.storages.size() != ckpt.tree.storages.size())
    fail(Status(Code::kInvalidArgument, path + ": checkpoint has " +
                                            std::to_string(ckpt.tree.storages.size()) +
                                            " storages but bytes for " +
                                            std::to_string(ckpt.storages.size())));
  uint64_t total = 0;
  for (size_t i = 0; i < ckpt.storages.size(); ++i) {
    const StorageBytes& b = ckpt.storages[i];
    if ((!b.data && ckpt.tree.storages[i].nbytes) || b.size != ckpt.tree.storages[i].nbytes)
      fail(Status(Code::kInvalidArgument, path + ": storage '" + ckpt.tree.storages[i].key + "'" +
                                              first_tensor_of(ckpt.tree, uint32_t(i)) +
                                              " has no bytes loaded (a load with load_data "
                                              "false, or a Reader that never read it)"));
    total += b.size;
  }

  // The storages dominate every format's output; headers and pickles get a generous margin.
  // A compressed output ends smaller and commit() frees the rest.
  auto output = host::SaveOutput::create(
      path, options.fsync, total + (1u << 20) + 1024 * uint64_t(ckpt.storages.size()));
  if (!output.ok()) fail(output.status());
  uint64_t done = 0;
  host::TreeView view(ckpt, [&](uint64_t n) {
    done += n;
    if (options.progress) options.progress(std::min(done, total), total);
  });
  host::COptions c_opts(options.plugin_options);
  const CallingRegistry calling(reg.impl());
  Status st = host::take_status(
      fmt.api->save(fmt.index, view.c_tree(), output.value()->c_sink(), c_opts.get()));
  if (!st.ok()) fail(with_file(st, path));
  st = output.value()->commit();
  if (!st.ok()) fail(st);
}

}  // namespace ckptio
