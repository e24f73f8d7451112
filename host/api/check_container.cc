// `ckptio verify`'s container check, done by the format's plugin: the host knows no
// container, so removing a plugin removes its checks with its format.
#include "ckptio/ckptio.h"
#include "host/abi/c_options.h"
#include "host/abi/c_status.h"
#include "host/abi/registry_impl.h"
#include "host/api/call_context.h"
#include "host/io/checkpoint_source.h"

namespace ckptio {

ContainerCheck check_container(const std::string& path, const LoadOptions& options) {
  auto src = host::CheckpointSource::open(path);
  if (!src.ok()) host::fail(src.status());
  Registry& reg = host::registry_of(options.registry);
  auto chosen = reg.impl().choose_format(*src.value(), options.format);
  if (!chosen.ok()) host::fail(host::with_file(chosen.status(), path));
  const FormatEntry& format = chosen.value();

  ContainerCheck out;
  out.format = format.name;
  if (!CKPTIO_HAS_FIELD(format.api, ckptio_plugin_api, verify) || !format.api->verify)
    return out;
  out.offered = true;
  ckptio_verify_report report{};
  report.struct_size = sizeof report;
  report.ctx = &out;
  report.problem = [](void* ctx, const char* message) {
    auto* check = static_cast<ContainerCheck*>(ctx);
    try {
      check->problems.emplace_back(message ? message : "");
    } catch (...) {  // nothing may escape into the plugin
    }
  };
  report.checksums = [](void* ctx, uint64_t count) {
    static_cast<ContainerCheck*>(ctx)->checksums += count;
  };
  const host::COptions c_opts(options.plugin_options);
  const CallingRegistry calling(reg.impl());
  Status st = host::take_status(format.api->verify(format.index, src.value()->c_source(), c_opts.get(), &report));
  if (st.code() == Code::kUnsupported) {  // no container check for this format
    out.offered = false;
    out.problems.clear();
    out.checksums = 0;
    return out;
  }
  if (!st.ok()) out.problems.push_back(host::with_file(st, path).message());
  return out;
}

}  // namespace ckptio
