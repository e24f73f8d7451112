// The restricted pickle VM. It reads pickle protocols 0-5 as they occur in PyTorch
// checkpoints and builds a value tree. It never imports or calls anything: a GLOBAL is
// looked up in a fixed allow-list of torch's serialization globals (the rebuild functions,
// storage classes, dtypes, OrderedDict, torch.Size, torch.device, set, complex, ...) whose
// effect is implemented here in C++; any other global is refused with its dotted name,
// unless `allow_objects` turns it into an opaque kObject node.
//
// REDUCE of the tensor rebuild functions (_rebuild_tensor, _v2, _v3, _rebuild_parameter,
// _rebuild_parameter_with_state, _rebuild_from_type_v2 wrapping one of them) yields kTensor
// nodes that view the storage returned by `persistent_load` for the storage argument.
//
// Value mapping beyond the obvious: Python 2 str -> kStr (UTF-8 if valid, else latin-1);
// bytearray (REDUCE or BYTEARRAY8) -> kObject "builtins.bytearray" with args (kBytes,);
// set/frozenset -> kObject with args (kList,); torch.Size -> kTuple; dtypes -> kGlobal
// "torch.float32"; numpy scalars -> numbers, numeric numpy arrays -> kTensor (pickle_numpy.h,
// through inline_storage). Recursive structures (a container reaching itself) are refused with
// kUnsupported; sub-objects shared through the memo stay shared. With allow_objects,
// APPENDS/SETITEMS on an opaque object (list/dict subclasses) fill its items/entries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "formats/status.h"
#include "formats/value.h"

namespace ckptio {

struct PickleLimits {
  size_t max_depth = 1000;           // nesting of containers under construction (MARK depth)
  size_t max_memo = 1u << 22;        // memo entries
  size_t max_stack = 1u << 24;       // values on the VM stack
  uint64_t max_string = 1ull << 31;  // one str/bytes payload (also bounded by the input)
};

// Takes the bytes of an array that lives inside the pickle (a numpy array, pickle_numpy.h):
// its elements of `dtype`, little-endian, in C order. Returns the index of the storage that
// now holds them in the caller's storage list.
using InlineStorageFn = std::function<Result<uint32_t>(DType dtype, std::string bytes)>;

struct UnpickleOptions {
  // Prefix for every error message, e.g. "model.pt: record 'archive/data.pkl'".
  std::string context;
  PickleLimits limits;
  // Unknown globals become kObject nodes (never executed) instead of a kForbidden error.
  bool allow_objects = false;
  // TorchScript archives (torch.jit.save): classes of the `__torch__` namespace (scripted
  // modules and classes, `__torch__.torch.classes.*` custom classes) become kObject nodes
  // (GLOBAL + NEWOBJ + BUILD state; never executed), and torch._utils._rebuild_qtensor calls
  // become kObject "torch._utils._rebuild_qtensor" holding the raw call arguments, for the
  // caller to interpret. Every other global still goes through the allow-list.
  bool torchscript_objects = false;
  // Called with every global the pickle names (GLOBAL, STACK_GLOBAL, INST), spelled as
  // "module.name" after Python 3's fix_imports renames, before the allow-list is consulted; a
  // non-ok Status ends the run with its code and message (after `context`). For callers with
  // a narrower allow-list of their own (DCP .metadata), who then see even the globals that
  // leave no trace in the tree (torch.Size, _codecs.encode, numpy scalars). Unset: no check.
  std::function<Status(const std::string& dotted)> check_global;
  // Maps a persistent id (BINPERSID/PERSID argument) to a value; torch checkpoints return a
  // storage view (kTensor with is_storage). Unset: a persistent id is a kCorrupt error.
  std::function<Result<ValuePtr>(const ValuePtr& pid)> persistent_load;
  // numpy arrays become tensors whose storage is held in memory through this hook. Unset:
  // numpy arrays are kUnsupported (numpy scalars still read as numbers).
  InlineStorageFn inline_storage;
};

struct Unpickled {
  ValuePtr value;   // what STOP returned
  size_t consumed;  // bytes up to and including STOP
};

// Runs one pickle starting at data[0]. Errors: kCorrupt (bad opcode, stack underflow, bad
// argument types to a rebuild function, truncation: message contains "truncated"),
// kForbidden (global outside the allow-list, naming it "module.name"), kLimit.
Result<Unpickled> unpickle(const uint8_t* data, size_t size, const UnpickleOptions& options);

}  // namespace ckptio
