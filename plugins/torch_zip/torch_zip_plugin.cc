// torch-zip: the zip container torch.save writes by default since PyTorch 1.6.
#include <cstring>
#include <array>
#include <string>
#include <vector>

#include "ckptio/plugin.hpp"
#include "formats/zip/torch_zip.h"
#include "formats/zip/zip_verify.h"
#include "plugins/common/single_format_plugin.h"

namespace {

using namespace ckptio;
using namespace ckptio::plugin;

int32_t probe(const uint8_t* head, size_t n, uint64_t) {
  if (n < 4 || std::memcmp(head, "PK\x03\x04", 4) != 0) return 0;
  // A zip: torch.save's unless it turns out to be TorchScript, which the torchscript
  // plugin recognizes with a higher score.
  return 60;
}

Result<DecodedFile> decode(const ByteSource& src, const DecodedPluginOptions& o,
                           const ckptio_options*) {
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

uint64_t verify(const ByteSource& src, std::vector<std::string>& problems) {
  return verify_zip_records(src, problems);
}

constexpr auto kOptions = concat(
    kDecodedReadOptions,
    std::array{
        option_info(CKPTIO_OPTION_WRITE, "prefix", "the archive's top-level directory",
                    "archive"),
        option_info(CKPTIO_OPTION_WRITE | CKPTIO_OPTION_NUMBER, "alignment",
                    "record data alignment in bytes, a power of two up to 32768", "64"),
        option_info(CKPTIO_OPTION_WRITE, kMaxShardSizeOption,
                    "write a Hugging Face sharded directory of pytorch_model-*.bin shards of "
                    "at most this size (5GB, 500MB)"),
    });

// Below safetensors' scores: transformers prefers the safetensors index where both are.
constexpr ShardedForm kSharded{hf::ShardKind::kBin, 80, 70};

constexpr SingleFormatPlugin kPlugin{
    "torch-zip", "0.1.0",
    {"torch-zip", "torch.save zip archive (PyTorch >= 1.6 default)", ".pt",
     CKPTIO_CAN_READ | CKPTIO_CAN_WRITE},
    probe, decode, encode, kOptions.data(), kOptions.size(), verify, "format is read-only",
    &kSharded};

}  // namespace

CKPTIO_DEFINE_SINGLE_FORMAT_PLUGIN(kPlugin)
