// libFuzzer target: the torch.distributed.checkpoint `.metadata` decoder
// (formats/dcp/dcp_metadata.h). Whatever it accepts must hold what it promises: every chunk
// inside its tensor with the tensor's rank, the chunks' volumes adding up to the tensor's
// (disjoint and covering), every chunk and bytes item with its storage entry, and no storage
// path that is empty, absolute or climbs out with "..". Refusals name the file.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/dcp/dcp_metadata.h"

namespace {

bool climbs_out(const std::string& path) {
  if (path.empty() || path[0] == '/' || path.find('\\') != std::string::npos ||
      path.find('\0') != std::string::npos)
    return true;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t end = std::min(path.find('/', start), path.size());
    if (path.compare(start, end - start, "..") == 0 && end - start == 2) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ckptio::dcp;
  auto r = parse_dcp_metadata(data, size, "fuzz/.metadata");
  if (!r.ok()) {
    if (r.status().message().rfind("fuzz/.metadata", 0) != 0) __builtin_trap();
    return 0;
  }
  const DcpMetadata& md = r.value();
  for (const Item& item : md.items) {
    if (item.kind == Item::Kind::kBytes) {
      if (!md.find_storage(item.fqn, nullptr)) __builtin_trap();
      continue;
    }
    unsigned __int128 volume = 1, covered = 0;
    for (int64_t d : item.size) {
      if (d < 0) __builtin_trap();
      volume *= static_cast<uint64_t>(d);
    }
    for (const Chunk& c : item.chunks) {
      if (c.offsets.size() != item.size.size() || c.sizes.size() != item.size.size())
        __builtin_trap();
      unsigned __int128 v = 1;
      for (size_t k = 0; k < item.size.size(); ++k) {
        if (c.offsets[k] < 0 || c.sizes[k] < 0 || c.offsets[k] > item.size[k] ||
            c.sizes[k] > item.size[k] - c.offsets[k])
          __builtin_trap();
        v *= static_cast<uint64_t>(c.sizes[k]);
      }
      covered += v;
      if (!md.find_storage(item.fqn, &c.offsets)) __builtin_trap();
    }
    // Disjoint boxes inside the tensor that cover it: their volumes add up to its volume
    // (a tensor with no elements may list empty chunks, or none).
    if (volume != 0 && covered != volume) __builtin_trap();
  }
  for (const StorageEntry& e : md.storage_data) {
    if (climbs_out(e.info.relative_path)) __builtin_trap();
    if (e.info.offset < 0 || e.info.length < 0) __builtin_trap();
    if (!md.find(e.index.fqn)) __builtin_trap();
  }
  return 0;
}
