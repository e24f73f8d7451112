// libFuzzer target: TorchScript archives read as data (formats/torchscript/torchscript.h):
// head detection, the zip directory, constants.pkl/data.pkl through the unpickler with the
// __torch__ namespace, class source scanning of code/ records, both views (state_dict and
// modules; the first byte's low bit chooses), CRCs, then every storage's bytes read.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "formats/io.h"
#include "formats/torchscript/torchscript.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ckptio;
  if (size < 1) return 0;
  (void)torchscript_probe(data + 1, size - 1);
  MemorySource src(data + 1, size - 1, "fuzz.pt");
  TorchScriptReadOptions o;
  o.limits.max_depth = 200;
  o.limits.max_memo = 1u << 16;
  o.limits.max_string = 1u << 20;
  o.view = data[0] & 1 ? TorchScriptView::kModules : TorchScriptView::kStateDict;
  o.verify_crc = data[0] & 2;
  o.max_code_bytes = 1u << 20;
  auto f = read_torchscript(src, o);
  if (!f.ok()) return 0;
  for (size_t i = 0; i < f->tree.storages.size(); ++i) {
    const StorageExtent& e = f->extents[i];
    if (e.plain && (e.offset > size || e.length > size - e.offset)) __builtin_trap();
    if (e.length > (1u << 26)) continue;
    std::vector<uint8_t> buf(e.length);
    (void)read_storage_bytes(src, e, f->tree.storages[i].dtype, buf.data());
  }
  return 0;
}
