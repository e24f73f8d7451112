// ckptio dtypes are c10::ScalarType codes; this checks that the running LibTorch has one.
#pragma once

#include <torch/types.h>

#include "formats/dtype.h"

namespace ckptio::torch_adapter {

// Throws ckptio::Error naming the dtype when this LibTorch lacks it (e.g. float8 on 1.13).
c10::ScalarType to_scalar_type(DType dtype, const std::string& where);
DType from_scalar_type(c10::ScalarType t);

}  // namespace ckptio::torch_adapter
