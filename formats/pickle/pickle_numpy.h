// Private to formats/pickle: numpy values inside checkpoints (metrics, histories), read as
// data. torch's weights-only loader refuses numpy; this layer implements, in C++, what the
// few numpy globals a pickled array or scalar uses would build, and nothing else:
//
//   numpy.dtype(name, align, copy) + BUILD state   a numeric dtype: b1, i1..i8, u1..u8, f2..f8,
//                                                  c8, c16 (any other kind is refused by name)
//   numpy[._]core.multiarray.scalar(dtype, raw)    -> kBool / kInt / kBigInt / kFloat, or
//                                                     kObject builtins.complex (re, im)
//   numpy[._]core.multiarray._reconstruct(ndarray, (0,), b'b') + BUILD (version, shape,
//       dtype, is_fortran, raw)                    -> kTensor of the dtype and shape
//   numpy[._]core.numeric._frombuffer(buf, dtype, shape, order)   (protocol 5) -> kTensor
//
// An array's bytes are inside the pickle, not in a storage record: they are handed,
// little-endian and in C order whatever the file's byte order and layout, to the caller's
// UnpickleOptions::inline_storage, which keeps them as a storage held in memory.
#pragma once

#include <cstddef>
#include <string>

#include "formats/pickle/unpickler.h"
#include "formats/value.h"

namespace ckptio {
namespace pickle_detail {

struct CallSite;

// Per unpickle() run: where array bytes go, and the arrays _reconstruct made that no BUILD
// has filled yet (a pickle that ends with one is malformed: it would leave an empty object).
struct NumpyContext {
  const InlineStorageFn* add_storage = nullptr;  // null or empty: arrays are kUnsupported
  size_t unbuilt = 0;
  size_t unbuilt_offset = 0;  // where the last unfilled array was made, for the message
};

// The numpy globals above, and numpy.ndarray (only as _reconstruct's first argument).
bool is_numpy_global(const std::string& dotted);
// REDUCE of a numpy global (is_numpy_global(fn) must hold). Throws PickleError naming `fn`.
ValuePtr numpy_call(const std::string& fn, const Value& args, const CallSite& site);
// BUILD on a numpy dtype or on an array made by _reconstruct; false (nothing done) when `obj`
// is neither.
bool numpy_build(const ValuePtr& obj, const ValuePtr& state, const CallSite& site);
// At STOP: throws kCorrupt when an array from _reconstruct never got its state.
void numpy_check_complete(const NumpyContext& ctx);

}  // namespace pickle_detail
}  // namespace ckptio
