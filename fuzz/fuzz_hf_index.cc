// libFuzzer target: the Hugging Face index codec (formats/hf/hf_index.h). Whatever
// parse_index accepts must be consistent (a non-empty weight_map whose distinct shard files,
// sorted, are `shards`), must be decided by the head probe from its first shard's extension
// (given the whole text), and must read back the same after write_index (sorted by name). The
// probe, on every prefix the input offers, must never read past its head.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "formats/hf/hf_index.h"

namespace {

// Python's json (and parse_index) takes any string; write_index writes a byte that is not
// part of valid UTF-8 as U+FFFD, so two invalid names may become one.
bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += len;
  }
  return true;
}

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ckptio::hf;
  // An exact-size heap copy, so ASan sees any read past the head's end.
  for (size_t n : {size / 2, size}) {
    std::unique_ptr<uint8_t[]> head(new uint8_t[n ? n : 1]);
    if (n) std::memcpy(head.get(), data, n);
    (void)probe_index_head(head.get(), n);
  }

  const char* text = reinterpret_cast<const char*>(data);
  auto r = parse_index(text, size, "fuzz.index.json");
  if (!r.ok()) {
    if (r.status().message().find("fuzz.index.json") == std::string::npos) __builtin_trap();
    return 0;
  }
  const Index& index = r.value();
  if (index.weight_map.empty()) __builtin_trap();
  std::set<std::string> files;
  for (const auto& [name, file] : index.weight_map) files.insert(file);
  if (std::vector<std::string>(files.begin(), files.end()) != index.shards) __builtin_trap();

  const std::string& first = index.weight_map[0].second;
  const std::optional<ShardKind> want =
      ends_with(first, ".safetensors") ? std::optional<ShardKind>(ShardKind::kSafetensors)
      : ends_with(first, ".bin")       ? std::optional<ShardKind>(ShardKind::kBin)
                                       : std::nullopt;
  if (probe_index_head(data, size) != want) __builtin_trap();

  // What the writer writes, the reader reads: the same entries, sorted by name (parse_index
  // refuses duplicates, so none is dropped), when every string is valid UTF-8.
  for (const auto& [name, file] : index.weight_map)
    if (!valid_utf8(name) || !valid_utf8(file)) return 0;
  IndexMetadata meta;
  meta.total_size = index.total_size.value_or(0);
  const std::string again_text = write_index(index.weight_map, meta);
  auto again = parse_index(again_text.data(), again_text.size(), "fuzz.again.json");
  if (!again.ok()) __builtin_trap();
  auto sorted = index.weight_map;
  std::sort(sorted.begin(), sorted.end());
  if (again.value().weight_map != sorted) __builtin_trap();
  if (again.value().total_size != meta.total_size) __builtin_trap();
  return 0;
}
