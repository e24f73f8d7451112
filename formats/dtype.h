// Element types of tensors and storages. The numeric values are PyTorch's c10::ScalarType
// codes (stable since 1.x), so they cross the plugin C ABI and map to LibTorch one to one.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "export.h"  // relative: this header is installed beside it

namespace ckptio {

enum class DType : int32_t {
  kUInt8 = 0, kInt8 = 1, kInt16 = 2, kInt32 = 3, kInt64 = 4,
  kFloat16 = 5, kFloat32 = 6, kFloat64 = 7,
  kComplex32 = 8, kComplex64 = 9, kComplex128 = 10,
  kBool = 11, kQInt8 = 12, kQUInt8 = 13, kQInt32 = 14, kBFloat16 = 15,
  kQUInt4x2 = 16, kQUInt2x4 = 17,
  kBits1x8 = 18, kBits2x4 = 19, kBits4x2 = 20, kBits8 = 21, kBits16 = 22,
  kFloat8_e5m2 = 23, kFloat8_e4m3fn = 24, kFloat8_e5m2fnuz = 25, kFloat8_e4m3fnuz = 26,
  kUInt16 = 27, kUInt32 = 28, kUInt64 = 29,
  kUInt1 = 30, kUInt2 = 31, kUInt3 = 32, kUInt4 = 33, kUInt5 = 34, kUInt6 = 35, kUInt7 = 36,
  kInt1 = 37, kInt2 = 38, kInt3 = 39, kInt4 = 40, kInt5 = 41, kInt6 = 42, kInt7 = 43,
  kFloat8_e8m0fnu = 44, kFloat4_e2m1fn_x2 = 45,
};

constexpr int32_t kMaxDTypeCode = 45;

// torch's name without "torch.": "float32", "bfloat16", "complex64", "bool", ...
CKPTIO_API std::string_view dtype_name(DType dtype);
CKPTIO_API std::optional<DType> dtype_from_name(std::string_view name);
CKPTIO_API std::optional<DType> dtype_from_code(int64_t code);
// Bytes per element as PyTorch stores it (packed sub-byte types count 1 per byte).
CKPTIO_API int dtype_size(DType dtype);

// Python's legacy storage class for the dtype ("FloatStorage"), or empty for dtypes that
// torch.save writes with _rebuild_tensor_v3 + UntypedStorage (the 2.x "new" dtypes).
CKPTIO_API std::string_view legacy_storage_class(DType dtype);
// Accepts Python legacy names ("FloatStorage", "BoolStorage") and LibTorch/TorchScript
// names built from ScalarType ("Float8_e4m3fnStorage", "ComplexHalfStorage", "UInt16Storage").
CKPTIO_API std::optional<DType> dtype_from_storage_class(std::string_view name);

}  // namespace ckptio
