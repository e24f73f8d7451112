// Writing one member of a checkpoint of several files (ABI 2): the host opens a sink for the
// member's relative name, the body writes it through the C++ ByteSink view.
#pragma once

#include <functional>
#include <string>

#include "ckptio/plugin.h"
#include "formats/io.h"
#include "formats/status.h"
#include "plugins/common/c_bridge.h"

namespace ckptio::plugin {

inline bool can_write_members(const ckptio_sink* sink) {
  return CKPTIO_HAS_FIELD(sink, ckptio_sink, open_member) && sink->open_member;
}

inline Status write_member(const ckptio_host_api* host, const ckptio_sink* sink,
                           const std::string& name,
                           const std::function<Status(ByteSink&)>& body) {
  const ckptio_sink* member = nullptr;
  CKPTIO_RETURN_IF_ERROR(from_c(host, sink->open_member(sink->ctx, name.c_str(), &member)));
  if (!member) return Status(Code::kInternal, name + ": host opened a member without a sink");
  CSink out(host, member);
  return body(out);
}

// Drops the files of the replaced checkpoint that `is_stale` names (an earlier save's
// members this one did not write), where the host offers it.
inline Status drop_stale(const ckptio_host_api* host, const ckptio_sink* sink,
                         const std::function<bool(const std::string&)>& is_stale) {
  if (!CKPTIO_HAS_FIELD(sink, ckptio_sink, drop_existing) || !sink->drop_existing)
    return Status::Ok();
  for (uint64_t i = 0; i < sink->existing_count; ++i) {
    const std::string existing = sink->existing[i] ? sink->existing[i] : "";
    if (is_stale(existing))
      CKPTIO_RETURN_IF_ERROR(from_c(host, sink->drop_existing(sink->ctx, existing.c_str())));
  }
  return Status::Ok();
}

}  // namespace ckptio::plugin
