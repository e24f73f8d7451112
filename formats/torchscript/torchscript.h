// TorchScript archives (torch.jit.save, _save_for_lite_interpreter) read as plain data: no
// LibTorch, no interpreter, nothing executed. The archive's pickles (constants.pkl, data.pkl)
// go through the restricted unpickler with UnpickleOptions::torchscript_objects, so the
// `__torch__.*` module objects arrive as opaque kObject nodes whose BUILD state is their
// attribute dict. Which attributes are parameters and buffers is read (as text, never run)
// from the class source in code/<qualifier>.py: the `__parameters__ = [...]` and
// `__buffers__ = [...]` lines of the `class Name(Module):` block; methods are its
// `def name(` lines.
//
// Two views of the same archive (TorchScriptView):
//
//  * kStateDict (default): the module's state_dict as Python's scripted_module.state_dict()
//    returns it: an OrderedDict of dotted names ("sub.fc.weight") to plain tensors, in
//    Python's order (each module's parameters, then its buffers, then its submodules).
//    Written by torch-zip or torch-legacy, it is what model.load_state_dict accepts.
//
//  * kModules: the whole archive for inspection, as nested OrderedDicts:
//      {"module": M, "constants": [...], "extra_files": {name: bytes},
//       "archive": {"prefix", "version", "lite", ["bytecode_version"]}}
//      M = {"class": "__torch__.Net", "parameters": {name: Parameter},
//           "buffers": {name: tensor}, "submodules": {name: M}, "attributes": {...},
//           "methods": ["forward", ...]}
//    Names inside "parameters" / "buffers" are the local names of named_parameters /
//    named_buffers (the dotted name is the path of "submodules" keys plus that name).
//
// Quantized tensors (torch._utils._rebuild_qtensor) have no place in the value tree: the
// modules view shows each as an object "torch._utils._rebuild_qtensor" whose args are the
// integer tensor (dtype qint8 / quint8 / qint32, readable) followed by the quantizer
// parameters (qscheme, scale(s), zero point(s)[, axis]); in the state_dict view a quantized
// parameter or buffer is kUnsupported, naming its key, dtype and qscheme.
// Lite-interpreter archives (bytecode.pkl; tensors often under constants/ with storage
// context keys "<n>.storage") read the same way; bytecode itself is not interpreted.
// Byte-level spec: SPEC.md beside this file.
#pragma once

#include <string>
#include <vector>

#include "formats/io.h"
#include "formats/pickle/unpickler.h"
#include "formats/status.h"
#include "formats/value.h"
#include "formats/zip/torch_zip.h"

namespace ckptio {

enum class TorchScriptView { kStateDict, kModules };

struct TorchScriptReadOptions {
  PickleLimits limits;
  TorchScriptView view = TorchScriptView::kStateDict;
  bool verify_crc = false;
  uint64_t max_code_bytes = 64ull << 20;  // one code/*.py record
};

// Parses "state_dict" / "modules"; kInvalidArgument otherwise.
Result<TorchScriptView> parse_torchscript_view(const std::string& name);

// Detection from the first bytes of a file (no I/O): 80 when a zip header in `head` names a
// TorchScript-only record (constants.pkl, bytecode.pkl, code/, extra/, *.debug_pkl); 61 when
// the first record is <prefix>/data/<n> under a prefix other than "archive" (TorchScript
// writes tensors first, torch.save writes data.pkl first, torch::pickle_save uses "archive");
// 0 otherwise.
int torchscript_probe(const uint8_t* head, size_t n);

// What the class source says about one TorchScript class.
struct ScriptClassInfo {
  bool found = false;      // a `class Name` block was found in its code/ record
  bool is_module = false;  // derives from Module (or declares __parameters__)
  std::vector<std::string> parameters, buffers, methods;
};
// Parses the `class <name>` block of TorchScript source text (the content of one code/*.py
// record). Pure text scanning.
ScriptClassInfo parse_script_class(const std::string& source, const std::string& class_name);

// Reads the archive. Errors: kCorrupt (missing constants.pkl or data.pkl, records that do
// not match their storages, truncation), kUnsupported (pre-1.3 model.json archives,
// quantized tensors in the state_dict view, format versions outside 1..10), kForbidden
// (a global outside the allow-list and the __torch__ namespace).
// An archive without constants.pkl and without code/ is a plain torch.save zip: it is read
// as one (read_torch_zip), so a mis-detected file still loads.
Result<DecodedFile> read_torchscript(const ByteSource& src, const TorchScriptReadOptions& options);

}  // namespace ckptio
