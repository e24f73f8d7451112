// libFuzzer target: the safetensors codec (formats/safetensors/safetensors.h). The header is
// parsed strictly and every tensor located; a file that is accepted must have every extent
// inside it, and written back (the writer's checks, sharing and ordering) it must read again
// with the same tensors.
#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/io.h"
#include "formats/safetensors/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ckptio;
  MemorySource src(data, size, "fuzz.safetensors");
  auto f = read_safetensors(src);
  if (!f.ok()) return 0;
  for (const StorageExtent& e : f->extents)
    if (e.offset > size || e.length > size - e.offset) __builtin_trap();
  const auto& extents = f->extents;
  StorageWriter bytes = [&](uint32_t i, ByteSink& out) {
    return out.write(data + extents[i].offset, extents[i].length);
  };
  StringSink out;
  SafetensorsWriteOptions o;
  o.context = "fuzz.out";
  o.dedup = size & 1;
  if (!write_safetensors(out, f->tree, bytes, o).ok()) return 0;
  MemorySource again(out.out.data(), out.out.size(), "fuzz.again");
  auto g = read_safetensors(again);
  if (!g.ok()) __builtin_trap();  // what the writer writes, the reader reads
  // One storage per tensor both times (with dedup, fewer: the dropped names).
  if (o.dedup ? g->tree.storages.size() > f->tree.storages.size()
              : g->tree.storages.size() != f->tree.storages.size())
    __builtin_trap();
  return 0;
}
