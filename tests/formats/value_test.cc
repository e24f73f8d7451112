#include "formats/value.h"

#include <gtest/gtest.h>

namespace ckptio {
namespace {

std::vector<StorageInfo> one_storage(uint64_t nbytes) {
  StorageInfo s;
  s.key = "0";
  s.dtype = DType::kFloat32;
  s.nbytes = nbytes;
  return {s};
}

TensorMeta view(std::vector<int64_t> shape, std::vector<int64_t> strides, int64_t offset) {
  TensorMeta t;
  t.dtype = DType::kFloat32;
  t.shape = std::move(shape);
  t.strides = std::move(strides);
  t.storage_offset = offset;
  return t;
}

TEST(CheckTensorView, AcceptsExactFitAndTransposedView) {
  auto st = one_storage(12 * 4);
  EXPECT_TRUE(check_tensor_view(view({3, 4}, {4, 1}, 0), st, "t").ok());
  EXPECT_TRUE(check_tensor_view(view({4, 3}, {1, 4}, 0), st, "t").ok());
  EXPECT_TRUE(check_tensor_view(view({}, {}, 11), st, "t").ok());  // 0-dim, last element
}

TEST(CheckTensorView, RejectsOneElementPastTheEnd) {
  auto st = one_storage(12 * 4);
  Status s = check_tensor_view(view({}, {}, 12), st, "key 'w'");
  EXPECT_EQ(s.code(), Code::kCorrupt);
  EXPECT_NE(s.message().find("key 'w'"), std::string::npos);
  EXPECT_NE(s.message().find("52 bytes"), std::string::npos) << s.message();
}

TEST(CheckTensorView, RejectsNegativeAndOverflowingValues) {
  auto st = one_storage(16);
  EXPECT_EQ(check_tensor_view(view({2}, {-1}, 1), st, "t").code(), Code::kCorrupt);
  EXPECT_EQ(check_tensor_view(view({-2}, {1}, 0), st, "t").code(), Code::kCorrupt);
  EXPECT_EQ(check_tensor_view(view({2}, {1}, -1), st, "t").code(), Code::kCorrupt);
  Status s = check_tensor_view(view({1ll << 40, 1ll << 40}, {1ll << 40, 1}, 0), st, "t");
  EXPECT_EQ(s.code(), Code::kCorrupt);
  EXPECT_NE(s.message().find("overflow"), std::string::npos) << s.message();
}

TEST(CheckTensorView, EmptyTensorNeedsNoBytesButMissingStorageIsAnError) {
  auto st = one_storage(0);
  EXPECT_TRUE(check_tensor_view(view({0, 5}, {5, 1}, 0), st, "t").ok());
  TensorMeta t = view({1}, {1}, 0);
  t.storage = 3;
  EXPECT_EQ(check_tensor_view(t, st, "t").code(), Code::kCorrupt);
}

TEST(DType, NamesSizesAndStorageClassesRoundTrip) {
  for (int code = 0; code <= kMaxDTypeCode; ++code) {
    DType d = *dtype_from_code(code);
    EXPECT_EQ(dtype_from_name(dtype_name(d)), d);
    EXPECT_GE(dtype_size(d), 1);
    if (!legacy_storage_class(d).empty()) {
      EXPECT_EQ(dtype_from_storage_class(legacy_storage_class(d)), d);
    }
  }
  EXPECT_EQ(dtype_from_storage_class("Float8_e4m3fnStorage"), DType::kFloat8_e4m3fn);
  EXPECT_EQ(dtype_from_storage_class("ComplexHalfStorage"), DType::kComplex32);
  EXPECT_EQ(dtype_from_storage_class("FloatStorage"), DType::kFloat32);
  EXPECT_FALSE(dtype_from_storage_class("EvilStorage").has_value());
  EXPECT_FALSE(dtype_from_storage_class("Float").has_value());
  EXPECT_EQ(dtype_size(DType::kComplex128), 16);
  EXPECT_EQ(dtype_size(DType::kBFloat16), 2);
}


// One path syntax (docs/cpp-api.md, "Paths"): Python's subscripts from the root, with keys
// written as Python string literals, so a key holding a quote, a backslash or a newline cannot spell
// another entry's path.
TEST(KeyPath, ForEachTensorWritesPythonSubscriptsWithReprKeys) {
  auto tensor = [] { return Value::make_tensor(TensorMeta{}); };
  ValuePtr root = Value::dict();
  ValuePtr list = Value::list({tensor()});
  root->entries.emplace_back(Value::str("layer.0.weight"), list);
  root->entries.emplace_back(Value::str("it's\\\n"), tensor());
  root->entries.emplace_back(Value::integer(3), tensor());
  root->entries.emplace_back(Value::boolean(true),
                             Value::object("m.C", Value::tuple({tensor()})));
  std::vector<std::string> paths;
  for_each_tensor(root, [&](const ValuePtr&, const std::string& path) { paths.push_back(path); });
  EXPECT_EQ(paths, (std::vector<std::string>{"['layer.0.weight'][0]", "['it\\'s\\\\\\x0a']",
                                             "[3]", "[True].args[0]"}));
}

}  // namespace
}  // namespace ckptio
