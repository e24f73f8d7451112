// What the compressed plugin's two formats (zstd_format.cc, torch_zip_zstd_format.cc)
// provide to its one plugin table (compressed_plugin.cc), and what they share.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ckptio/plugin.h"

namespace ckptio::compressed {

extern const ckptio_host_api* g_host;  // kept by the entry

enum : uint32_t { kZstd = 0, kTorchZipZstd = 1 };

// A reader of either format; `format` says which.
struct Reader {
  uint32_t format;
  virtual ~Reader() = default;
};
inline ckptio_reader* as_c(Reader* r) { return reinterpret_cast<ckptio_reader*>(r); }
inline Reader* as_reader(ckptio_reader* r) { return reinterpret_cast<Reader*>(r); }

// Default limit on decoded bytes: the machine's physical memory.
uint64_t default_max_size();
// threads=N (0: the default), at most 256; level=N, any integer zstd takes.
unsigned option_threads(const ckptio_options* o);
int option_level(const ckptio_options* o, int fallback);

// One format's entries; the plugin table dispatches on the format index. open and
// read_storage may throw (the table catches at the boundary); the others catch themselves.
struct FormatOps {
  int32_t (*probe)(const uint8_t* head, size_t n);
  ckptio_status (*open)(const ckptio_source* source, const ckptio_options* options,
                        const ckptio_builder* builder, ckptio_reader** out);
  ckptio_status (*read_storage)(Reader* reader, uint32_t index, uint64_t offset, void* dst,
                                uint64_t n);
  ckptio_status (*save)(const ckptio_tree* tree, const ckptio_sink* sink,
                        const ckptio_options* options);
  const ckptio_option_info* options;
  uint32_t option_count;
  // CKPTIO_UNSUPPORTED when the format has no container check.
  ckptio_status (*verify)(const ckptio_source* source, const ckptio_verify_report* report);
};

extern const FormatOps kZstdFormat;
extern const FormatOps kTorchZipZstdFormat;

}  // namespace ckptio::compressed
