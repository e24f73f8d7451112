// torch-legacy: the pickle stream torch.save wrote before 1.6, and still writes with
// _use_new_zipfile_serialization=False.
#include <string>

#include "ckptio/plugin.hpp"
#include "formats/legacy/torch_legacy.h"
#include "plugins/common/decoded_plugin.h"

namespace {

using namespace ckptio;
using namespace ckptio::plugin;

const ckptio_host_api* g_host = nullptr;

const ckptio_format_info kFormats[] = {
    {"torch-legacy", "torch.save legacy pickle stream (PyTorch < 1.6, or "
                     "_use_new_zipfile_serialization=False)",
     ".pt", CKPTIO_CAN_READ | CKPTIO_CAN_WRITE},
};

int32_t probe(uint32_t, const uint8_t* head, size_t n, uint64_t) {
  if (looks_like_torch_legacy(head, n)) return 90;
  // Any other pickle (PROTO 2..5) is claimed weakly, so that a legacy file with a damaged
  // magic number gets torch's own diagnosis ("Invalid magic number") instead of "unknown".
  if (n >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5) return 5;
  return 0;
}

Result<DecodedFile> decode(const ByteSource& src, const DecodedPluginOptions& o) {
  LegacyReadOptions opts;
  opts.limits = o.limits;
  opts.allow_objects = o.allow_objects;
  opts.defer_storage_headers = o.defer_storage_headers;
  return read_torch_legacy(src, opts);
}

Status encode(ByteSink& out, const Tree& tree, const StorageWriter& bytes,
              const std::string& context) {
  LegacyWriteOptions opts;
  opts.context = context;
  return write_torch_legacy(out, tree, bytes, opts);
}

ckptio_status plugin_open(uint32_t, const ckptio_source* src, const ckptio_options* options,
                   const ckptio_builder* builder, ckptio_reader** out) {
  return decoded_open(g_host, decode, src, options, builder, out);
}
ckptio_status plugin_read_storage(ckptio_reader* r, uint32_t i, uint64_t off, void* dst, uint64_t n) {
  return decoded_read_storage(g_host, r, i, off, dst, n);
}
ckptio_status plugin_save(uint32_t, const ckptio_tree* tree, const ckptio_sink* sink,
                   const ckptio_options* options) {
  return encoded_save(g_host, encode, tree, sink, options);
}

const ckptio_plugin_api* make_api(const ckptio_host_api* host) {
  g_host = host;
  static const ckptio_plugin_api api = {
      sizeof(ckptio_plugin_api), CKPTIO_ABI_VERSION, "torch-legacy", "0.1.0", 1, kFormats,
      probe, plugin_open, plugin_read_storage, decoded_close, plugin_save};
  return &api;
}

}  // namespace

CKPTIO_DEFINE_PLUGIN(make_api)
