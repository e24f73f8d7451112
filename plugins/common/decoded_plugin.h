// The open / read_storage / close / save implementation shared by plugins whose codec
// decodes a whole file into a DecodedFile up front (torch-zip, torch-legacy, torchscript,
// safetensors; single_format_plugin.h wires them, the compressed plugin calls them itself).
#pragma once

#include <functional>

#include "ckptio/plugin.h"
#include "formats/decoded_file.h"
#include "formats/io.h"
#include "formats/pickle/unpickler.h"
#include "formats/status.h"
#include "formats/value.h"

namespace ckptio::plugin {

struct DecodedPluginOptions {
  PickleLimits limits;
  bool allow_objects = false;
  bool verify = false;
  bool defer_storage_headers = false;  // torch-legacy inside a zstd stream (LegacyReadOptions)
};

// The read options every decoded plugin takes from the call's key=value settings.
DecodedPluginOptions decoded_plugin_options(const ckptio_options* options);

using DecodeFn =
    std::function<Result<DecodedFile>(const ByteSource& src, const DecodedPluginOptions& opts)>;
using EncodeFn = std::function<Status(ByteSink& out, const Tree& tree,
                                      const StorageWriter& bytes, const std::string& context)>;

ckptio_status decoded_open(const ckptio_host_api* host, const DecodeFn& decode,
                           const ckptio_source* source, const ckptio_options* options,
                           const ckptio_builder* builder, ckptio_reader** out);
ckptio_status decoded_read_storage(const ckptio_host_api* host, ckptio_reader* reader,
                                   uint32_t index, uint64_t offset, void* dst, uint64_t n);
void decoded_close(ckptio_reader* reader);
ckptio_status encoded_save(const ckptio_host_api* host, const EncodeFn& encode,
                           const ckptio_tree* tree, const ckptio_sink* sink,
                           const ckptio_options* options);

}  // namespace ckptio::plugin
