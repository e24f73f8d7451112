// compressed: two formats in one plugin, one file each: zstd (zstd_format.cc), a zstd
// stream around another format's bytes, and torch-zip-zstd (torch_zip_zstd_format.cc),
// torch.save's zip layout with chunked zstd records. This file is the plugin table, which
// dispatches on the format index, and what the two share.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "ckptio/plugin.hpp"
#include "plugins/compressed/compressed_format.h"

namespace ckptio::compressed {

const ckptio_host_api* g_host = nullptr;

// Default limit on decoded bytes: the machine's physical memory.
uint64_t default_max_size() {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return 64ull << 30;
  return uint64_t(pages) * uint64_t(page);
}
unsigned option_threads(const ckptio_options* o) {
  return unsigned(std::min<unsigned long long>(sdk::option_uint(o, "threads", 0), 256));
}

int option_level(const ckptio_options* o, int fallback) {
  std::string v = sdk::option(o, "level");
  if (v.empty()) return fallback;
  char* end = nullptr;
  long n = std::strtol(v.c_str(), &end, 10);
  if (!end || *end || n < -1000000 || n > 1000)
    throw sdk::PluginError(CKPTIO_INVALID_ARGUMENT, "option level=" + v + " is not an integer");
  return int(n);
}

namespace {

const ckptio_format_info kFormats[] = {
    {"zstd", "zstd stream around another format (option inner=FORMAT, default torch-zip)",
     ".pt.zst", CKPTIO_CAN_READ | CKPTIO_CAN_WRITE},
    {"torch-zip-zstd",
     "torch.save zip layout with chunked, byte-grouped zstd data records (parallel decoding)",
     ".pt", CKPTIO_CAN_READ | CKPTIO_CAN_WRITE},
};

const FormatOps& ops(uint32_t format) {
  return format == kZstd ? kZstdFormat : kTorchZipZstdFormat;
}

int32_t plugin_probe(uint32_t format, const uint8_t* head, size_t n, uint64_t) {
  return ops(format).probe(head, n);
}
ckptio_status plugin_open(uint32_t format, const ckptio_source* src, const ckptio_options* options,
                          const ckptio_builder* builder, ckptio_reader** out) {
  return sdk::guard(g_host, src->name ? src->name : "<input>",
                    [&] { return ops(format).open(src, options, builder, out); });
}
ckptio_status plugin_read_storage(ckptio_reader* reader, uint32_t index, uint64_t offset,
                                  void* dst, uint64_t n) {
  return sdk::guard(g_host, "read_storage", [&] {
    Reader* r = as_reader(reader);
    return ops(r->format).read_storage(r, index, offset, dst, n);
  });
}
void plugin_close(ckptio_reader* reader) { delete as_reader(reader); }
ckptio_status plugin_save(uint32_t format, const ckptio_tree* tree, const ckptio_sink* sink,
                          const ckptio_options* options) {
  return ops(format).save(tree, sink, options);
}
const ckptio_option_info* plugin_options(uint32_t format, uint32_t* count) {
  *count = ops(format).option_count;
  return ops(format).options;
}
ckptio_status plugin_verify(uint32_t format, const ckptio_source* source, const ckptio_options*,
                            const ckptio_verify_report* report) {
  return ops(format).verify(source, report);
}

const ckptio_plugin_api* make_api(const ckptio_host_api* host) {
  g_host = host;
  static const ckptio_plugin_api api = {sizeof(ckptio_plugin_api),
                                        CKPTIO_ABI_VERSION,
                                        "compressed",
                                        "0.1.0",
                                        2,
                                        kFormats,
                                        plugin_probe,
                                        plugin_open,
                                        plugin_read_storage,
                                        plugin_close,
                                        plugin_save,
                                        plugin_options,
                                        plugin_verify,
                                        nullptr};  // probe_directory: no directory form
  return &api;
}

}  // namespace
}  // namespace ckptio::compressed

CKPTIO_DEFINE_PLUGIN(ckptio::compressed::make_api)
