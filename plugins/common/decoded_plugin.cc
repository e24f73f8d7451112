#include "plugins/common/decoded_plugin.h"

#include <memory>
#include <vector>

#include "ckptio/plugin.hpp"
#include "plugins/common/c_bridge.h"
#include "plugins/common/decoded_reader.h"

namespace ckptio::plugin {

DecodedPluginOptions decoded_plugin_options(const ckptio_options* options) {
  DecodedPluginOptions opts;
  opts.limits = limits_from_options(options);
  opts.allow_objects = sdk::option_flag(options, "allow_objects");
  opts.verify = sdk::option_flag(options, "verify");
  opts.defer_storage_headers = sdk::option_flag(options, "defer_storage_headers");
  return opts;
}

ckptio_status decoded_open(const ckptio_host_api* host, const DecodeFn& decode,
                           const ckptio_source* source, const ckptio_options* options,
                           const ckptio_builder* builder, ckptio_reader** out) {
  return sdk::guard(host, source->name, [&]() -> ckptio_status {
    auto reader = std::make_unique<ckptio_reader_s>();
    reader->sources.push_back(std::make_unique<CSource>(host, source));
    const DecodedPluginOptions opts = decoded_plugin_options(options);
    auto decoded = decode(*reader->sources[0], opts);
    if (!decoded.ok()) return to_c(host, decoded.status());
    reader->file = std::move(decoded).value();
    Status st = emit_tree(host, reader->file, builder);
    if (!st.ok()) return to_c(host, st);
    *out = reader.release();
    return nullptr;
  });
}

ckptio_status decoded_read_storage(const ckptio_host_api* host, ckptio_reader* reader,
                                   uint32_t index, uint64_t offset, void* dst, uint64_t n) {
  return sdk::guard(host, "read_storage", [&]() -> ckptio_status {
    const auto& storages = reader->file.tree.storages;
    if (index >= storages.size())
      return host->make_status(CKPTIO_INVALID_ARGUMENT, "read_storage: no such storage");
    const StorageExtent& e = reader->file.extents[index];
    const ByteSource* src = reader->source_of(e.member);
    if (!src) return host->make_status(CKPTIO_INTERNAL, "read_storage: storage in an unopened member");
    if (offset > e.length || n > e.length - offset)
      return host->make_status(CKPTIO_INVALID_ARGUMENT, "read_storage: range out of bounds");
    if (offset == 0 && n == e.length)
      return to_c(host, read_storage_bytes(*src, e, storages[index].dtype, dst));
    if (e.bytes) {  // held in memory (a numpy array from the pickle)
      std::memcpy(dst, e.bytes->data() + offset, n);
      return nullptr;
    }
    if (e.method == 0 && !e.byteswap) {  // stored bytes: read the range alone
      Status st = check_count_prefix(*src, e, storages[index].dtype);
      if (st.ok()) st = src->read_at(e.offset + offset, dst, n);
      return to_c(host, st);
    }
    // A partial range of a storage that needs decoding: decode it whole, copy the range.
    std::vector<uint8_t> whole(e.length);
    Status st = read_storage_bytes(*src, e, storages[index].dtype, whole.data());
    if (!st.ok()) return to_c(host, st);
    std::memcpy(dst, whole.data() + offset, n);
    return nullptr;
  });
}

void decoded_close(ckptio_reader* reader) { delete reader; }

ckptio_status encoded_save(const ckptio_host_api* host, const EncodeFn& encode,
                           const ckptio_tree* tree, const ckptio_sink* sink,
                           const ckptio_options* options) {
  std::string context = sink->name ? sink->name : "<output>";
  return sdk::guard(host, context.c_str(), [&]() -> ckptio_status {
    auto imported = import_tree(tree);
    if (!imported.ok()) return to_c(host, imported.status().with_context(context));
    CSink out(host, sink);
    return to_c(host, encode(out, imported.value(), storage_writer(host, tree), context));
  });
}

}  // namespace ckptio::plugin
