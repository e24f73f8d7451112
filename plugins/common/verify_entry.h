// The body of a plugin's verify entry (ckptio_plugin_api::verify) around a container check:
// the check reads the host's source and lists problems; their lines and the number of
// checksums verified go to the host's report, and an exception becomes the returned status.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ckptio/plugin.hpp"
#include "plugins/common/c_bridge.h"

namespace ckptio::plugin {

// `check(const ByteSource&, std::vector<std::string>& problems)` returns the checksums verified.
template <class Check>
ckptio_status verify_entry(const ckptio_host_api* host, const char* context,
                           const ckptio_source* source, const ckptio_verify_report* report,
                           Check&& check) {
  return sdk::guard(host, context, [&]() -> ckptio_status {
    const CSource src(host, source);
    std::vector<std::string> problems;
    const uint64_t checksums = check(src, problems);
    send_verify_report(report, problems, checksums);
    return nullptr;
  });
}

}  // namespace ckptio::plugin
