// libFuzzer target: the restricted pickle VM (formats/pickle/unpickler.h) with torch's
// persistent ids (StorageTable), then every tensor view checked against its storage and
// the tree walked — as read_torch_zip does with data.pkl. Both allow_objects settings run
// (the first input byte's low bit chooses), with small limits so that depth, memo and size
// limits are reached within the fuzzer's input sizes.
#include <cstddef>
#include <cstdint>

#include "formats/pickle/storage_table.h"
#include "formats/pickle/unpickler.h"
#include "formats/value.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  using namespace ckptio;
  StorageTable table("fuzz");
  UnpickleOptions o;
  o.context = "fuzz";
  o.allow_objects = data[0] & 1;
  o.limits.max_depth = 200;
  o.limits.max_memo = 1u << 16;
  o.limits.max_stack = 1u << 16;
  o.limits.max_string = 1u << 20;
  o.persistent_load = [&table](const ValuePtr& pid) { return table.load(pid); };
  auto r = unpickle(data + 1, size - 1, o);
  if (!r.ok()) return 0;
  if (r->consumed > size - 1) __builtin_trap();  // consumed must stay inside the input
  Status bad;
  for_each_tensor(r->value, [&](const ValuePtr& t, const std::string& path) {
    if (bad.ok()) bad = check_tensor_view(t->tensor, table.storages(), path);
  });
  return 0;
}
