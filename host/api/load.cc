// detect_format(), load() and load_buffer(): whole-file reads through Reader.
#include <vector>

#include "ckptio/ckptio.h"
#include "host/abi/registry_impl.h"
#include "host/api/call_context.h"
#include "host/io/checkpoint_source.h"

namespace ckptio {

using host::fail;
using host::registry_of;
using host::with_file;

std::string detect_format(const std::string& path, Registry* registry) {
  auto src = host::CheckpointSource::open(path);
  if (!src.ok()) fail(src.status());
  src.value()->advise_parsing(true);  // probes read file heads (or a directory's listing) only
  auto f = registry_of(registry).impl().choose_format(*src.value(), "");
  if (!f.ok()) fail(f.status());
  return f.value().name;
}

namespace {
Checkpoint load_all(Reader& r, const LoadOptions& options) {
  if (options.load_data) {
    std::vector<uint32_t> all(r.tree().storages.size());
    for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
    r.read_storages(all);
  }
  return r.checkpoint();
}
}  // namespace

Checkpoint load(const std::string& path, const LoadOptions& options) {
  auto r = Reader::open(path, options);
  return load_all(*r, options);
}

Checkpoint load_buffer(const void* data, uint64_t size, const std::string& name,
                       const LoadOptions& options) {
  auto r = Reader::open_buffer(data, size, name, options);
  return load_all(*r, options);
}

}  // namespace ckptio
