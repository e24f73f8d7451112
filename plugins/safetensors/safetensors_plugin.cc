// safetensors: Hugging Face's format (formats/safetensors/safetensors.h), read into the
// same DecodedFile model as torch-zip so that the host maps or reads the tensors itself; and
// its sharded form, a directory of shards with model.safetensors.index.json
// (plugins/common/sharded_checkpoint.h).
#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "ckptio/plugin.hpp"
#include "formats/safetensors/safetensors.h"
#include "plugins/common/single_format_plugin.h"

namespace {

using namespace ckptio;
using namespace ckptio::plugin;

uint64_t le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool blank(uint8_t c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// A length that fits the file and the limit, then (after blanks, which the reference
// accepts) '{' and a key or '}': nothing else starts so (a zip starts "PK", a pickle 0x80).
int32_t probe(const uint8_t* head, size_t n, uint64_t file_size) {
  if (n < 10 || file_size < 10) return 0;  // length + "{}"
  const uint64_t len = le64(head);
  if (len < 2 || len > kSafetensorsMaxHeader || len > file_size - 8) return 0;
  const size_t end = size_t(std::min<uint64_t>(n, 8 + len));
  size_t i = 8;
  while (i < end && blank(head[i])) ++i;
  if (i == end) return 0;
  if (head[i] != '{') return 0;
  while (++i < end && blank(head[i])) {
  }
  if (i == end) return 50;  // only blanks after '{' in the head: plausible, not certain
  return head[i] == '"' || head[i] == '}' ? 90 : 0;
}

Result<DecodedFile> decode(const ByteSource& src, const DecodedPluginOptions&,
                           const ckptio_options*) {
  return read_safetensors(src);
}

Status encode(ByteSink& out, const Tree& tree, const StorageWriter& bytes,
              const std::string& context, const ckptio_options* options) {
  SafetensorsWriteOptions o;
  o.context = context;
  for (size_t i = 0; options && i < options->count; ++i) {
    const std::string key = options->items[i].key, value = options->items[i].value;
    if (key.rfind("meta.", 0) == 0 && key.size() > 5) {
      o.metadata.emplace_back(key.substr(5), value);
    } else if (key == kMaxShardSizeOption) {
      continue;  // sharded_save's
    } else if (key == "dedup") {
      if (value != "0" && value != "1")
        return Status(Code::kInvalidArgument,
                      context + ": option dedup=" + value + " is not 0 or 1");
      o.dedup = value == "1";
    } else {
      // A typo must not pass silently (metadata lands in the file).
      return Status(Code::kInvalidArgument, context + ": unknown safetensors option '" + key +
                                                "' (options: meta.KEY=VALUE, dedup=0|1)");
    }
  }
  return write_safetensors(out, tree, bytes, o);
}

constexpr std::array kOptions = {
    option_info(CKPTIO_OPTION_WRITE | CKPTIO_OPTION_PREFIX, "meta.",
                "meta.KEY=VALUE: an entry of the header's __metadata__"),
    option_info(CKPTIO_OPTION_WRITE, "dedup",
                "0/1: keep one name of tensors sharing bytes, as save_model does (else refused)",
                "0"),
    option_info(CKPTIO_OPTION_WRITE, kMaxShardSizeOption,
                "write a Hugging Face sharded directory, shards of at most this size (5GB, 500MB)"),
};

constexpr ShardedForm kSharded{hf::ShardKind::kSafetensors, 95, 85};

constexpr SingleFormatPlugin kPlugin{
    "safetensors", "0.1.0",
    {"safetensors", "Hugging Face safetensors: JSON header + raw little-endian tensors",
     ".safetensors", CKPTIO_CAN_READ | CKPTIO_CAN_WRITE},
    probe, decode, encode, kOptions.data(), kOptions.size(), nullptr, "format is read-only",
    &kSharded};

}  // namespace

CKPTIO_DEFINE_SINGLE_FORMAT_PLUGIN(kPlugin)
