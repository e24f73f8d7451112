#include "formats/dtype.h"

#include <array>

namespace ckptio {
namespace {

struct DTypeInfo {
  std::string_view name;           // torch.<name>
  std::string_view scalar_type;    // c10::ScalarType name, used by LibTorch storage names
  std::string_view legacy_storage; // Python legacy storage class, "" for v3-only dtypes
  int size;
};

// Indexed by code. Sources: torch/storage.py, torch/_utils.py, c10 ScalarType.h.
constexpr std::array<DTypeInfo, kMaxDTypeCode + 1> kInfo = {{
    {"uint8", "Byte", "ByteStorage", 1},
    {"int8", "Char", "CharStorage", 1},
    {"int16", "Short", "ShortStorage", 2},
    {"int32", "Int", "IntStorage", 4},
    {"int64", "Long", "LongStorage", 8},
    {"float16", "Half", "HalfStorage", 2},
    {"float32", "Float", "FloatStorage", 4},
    {"float64", "Double", "DoubleStorage", 8},
    {"complex32", "ComplexHalf", "", 4},
    {"complex64", "ComplexFloat", "ComplexFloatStorage", 8},
    {"complex128", "ComplexDouble", "ComplexDoubleStorage", 16},
    {"bool", "Bool", "BoolStorage", 1},
    {"qint8", "QInt8", "QInt8Storage", 1},
    {"quint8", "QUInt8", "QUInt8Storage", 1},
    {"qint32", "QInt32", "QInt32Storage", 4},
    {"bfloat16", "BFloat16", "BFloat16Storage", 2},
    {"quint4x2", "QUInt4x2", "QUInt4x2Storage", 1},
    {"quint2x4", "QUInt2x4", "QUInt2x4Storage", 1},
    {"bits1x8", "Bits1x8", "", 1},
    {"bits2x4", "Bits2x4", "", 1},
    {"bits4x2", "Bits4x2", "", 1},
    {"bits8", "Bits8", "", 1},
    {"bits16", "Bits16", "", 2},
    {"float8_e5m2", "Float8_e5m2", "", 1},
    {"float8_e4m3fn", "Float8_e4m3fn", "", 1},
    {"float8_e5m2fnuz", "Float8_e5m2fnuz", "", 1},
    {"float8_e4m3fnuz", "Float8_e4m3fnuz", "", 1},
    {"uint16", "UInt16", "", 2},
    {"uint32", "UInt32", "", 4},
    {"uint64", "UInt64", "", 8},
    {"uint1", "UInt1", "", 1},
    {"uint2", "UInt2", "", 1},
    {"uint3", "UInt3", "", 1},
    {"uint4", "UInt4", "", 1},
    {"uint5", "UInt5", "", 1},
    {"uint6", "UInt6", "", 1},
    {"uint7", "UInt7", "", 1},
    {"int1", "Int1", "", 1},
    {"int2", "Int2", "", 1},
    {"int3", "Int3", "", 1},
    {"int4", "Int4", "", 1},
    {"int5", "Int5", "", 1},
    {"int6", "Int6", "", 1},
    {"int7", "Int7", "", 1},
    {"float8_e8m0fnu", "Float8_e8m0fnu", "", 1},
    {"float4_e2m1fn_x2", "Float4_e2m1fn_x2", "", 1},
}};

const DTypeInfo& info(DType d) { return kInfo[static_cast<size_t>(d)]; }

}  // namespace

std::string_view dtype_name(DType dtype) { return info(dtype).name; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (size_t i = 0; i < kInfo.size(); ++i)
    if (kInfo[i].name == name) return static_cast<DType>(i);
  // Aliases torch accepts as attribute names of the torch module.
  struct Alias { std::string_view alias; DType dtype; };
  static constexpr Alias kAliases[] = {
      {"half", DType::kFloat16}, {"float", DType::kFloat32}, {"double", DType::kFloat64},
      {"short", DType::kInt16},  {"int", DType::kInt32},     {"long", DType::kInt64},
      {"cfloat", DType::kComplex64}, {"cdouble", DType::kComplex128},
      {"chalf", DType::kComplex32},
  };
  for (const auto& a : kAliases)
    if (a.alias == name) return a.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_code(int64_t code) {
  if (code < 0 || code > kMaxDTypeCode) return std::nullopt;
  return static_cast<DType>(code);
}

int dtype_size(DType dtype) { return info(dtype).size; }

std::string_view legacy_storage_class(DType dtype) { return info(dtype).legacy_storage; }

std::optional<DType> dtype_from_storage_class(std::string_view name) {
  constexpr std::string_view kSuffix = "Storage";
  if (name.size() <= kSuffix.size() || name.substr(name.size() - kSuffix.size()) != kSuffix)
    return std::nullopt;
  for (size_t i = 0; i < kInfo.size(); ++i)
    if (!kInfo[i].legacy_storage.empty() && kInfo[i].legacy_storage == name)
      return static_cast<DType>(i);
  std::string_view stem = name.substr(0, name.size() - kSuffix.size());
  for (size_t i = 0; i < kInfo.size(); ++i)
    if (kInfo[i].scalar_type == stem) return static_cast<DType>(i);
  return std::nullopt;
}

}  // namespace ckptio
