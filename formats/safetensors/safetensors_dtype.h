// The safetensors dtype names (the reference's whole enum) and their ckptio dtypes.
#pragma once

#include <optional>
#include <string_view>

#include "formats/dtype.h"

namespace ckptio::safetensors {

struct STDType {
  std::string_view name;       // "F32"
  int rank;                    // position in the reference's enum: its writer sorts by it
  int bits;                    // per element in the file
  std::optional<DType> dtype;  // none: torch has no such dtype (F6_*)
};

// Null for a name the format does not define.
const STDType* dtype_by_name(std::string_view name);
// Null for a ckptio dtype safetensors cannot hold (complex128, bits*, uint1..7, ...).
const STDType* dtype_by_ckptio(DType dtype);

}  // namespace ckptio::safetensors
