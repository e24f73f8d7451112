// torchscript: torch.jit.save archives (and lite-interpreter .ptl files) read as plain data,
// without LibTorch and without running any code (formats/torchscript). Read-only: writing a
// loadable TorchScript archive needs TorchScript source, which only LibTorch produces (see
// ckptio::save_script_module in libckptio_torch).
//
// Options (key=value):
//   view=state_dict  (default) the module's state_dict: OrderedDict of dotted names to
//                    tensors, in Python's order; `ckptio convert` of it gives a file that
//                    Python's model.load_state_dict accepts.
//   view=modules     the module tree (class, parameters, buffers, submodules, attributes,
//                    methods), tensor constants, extra files and archive facts; what
//                    `ckptio inspect` shows.
#include <array>
#include <string>
#include <vector>

#include "ckptio/plugin.hpp"
#include "formats/torchscript/torchscript.h"
#include "formats/zip/zip_verify.h"
#include "plugins/common/single_format_plugin.h"

namespace {

using namespace ckptio;
using namespace ckptio::plugin;

int32_t probe(const uint8_t* head, size_t n, uint64_t) { return torchscript_probe(head, n); }

Result<DecodedFile> decode(const ByteSource& src, const DecodedPluginOptions& common,
                           const ckptio_options* options) {
  CKPTIO_ASSIGN_OR_RETURN(TorchScriptView view,
                          parse_torchscript_view(sdk::option(options, "view", "state_dict")));
  TorchScriptReadOptions ro;
  ro.limits = common.limits;
  ro.verify_crc = common.verify;
  ro.view = view;
  return read_torchscript(src, ro);
}

uint64_t verify(const ByteSource& src, std::vector<std::string>& problems) {
  return verify_zip_records(src, problems);
}

constexpr auto kOptions = concat(
    kDecodedReadOptions,
    std::array{option_info(CKPTIO_OPTION_READ, "view",
                           "state_dict (what load_state_dict takes) or modules (the module tree)",
                           "state_dict", "modules")});

constexpr SingleFormatPlugin kPlugin{
    "torchscript", "0.1.0",
    {"torchscript", "torch.jit.save archive (TorchScript, also lite .ptl), read as data", ".pt",
     CKPTIO_CAN_READ},
    probe, decode, nullptr, kOptions.data(), kOptions.size(), verify,
    "the torchscript format is read-only here: save a torch::jit::Module with "
    "ckptio::save_script_module (libckptio_torch)"};

}  // namespace

CKPTIO_DEFINE_SINGLE_FORMAT_PLUGIN(kPlugin)
