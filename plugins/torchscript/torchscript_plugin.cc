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
#include <string>

#include "ckptio/plugin.hpp"
#include "formats/torchscript/torchscript.h"
#include "plugins/common/decoded_plugin.h"

namespace {

using namespace ckptio;
using namespace ckptio::plugin;

const ckptio_host_api* g_host = nullptr;

const ckptio_format_info kFormats[] = {
    {"torchscript", "torch.jit.save archive (TorchScript, also lite .ptl), read as data", ".pt",
     CKPTIO_CAN_READ},
};

int32_t probe(uint32_t, const uint8_t* head, size_t n, uint64_t) {
  return torchscript_probe(head, n);
}

ckptio_status plugin_open(uint32_t, const ckptio_source* src, const ckptio_options* options,
                          const ckptio_builder* builder, ckptio_reader** out) {
  auto decode = [options](const ByteSource& s,
                          const DecodedPluginOptions& o) -> Result<DecodedFile> {
    CKPTIO_ASSIGN_OR_RETURN(TorchScriptView view,
                            parse_torchscript_view(sdk::option(options, "view", "state_dict")));
    TorchScriptReadOptions ro;
    ro.limits = o.limits;
    ro.verify_crc = o.verify;
    ro.view = view;
    return read_torchscript(s, ro);
  };
  return decoded_open(g_host, decode, src, options, builder, out);
}

ckptio_status plugin_read_storage(ckptio_reader* r, uint32_t i, uint64_t off, void* dst,
                                  uint64_t n) {
  return decoded_read_storage(g_host, r, i, off, dst, n);
}

ckptio_status plugin_save(uint32_t, const ckptio_tree*, const ckptio_sink*,
                          const ckptio_options*) {
  return g_host->make_status(CKPTIO_UNSUPPORTED,
                             "the torchscript format is read-only here: save a "
                             "torch::jit::Module with ckptio::save_script_module (libckptio_torch)");
}

const ckptio_plugin_api* make_api(const ckptio_host_api* host) {
  g_host = host;
  static const ckptio_plugin_api api = {
      sizeof(ckptio_plugin_api), CKPTIO_ABI_VERSION, "torchscript", "0.1.0", 1, kFormats,
      probe, plugin_open, plugin_read_storage, decoded_close, plugin_save};
  return &api;
}

}  // namespace

CKPTIO_DEFINE_PLUGIN(make_api)
