// torch-zip: the zip container torch.save writes by default since PyTorch 1.6.
#include <cstring>
#include <string>

#include "ckptio/plugin.hpp"
#include "formats/zip/torch_zip.h"
#include "plugins/common/decoded_plugin.h"

namespace {

using namespace ckptio;
using namespace ckptio::plugin;

const ckptio_host_api* g_host = nullptr;

const ckptio_format_info kFormats[] = {
    {"torch-zip", "torch.save zip archive (PyTorch >= 1.6 default)", ".pt",
     CKPTIO_CAN_READ | CKPTIO_CAN_WRITE},
};

int32_t probe(uint32_t, const uint8_t* head, size_t n, uint64_t) {
  if (n < 4 || std::memcmp(head, "PK\x03\x04", 4) != 0) return 0;
  // A zip: torch.save's unless it turns out to be TorchScript, which the torchscript
  // plugin recognizes with a higher score.
  return 60;
}

Result<DecodedFile> decode(const ByteSource& src, const DecodedPluginOptions& o) {
  ZipReadOptions opts;
  opts.limits = o.limits;
  opts.allow_objects = o.allow_objects;
  opts.verify_crc = o.verify;
  return read_torch_zip(src, opts);
}

Status encode(ByteSink& out, const Tree& tree, const StorageWriter& bytes,
              const std::string& context, const ckptio_options* options) {
  ZipWriteOptions opts;
  opts.context = context;
  opts.prefix = sdk::option(options, "prefix", "archive");
  opts.alignment = static_cast<uint32_t>(sdk::option_uint(options, "alignment", 64));
  if (opts.alignment == 0 || opts.alignment > 0x8000 || (opts.alignment & (opts.alignment - 1)))
    return Status(Code::kInvalidArgument, "option alignment must be a power of two <= 32768");
  return write_torch_zip(out, tree, bytes, opts);
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
  auto enc = [options](ByteSink& out, const Tree& t, const StorageWriter& b,
                       const std::string& ctx) { return encode(out, t, b, ctx, options); };
  return encoded_save(g_host, enc, tree, sink, options);
}

const ckptio_plugin_api* make_api(const ckptio_host_api* host) {
  g_host = host;
  static const ckptio_plugin_api api = {
      sizeof(ckptio_plugin_api), CKPTIO_ABI_VERSION, "torch-zip", "0.1.0", 1, kFormats,
      probe, plugin_open, plugin_read_storage, decoded_close, plugin_save};
  return &api;
}

}  // namespace

CKPTIO_DEFINE_PLUGIN(make_api)
