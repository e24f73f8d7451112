// libFuzzer target: the torch.save zip format (formats/zip/torch_zip.h): directory, data.pkl
// through the restricted unpickler, storage records located and size-checked, CRCs verified,
// then every storage's bytes read as a loader would.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "formats/io.h"
#include "formats/zip/torch_zip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ckptio;
  MemorySource src(data, size, "fuzz.pt");
  ZipReadOptions o;
  o.limits.max_depth = 200;
  o.limits.max_memo = 1u << 16;
  o.limits.max_string = 1u << 20;
  o.verify_crc = size & 1;
  o.allow_objects = size & 2;
  auto f = read_torch_zip(src, o);
  if (!f.ok()) return 0;
  for (size_t i = 0; i < f->tree.storages.size(); ++i) {
    const StorageExtent& e = f->extents[i];
    // Extents were checked against the file: a plain one must lie inside it, and no
    // storage may claim more bytes than a deflated record can expand to within limits.
    if (e.plain && (e.offset > size || e.length > size - e.offset)) __builtin_trap();
    if (e.length > (1u << 26)) continue;
    std::vector<uint8_t> buf(e.length);
    (void)read_storage_bytes(src, e, f->tree.storages[i].dtype, buf.data());
  }
  return 0;
}
