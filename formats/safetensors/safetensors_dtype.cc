#include "formats/safetensors/safetensors_dtype.h"

namespace ckptio::safetensors {
namespace {

// In the reference's enum order (its Dtype, serde names), which is its writer's sort key.
// F4 is float4 one element per 4 bits; torch's float4_e2m1fn_x2 packs two per byte.
const STDType kTable[] = {
    {"BOOL", 0, 8, DType::kBool},
    {"F4", 1, 4, DType::kFloat4_e2m1fn_x2},
    {"F6_E2M3", 2, 6, std::nullopt},
    {"F6_E3M2", 3, 6, std::nullopt},
    {"U8", 4, 8, DType::kUInt8},
    {"I8", 5, 8, DType::kInt8},
    {"F8_E5M2", 6, 8, DType::kFloat8_e5m2},
    {"F8_E4M3", 7, 8, DType::kFloat8_e4m3fn},
    {"F8_E8M0", 8, 8, DType::kFloat8_e8m0fnu},
    {"F8_E4M3FNUZ", 9, 8, DType::kFloat8_e4m3fnuz},
    {"F8_E5M2FNUZ", 10, 8, DType::kFloat8_e5m2fnuz},
    {"I16", 11, 16, DType::kInt16},
    {"U16", 12, 16, DType::kUInt16},
    {"F16", 13, 16, DType::kFloat16},
    {"BF16", 14, 16, DType::kBFloat16},
    {"I32", 15, 32, DType::kInt32},
    {"U32", 16, 32, DType::kUInt32},
    {"F32", 17, 32, DType::kFloat32},
    {"C64", 18, 64, DType::kComplex64},
    {"F64", 19, 64, DType::kFloat64},
    {"I64", 20, 64, DType::kInt64},
    {"U64", 21, 64, DType::kUInt64},
};

}  // namespace

const STDType* dtype_by_name(std::string_view name) {
  for (const STDType& d : kTable)
    if (d.name == name) return &d;
  return nullptr;
}

const STDType* dtype_by_ckptio(DType dtype) {
  for (const STDType& d : kTable)
    if (d.dtype == dtype) return &d;
  return nullptr;
}

}  // namespace ckptio::safetensors
