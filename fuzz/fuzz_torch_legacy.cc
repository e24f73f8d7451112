// libFuzzer target: the legacy torch.save stream (formats/legacy/torch_legacy.h): the five
// pickles, the storage blob headers checked against declared sizes and the file size, then
// every storage's bytes read.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "formats/io.h"
#include "formats/legacy/torch_legacy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ckptio;
  (void)looks_like_torch_legacy(data, size);
  MemorySource src(data, size, "fuzz.pt");
  LegacyReadOptions o;
  o.limits.max_depth = 200;
  o.limits.max_memo = 1u << 16;
  o.limits.max_string = 1u << 20;
  o.allow_objects = size & 1;
  auto f = read_torch_legacy(src, o);
  if (!f.ok()) return 0;
  for (size_t i = 0; i < f->tree.storages.size(); ++i) {
    const StorageExtent& e = f->extents[i];
    if (e.offset > size || e.length > size - e.offset) __builtin_trap();  // plain, in the file
    std::vector<uint8_t> buf(e.length);
    (void)read_storage_bytes(src, e, f->tree.storages[i].dtype, buf.data());
  }
  return 0;
}
