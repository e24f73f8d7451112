// Private to formats/pickle: the exception the unpickler's helpers throw. It never escapes
// unpickle(), which turns it into a Status prefixed with UnpickleOptions::context. Throwing
// keeps the opcode handlers short; the VM itself is iterative, so unwinding is shallow.
#pragma once

#include <string>

#include "formats/status.h"

namespace ckptio {
namespace pickle_detail {

struct PickleError {
  Code code;
  std::string message;
};

[[noreturn]] inline void fail(Code code, std::string message) {
  throw PickleError{code, std::move(message)};
}

// " at offset N": every message says where in the pickle it went wrong.
inline std::string at(size_t offset) { return " at offset " + std::to_string(offset); }

}  // namespace pickle_detail
}  // namespace ckptio
