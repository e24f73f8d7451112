#include "dtype_map.h"

#include "ckptio/ckptio.h"

namespace ckptio::torch_adapter {

c10::ScalarType to_scalar_type(DType dtype, const std::string& where) {
  int code = static_cast<int>(dtype);
  // ckptio's codes are torch's; this LibTorch knows those below its Undefined (LibTorch 1.13
  // ends at QUInt2x4, 17: code 18, bits1x8 in torch 2.x, would be its Undefined).
  if (code >= static_cast<int>(c10::ScalarType::Undefined))
    throw Error(Code::kUnsupported, where + ": dtype " + std::string(dtype_name(dtype)) +
                                        " does not exist in this LibTorch version; read it with "
                                        "ckptio::load as raw bytes instead");
  auto t = static_cast<c10::ScalarType>(code);
  if (c10::isQIntType(t))
    throw Error(Code::kUnsupported, where + ": quantized dtype " + std::string(dtype_name(dtype)) +
                                        " is not supported");
  return t;
}

DType from_scalar_type(c10::ScalarType t) {
  auto d = dtype_from_code(static_cast<int>(t));
  if (!d)
    throw Error(Code::kUnsupported, std::string("unknown LibTorch dtype ") + c10::toString(t));
  return *d;
}

}  // namespace ckptio::torch_adapter
