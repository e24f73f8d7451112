#include "formats/status.h"

namespace ckptio {

const char* code_name(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kNotFound: return "not found";
    case Code::kCorrupt: return "corrupt";
    case Code::kUnsupported: return "unsupported";
    case Code::kIo: return "I/O error";
    case Code::kLimit: return "limit exceeded";
    case Code::kForbidden: return "forbidden";
    case Code::kInternal: return "internal error";
  }
  return "unknown";
}

}  // namespace ckptio
