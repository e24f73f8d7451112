// pickle_torch / pickle_plain specifics that the Python round trips in
// pickle_fixtures_test.cc cannot reach with torch 1.13: the 2.x dtypes (_rebuild_tensor_v3),
// conj/neg metadata, and the errors torch.save would raise too.
#include <gtest/gtest.h>

#include <string>

#include "formats/pickle/pickler.h"
#include "formats/pickle/storage_table.h"
#include "formats/pickle/unpickler.h"

namespace ckptio {
namespace {

TensorMeta view(DType dtype, std::vector<int64_t> shape, std::vector<int64_t> strides,
                uint32_t storage = 0, int64_t offset = 0) {
  TensorMeta t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.strides = std::move(strides);
  t.storage = storage;
  t.storage_offset = offset;
  return t;
}

struct ReadBack {
  ValuePtr root;
  std::vector<StorageInfo> storages;
};

ReadBack read_back(const std::string& bytes) {
  StorageTable table("t");
  UnpickleOptions o;
  o.persistent_load = [&](const ValuePtr& pid) { return table.load(pid); };
  auto r = unpickle(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), o);
  EXPECT_TRUE(r.ok()) << r.status().message();
  if (!r.ok()) return {};
  return {r->value, table.storages()};
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

TEST(PickleWriter, NewDtypesUseRebuildTensorV3AndUntypedStorage) {
  Tree tree;
  tree.storages.push_back(StorageInfo{"a", DType::kFloat8_e4m3fn, 6, "cuda:0"});
  tree.storages.push_back(StorageInfo{"b", DType::kUInt16, 8, "cpu"});
  ValuePtr d = Value::dict();
  d->entries.emplace_back(Value::str("f8"),
                          Value::make_tensor(view(DType::kFloat8_e4m3fn, {2, 2}, {1, 2}, 0, 1)));
  d->entries.emplace_back(Value::str("u16"), Value::make_tensor(view(DType::kUInt16, {4}, {1}, 1)));
  tree.root = d;
  auto p = pickle_torch(tree, {});
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_TRUE(contains(p->bytes, "_rebuild_tensor_v3"));
  EXPECT_TRUE(contains(p->bytes, "torch.storage\nUntypedStorage\n"));
  EXPECT_TRUE(contains(p->bytes, "torch\nfloat8_e4m3fn\n"));
  EXPECT_EQ(p->storage_order, (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(p->storage_dtype, (std::vector<DType>{DType::kUInt8, DType::kUInt8}));
  ReadBack r = read_back(p->bytes);
  ASSERT_TRUE(r.root);
  const TensorMeta& f8 = r.root->get("f8")->tensor;
  EXPECT_EQ(f8.dtype, DType::kFloat8_e4m3fn);
  EXPECT_EQ(f8.strides, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(f8.storage_offset, 1);
  EXPECT_EQ(r.storages[0].dtype, DType::kUInt8);
  EXPECT_EQ(r.storages[0].nbytes, 6u);
  EXPECT_EQ(r.storages[0].device, "cuda:0");
  EXPECT_EQ(r.storages[0].key, "0");
  EXPECT_EQ(r.root->get("u16")->tensor.dtype, DType::kUInt16);
}

TEST(PickleWriter, MathBitsParametersAndSharing) {
  Tree tree;
  tree.storages.push_back(StorageInfo{"z", DType::kComplex64, 32, "cpu"});
  TensorMeta c = view(DType::kComplex64, {4}, {1});
  c.conj = true;
  c.neg = true;
  TensorMeta p = view(DType::kComplex64, {2}, {2});
  p.is_parameter = true;
  p.requires_grad = true;
  ValuePtr ct = Value::make_tensor(c);
  ValuePtr list = Value::list({ct, ct, Value::make_tensor(p)});
  tree.root = list;
  auto out = pickle_torch(tree, {});
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_TRUE(contains(out->bytes, "_rebuild_parameter"));
  EXPECT_EQ(out->storage_order.size(), 1u);
  ReadBack r = read_back(out->bytes);
  ASSERT_TRUE(r.root);
  ASSERT_EQ(r.root->items.size(), 3u);
  EXPECT_EQ(r.root->items[0], r.root->items[1]);  // shared node stays shared
  EXPECT_TRUE(r.root->items[0]->tensor.conj);
  EXPECT_TRUE(r.root->items[0]->tensor.neg);
  const TensorMeta& rp = r.root->items[2]->tensor;
  EXPECT_TRUE(rp.is_parameter);
  EXPECT_TRUE(rp.requires_grad);
  EXPECT_EQ(rp.strides, std::vector<int64_t>{2});
  EXPECT_EQ(r.root->items[2]->tensor.storage, r.root->items[0]->tensor.storage);
}

TEST(PickleWriter, RefusesWhatTorchSaveRefuses) {
  Tree tree;
  tree.storages.push_back(StorageInfo{"shared", DType::kFloat32, 16, "cpu"});
  tree.root = Value::list({Value::make_tensor(view(DType::kFloat32, {4}, {1})),
                           Value::make_tensor(view(DType::kInt32, {4}, {1}))});
  TorchPickleOptions named;
  named.context = "out.pt";
  auto r = pickle_torch(tree, named);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(contains(r.status().message(),
                       "out.pt: Cannot save multiple tensors or storages "
                       "that view the same data as different types"))
      << r.status().message();
  EXPECT_TRUE(contains(r.status().message(), "'shared'"));

  tree.storages[0].nbytes = 10;  // not a whole number of float32 elements
  tree.root = Value::make_tensor(view(DType::kFloat32, {2}, {1}));
  r = pickle_torch(tree, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(contains(r.status().message(), "not a whole number")) << r.status().message();

  tree.root = Value::make_tensor(view(DType::kFloat32, {3}, {1}, 0, 1));  // past the end
  r = pickle_torch(tree, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);

  tree.root = Value::make_tensor(view(DType::kFloat32, {1}, {1}, 7));  // no such storage
  EXPECT_EQ(pickle_torch(tree, {}).status().code(), Code::kInvalidArgument);

  EXPECT_EQ(pickle_plain(*Value::make_tensor(view(DType::kFloat32, {1}, {1}))).status().code(),
            Code::kInvalidArgument);
  ValuePtr self = Value::tuple();
  self->items.push_back(Value::list({self}));  // a tuple reaching itself: pickle cannot
  EXPECT_EQ(pickle_plain(*self).status().code(), Code::kInvalidArgument);
  self->items.clear();  // break the cycle so it is freed
}

TEST(PickleWriter, LegacyIdsHaveSixFieldsAndBareStorages) {
  Tree tree;
  tree.storages.push_back(StorageInfo{"s", DType::kFloat64, 24, "cpu"});
  TensorMeta st = view(DType::kFloat64, {3}, {1});
  st.is_storage = true;
  tree.root = Value::tuple({Value::make_tensor(st), Value::make_tensor(st)});
  TorchPickleOptions o;
  o.legacy_ids = true;
  auto p = pickle_torch(tree, o);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_TRUE(contains(p->bytes, "torch\nDoubleStorage\n"));
  ReadBack r = read_back(p->bytes);
  ASSERT_TRUE(r.root);
  EXPECT_TRUE(r.root->items[0]->tensor.is_storage);
  EXPECT_EQ(r.root->items[1]->tensor.shape, std::vector<int64_t>{3});
  EXPECT_EQ(r.storages.size(), 1u);
}

// torch's legacy loader cannot read UntypedStorage persistent ids (the 2.x dtypes), though
// torch.save writes them: in legacy mode the pickler refuses, naming the storage and dtype.
TEST(PickleWriter, LegacyIdsRefuseDtypesTorchCannotReadBack) {
  for (bool bare : {false, true}) {
    Tree tree;
    tree.storages.push_back(StorageInfo{"w", DType::kFloat8_e4m3fn, 4, "cpu"});
    TensorMeta t = view(DType::kFloat8_e4m3fn, {4}, {1});
    t.is_storage = bare;
    tree.root = Value::tuple({Value::make_tensor(t)});
    TorchPickleOptions o;
    o.legacy_ids = true;
    auto p = pickle_torch(tree, o);
    ASSERT_FALSE(p.ok()) << (bare ? "bare storage" : "tensor");
    EXPECT_EQ(p.status().code(), Code::kUnsupported);
    EXPECT_NE(p.status().message().find("storage 'w' holds float8_e4m3fn"), std::string::npos)
        << p.status().message();
    EXPECT_NE(p.status().message().find("torch-zip"), std::string::npos) << p.status().message();
    EXPECT_TRUE(pickle_torch(tree, {}).ok()) << "the zip format reads them back";
  }
}

TEST(PickleWriter, IntegersAtEveryWidthRoundTrip) {
  std::vector<ValuePtr> items;
  for (int64_t v :
       {int64_t{0}, int64_t{255}, int64_t{256}, int64_t{65535}, int64_t{65536}, int64_t{-1},
        int64_t{INT32_MIN}, int64_t{INT32_MAX}, int64_t{INT32_MAX} + 1, INT64_MAX, INT64_MIN})
    items.push_back(Value::integer(v));
  for (const char* big : {"9223372036854775808", "-9223372036854775809",
                          "340282366920938463463374607431768211456", "-255", "0"})
    items.push_back(Value::big_integer(big));
  ValuePtr list = Value::list(items);
  auto p = pickle_plain(*list);
  ASSERT_TRUE(p.ok());
  auto r = unpickle(reinterpret_cast<const uint8_t*>(p->data()), p->size(), {});
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->value->items.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const Value& got = *r->value->items[i];
    if (items[i]->kind == Kind::kInt) {
      EXPECT_EQ(got.kind, Kind::kInt);
      EXPECT_EQ(got.i, items[i]->i);
    } else if (got.kind == Kind::kInt) {  // small values written as big ints come back small
      EXPECT_EQ(std::to_string(got.i), items[i]->s);
    } else {
      EXPECT_EQ(got.s, items[i]->s);
    }
  }
}

}  // namespace
}  // namespace ckptio
