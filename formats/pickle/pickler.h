// Writes a value tree as a protocol-2 pickle exactly the way Python's torch.save does, so
// that torch.load (including weights_only=True) reads it back with the same structure:
// OrderedDict + BUILD for attrs (a state_dict's _metadata), _rebuild_tensor_v2 with legacy
// storage classes, _rebuild_tensor_v3 + UntypedStorage for the 2.x dtypes, _rebuild_parameter
// for Parameters, bytes via _codecs.encode, ints as BININT*/LONG1, floats as BINFLOAT.
// Shared nodes are written once and memoized (BINPUT/BINGET), so sharing survives.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/status.h"
#include "formats/value.h"

namespace ckptio {

struct TorchPickleOptions {
  // Persistent ids: zip uses ('storage', cls, key, location, numel); legacy adds a 6th
  // element, None (view metadata).
  bool legacy_ids = false;
  std::string context;  // prefix for error messages (the output file)
};

struct TorchPickled {
  std::string bytes;
  // Tree::storages indices in first-use order. Storage storage_order[k] was written with
  // key std::to_string(k); the container writes its bytes under that key.
  std::vector<uint32_t> storage_order;
  // For each entry of storage_order: the numel and element type the persistent id declared.
  std::vector<DType> storage_dtype;
};

// Errors: kInvalidArgument when the tree cannot be expressed (e.g. two tensors viewing one
// storage as different legacy dtypes, as torch.save refuses too).
Result<TorchPickled> pickle_torch(const Tree& tree, const TorchPickleOptions& options);

// Plain protocol-2 pickle of a value without tensors (legacy header pickles, tests). An
// object (kObject) is written as its class, its arguments (an empty tuple when it has none)
// and REDUCE, cls(*args); one of `newobj_classes` with NEWOBJ instead, cls.__new__(cls, *args),
// as Python writes instances of ordinary classes and dataclasses, whose __init__ must not run
// (DCP's metadata). Either way BUILD then applies its state.
Result<std::string> pickle_plain(const Value& value,
                                 const std::vector<std::string>& newobj_classes = {});

}  // namespace ckptio
