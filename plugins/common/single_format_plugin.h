// A bundled plugin of one format whose codec decodes a whole file into a DecodedFile: the
// plugin states its format's facts and its codec calls in a SingleFormatPlugin, and
// CKPTIO_DEFINE_SINGLE_FORMAT_PLUGIN makes the C table, keeps the host table and wires
// open / read_storage / close / save to decoded_plugin's shared implementation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ckptio/plugin.hpp"
#include "formats/decoded_file.h"
#include "plugins/common/c_bridge.h"
#include "plugins/common/decoded_plugin.h"
#include "plugins/common/option_infos.h"
#include "plugins/common/sharded_checkpoint.h"
#include "plugins/common/verify_entry.h"

namespace ckptio::plugin {

struct SingleFormatPlugin {
  const char* plugin_name;
  const char* plugin_version;
  ckptio_format_info format;
  // 0..100 from the file's first n bytes (ckptio_plugin_api::probe, for this format).
  int32_t (*probe)(const uint8_t* head, size_t n, uint64_t file_size);
  // `options` holds the call's key=value settings, for the format's own keys.
  Result<DecodedFile> (*decode)(const ByteSource& src, const DecodedPluginOptions& common,
                                const ckptio_options* options);
  // Unused (null) for a read-only format (no CKPTIO_CAN_WRITE in format.caps), whose save
  // answers read_only_message.
  Status (*encode)(ByteSink& out, const Tree& tree, const StorageWriter& bytes,
                   const std::string& context, const ckptio_options* options);
  // The option keys the format understands (option_infos.h).
  const ckptio_option_info* options;
  uint32_t option_count;
  // The container check of `ckptio verify`: appends one line per problem, returns the
  // number of checksums verified. Null: none (the host opens the file with verify=1).
  uint64_t (*verify)(const ByteSource& src, std::vector<std::string>& problems);
  const char* read_only_message = "format is read-only";
  // The format's Hugging Face sharded form (directories, index files, max_shard_size), or
  // null when it has none.
  const ShardedForm* sharded = nullptr;
};

// Whether an optional entry is set, asked of a constant without the compiler's warning that
// a function's address is never null.
template <class F>
constexpr bool present(F* f) {
  return f != nullptr;
}

// One instance per plugin (P has internal linkage in the plugin's source), so each plugin
// keeps its own host table.
template <const SingleFormatPlugin& P>
struct SingleFormatTable {
  static inline const ckptio_host_api* host = nullptr;

  static int32_t probe(uint32_t, const uint8_t* head, size_t n, uint64_t file_size) {
    if (present(P.sharded) && is_index_head(*P.sharded, head, n)) return 95;
    return P.probe(head, n, file_size);
  }
  static int32_t probe_directory(uint32_t, const char* const* names, uint64_t count) {
    return sharded_probe_directory(*P.sharded, names, count);
  }
  static ckptio_status open(uint32_t, const ckptio_source* src, const ckptio_options* options,
                            const ckptio_builder* builder, ckptio_reader** out) {
    if (present(P.sharded) && opens_sharded(*P.sharded, src))
      return sharded_open(host, *P.sharded, P.decode, src, options, builder, out);
    auto decode = [options](const ByteSource& s, const DecodedPluginOptions& common) {
      return P.decode(s, common, options);
    };
    return decoded_open(host, decode, src, options, builder, out);
  }
  static ckptio_status read_storage(ckptio_reader* reader, uint32_t index, uint64_t offset,
                                    void* dst, uint64_t n) {
    return decoded_read_storage(host, reader, index, offset, dst, n);
  }
  static ckptio_status save(uint32_t, const ckptio_tree* tree, const ckptio_sink* sink,
                            const ckptio_options* options) {
    if constexpr (!(P.format.caps & CKPTIO_CAN_WRITE)) {
      return host->make_status(CKPTIO_UNSUPPORTED, P.read_only_message);
    } else {
      if (present(P.sharded) && saves_sharded(options))
        return sharded_save(host, *P.sharded, P.encode, tree, sink, options);
      auto encode = [options](ByteSink& out, const Tree& t, const StorageWriter& bytes,
                              const std::string& context) {
        return P.encode(out, t, bytes, context, options);
      };
      return encoded_save(host, encode, tree, sink, options);
    }
  }
  static const ckptio_option_info* options(uint32_t, uint32_t* count) {
    *count = P.option_count;
    return P.options;
  }
  static ckptio_status verify(uint32_t, const ckptio_source* src, const ckptio_options*,
                              const ckptio_verify_report* report) {
    // A checkpoint of several files: the host opens it with verify=1, which checks each
    // shard as it is read.
    if (present(P.sharded) && opens_sharded(*P.sharded, src))
      return host->make_status(CKPTIO_UNSUPPORTED, "no container check across shards");
    return verify_entry(host, P.plugin_name, src, report, P.verify);
  }
  static const ckptio_plugin_api* make_api(const ckptio_host_api* h) {
    host = h;
    static const ckptio_plugin_api api = {sizeof(ckptio_plugin_api),
                                          CKPTIO_ABI_VERSION,
                                          P.plugin_name,
                                          P.plugin_version,
                                          1,
                                          &P.format,
                                          probe,
                                          open,
                                          read_storage,
                                          decoded_close,
                                          save,
                                          options,
                                          present(P.verify) ? verify : nullptr,
                                          present(P.sharded) ? probe_directory : nullptr};
    return &api;
  }
};

}  // namespace ckptio::plugin

// Defines the plugin's entry symbol from its SingleFormatPlugin (a namespace-scope constant).
#define CKPTIO_DEFINE_SINGLE_FORMAT_PLUGIN(facts) \
  CKPTIO_DEFINE_PLUGIN(::ckptio::plugin::SingleFormatTable<facts>::make_api)
