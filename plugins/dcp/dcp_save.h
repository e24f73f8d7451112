// The dcp plugin's save: a one-rank DCP checkpoint (formats/dcp/dcp_writer.h) written as the
// members __0_0.distcp and .metadata of a directory the host commits whole (ABI 2), so a
// checkpoint is never visible without its .metadata or with a .metadata before its data.
#pragma once

#include "ckptio/plugin.h"

namespace ckptio::plugin {

ckptio_status dcp_save(const ckptio_host_api* host, const ckptio_tree* tree,
                       const ckptio_sink* sink, const ckptio_options* options);

}  // namespace ckptio::plugin
