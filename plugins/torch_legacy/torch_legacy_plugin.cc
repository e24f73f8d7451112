// torch-legacy: the pickle stream torch.save wrote before 1.6, and still writes with
// _use_new_zipfile_serialization=False.
#include <string>

#include "ckptio/plugin.hpp"
#include "formats/legacy/torch_legacy.h"
#include "formats/pickle/pickle_opcodes.h"
#include "plugins/common/single_format_plugin.h"

namespace {

using namespace ckptio;
using namespace ckptio::plugin;

int32_t probe(const uint8_t* head, size_t n, uint64_t) {
  if (looks_like_torch_legacy(head, n)) return 90;
  // Any other pickle (PROTO 2..5) is claimed weakly, so that a legacy file with a damaged
  // magic number gets torch's own diagnosis ("Invalid magic number") instead of "unknown".
  constexpr uint8_t kProto = pickle_detail::op_byte(pickle_detail::Op::PROTO);
  if (n >= 2 && head[0] == kProto && head[1] >= 2 && head[1] <= 5) return 5;
  return 0;
}

Result<DecodedFile> decode(const ByteSource& src, const DecodedPluginOptions& o,
                           const ckptio_options*) {
  LegacyReadOptions opts;
  opts.limits = o.limits;
  opts.allow_objects = o.allow_objects;
  opts.defer_storage_headers = o.defer_storage_headers;
  return read_torch_legacy(src, opts);
}

Status encode(ByteSink& out, const Tree& tree, const StorageWriter& bytes,
              const std::string& context, const ckptio_options*) {
  LegacyWriteOptions opts;
  opts.context = context;
  return write_torch_legacy(out, tree, bytes, opts);
}

constexpr SingleFormatPlugin kPlugin{
    "torch-legacy", "0.1.0",
    {"torch-legacy",
     "torch.save legacy pickle stream (PyTorch < 1.6, or _use_new_zipfile_serialization=False)",
     ".pt", CKPTIO_CAN_READ | CKPTIO_CAN_WRITE},
    probe, decode, encode, kDecodedReadOptions.data(), kDecodedReadOptions.size(), nullptr};

}  // namespace

CKPTIO_DEFINE_SINGLE_FORMAT_PLUGIN(kPlugin)
