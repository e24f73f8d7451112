// libFuzzer target: the whole read path through the host and the real plugins (loaded with
// Boost.DLL from the fuzz build): probe (format detection) and open of every plugin, every
// storage read, then the tree printed and JSON-encoded as `ckptio inspect` does.
//
// The first input byte chooses the format: 0 detect (every plugin's probe), 1 torch-zip,
// 2 torch-legacy, 3 zstd, 4 torch-zip-zstd, 5 torchscript, 6 safetensors (others: detect).
// The rest is the file.
// Decoded sizes are capped (max_size) so a decompression bomb is a refusal, not an OOM.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "ckptio/ckptio.h"
#include "host/render/json_encode.h"
#include "host/render/tree_printer.h"

namespace {
const char* const kFormats[] = {"",     "torch-zip",      "torch-legacy",
                                "zstd", "torch-zip-zstd", "torchscript", "safetensors"};
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("CKPTIO_PLUGIN_PATH", CKPTIO_FUZZ_PLUGIN_DIR, 1);
  ckptio::Registry::global();  // discover once, outside the measured inputs
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  using namespace ckptio;
  LoadOptions o;
  o.format = (data[0] & 0xf) < 7 ? kFormats[data[0] & 0xf] : "";
  o.threads = 1;
  o.verify = data[0] & 0x10;
  o.allow_objects = data[0] & 0x20;
  o.plugin_options = {{"max_size", std::to_string(64u << 20)}, {"max_depth", "200"},
                      {"max_memo", "65536"}, {"max_string", "1048576"}, {"threads", "1"}};
  try {
    Checkpoint c = load_buffer(data + 1, size - 1, "fuzz.pt", o);
    std::ostringstream out;
    host::print_tree(out, c);
    (void)host::inspect_json(c, false);
  } catch (const Error&) {
    // A clean refusal: what every hostile input must end in.
  }
  return 0;
}
