// Malformed and hostile pickles: every failure must be a clean Status with the right code,
// the caller's context and the byte offset; nothing may crash, recurse without bound or
// allocate what the input does not contain. The byte strings here are deliberately broken
// inputs (or forbidden globals), not stand-ins for PyTorch output.
#include <gtest/gtest.h>

#include <random>
#include <string>

using namespace std::string_literals;

#include "formats/pickle/pickler.h"
#include "formats/pickle/storage_table.h"
#include "formats/pickle/unpickler.h"

namespace ckptio {
namespace {

Result<Unpickled> run(const std::string& bytes, UnpickleOptions o = {}) {
  if (o.context.empty()) o.context = "ctx";
  return unpickle(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), o);
}

#define EXPECT_FAILS(result, code_, fragment)                                                    \
  do {                                                                                           \
    auto _r = (result);                                                                          \
    ASSERT_FALSE(_r.ok());                                                                       \
    EXPECT_EQ(_r.status().code(), code_) << _r.status().message();                               \
    EXPECT_NE(_r.status().message().find(fragment), std::string::npos) << _r.status().message(); \
    EXPECT_EQ(_r.status().message().rfind("ctx: ", 0), 0u) << _r.status().message();             \
  } while (0)

const std::string kProto2 = "\x80\x02";

std::string u32(uint32_t v) {
  std::string s;
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
  return s;
}

TEST(PickleHostile, EmptyAndTruncatedInput) {
  EXPECT_FAILS(run(""), Code::kCorrupt, "truncated");
  EXPECT_FAILS(run(kProto2), Code::kCorrupt, "truncated");
  EXPECT_FAILS(run("\x80"), Code::kCorrupt, "truncated");
}

// Every proper prefix of a real torch pickle (our writer's, shaped like torch.save's) is
// truncated input.
TEST(PickleHostile, TruncationAtEveryByte) {
  Tree tree;
  tree.storages.push_back(StorageInfo{"k", DType::kFloat32, 24, "cpu"});
  TensorMeta t;
  t.shape = {2, 3};
  t.strides = {3, 1};
  ValuePtr sd = Value::dict(true);
  sd->entries.emplace_back(Value::str("w"), Value::make_tensor(t));
  sd->entries.emplace_back(Value::str("n"), Value::big_integer("-123456789012345678901234"));
  sd->entries.emplace_back(Value::str("f"), Value::floating(0.25));
  sd->attrs = Value::dict();
  sd->attrs->entries.emplace_back(Value::str("_metadata"), Value::dict());
  tree.root = sd;
  auto p = pickle_torch(tree, {});
  ASSERT_TRUE(p.ok()) << p.status().message();
  const std::string& full = p->bytes;
  for (size_t n = 0; n < full.size(); ++n) {
    StorageTable table("ctx");
    UnpickleOptions o;
    o.persistent_load = [&](const ValuePtr& pid) { return table.load(pid); };
    EXPECT_FAILS(run(full.substr(0, n), o), Code::kCorrupt, "truncated");
  }
  StorageTable table("ctx");
  UnpickleOptions o;
  o.persistent_load = [&](const ValuePtr& pid) { return table.load(pid); };
  EXPECT_TRUE(run(full, o).ok());
}

TEST(PickleHostile, LyingLengthsDoNotAllocate) {
  EXPECT_FAILS(run(kProto2 + "X" + u32(0xfffffff0u) + "abc"), Code::kCorrupt, "truncated");
  EXPECT_FAILS(run(kProto2 + "B" + u32(0xffffffffu)), Code::kCorrupt, "BINBYTES");
  EXPECT_FAILS(run(kProto2 + "\x8e" + std::string(7, '\xff') + "\x7f"), Code::kCorrupt,
               "truncated");
  EXPECT_FAILS(run(kProto2 + "\x8d" + std::string(8, '\xff')), Code::kCorrupt, "truncated");
  EXPECT_FAILS(run(kProto2 + "T" + u32(0x80000000u)), Code::kCorrupt, "negative length");
  EXPECT_FAILS(run(kProto2 + "\x8b" + u32(0x7fffffffu)), Code::kLimit, "integer of");
  EXPECT_FAILS(run(kProto2 + "\x8b" + u32(0xffffffffu)), Code::kCorrupt, "negative length");
  EXPECT_FAILS(run(kProto2 + "\x8a\x09\x01"), Code::kCorrupt, "truncated");
  EXPECT_FAILS(run(kProto2 + "cos\nsys"), Code::kCorrupt, "no terminating newline");
  // The max_string limit applies even when the bytes are there.
  UnpickleOptions o;
  o.limits.max_string = 4;
  EXPECT_FAILS(run(kProto2 + "X" + u32(5) + "hello.", o), Code::kLimit, "over the limit");
}

TEST(PickleHostile, ForbiddenGlobalsAreNamed) {
  EXPECT_FAILS(run(kProto2 + "cos\nsystem\n(X\x02\x00\x00\x00idtR."s), Code::kForbidden,
               "refusing pickle global 'os.system' at offset 2: not in the allow-list");
  EXPECT_FAILS(run(kProto2 + "c__builtin__\neval\n."), Code::kForbidden,
               "'builtins.eval' at offset 2");
  EXPECT_FAILS(run("cposix\nsystem\n."), Code::kForbidden, "'posix.system' at offset 0");
  EXPECT_FAILS(run(kProto2 + "csubprocess\nPopen\n."), Code::kForbidden, "subprocess.Popen");
  // Protocol 4 names the global through the stack.
  EXPECT_FAILS(run("\x80\x04\x8c\x02os\x8c\x06system\x93."), Code::kForbidden,
               "'os.system' at offset 14");
  // Lookalikes of allow-listed names stay forbidden.
  EXPECT_FAILS(run(kProto2 + "ctorch._utils\n_rebuild_tensor_v9\n."), Code::kForbidden,
               "torch._utils._rebuild_tensor_v9");
  EXPECT_FAILS(run(kProto2 + "ctorch\nload\n."), Code::kForbidden, "'torch.load'");
}

TEST(PickleHostile, AllowObjectsMakesOpaqueNodesAndRunsNothing) {
  UnpickleOptions o;
  o.allow_objects = true;
  auto r = run(kProto2 + "cos\nsystem\n(X\x02\x00\x00\x00idtR."s, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->value->kind, Kind::kObject);
  EXPECT_EQ(r->value->s, "os.system");
  ASSERT_EQ(r->value->args->items.size(), 1u);
  EXPECT_TRUE(r->value->args->items[0]->is_str("id"));
  // NEWOBJ + BUILD: a user class instance keeps its state.
  r = run(kProto2 +
              "cargparse\nNamespace\n)\x81}X\x01\x00\x00\x00"
              "aK\x01sb."s,
          o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->value->s, "argparse.Namespace");
  ASSERT_TRUE(r->value->state);
  EXPECT_EQ(r->value->state->get("a")->i, 1);
  // Allow-listed functions still validate their arguments.
  EXPECT_FAILS(run(kProto2 + "ctorch._utils\n_rebuild_tensor_v2\n)R.", o), Code::kCorrupt,
               "takes 6..7 arguments, got 0");
}

TEST(PickleHostile, DeepNestingHitsLimits) {
  EXPECT_FAILS(run(kProto2 + std::string(100000, '(') + "."), Code::kLimit, "open MARKs");
  std::string lists = kProto2 + std::string(100000, ']') + std::string(99999, 'a') + ".";
  EXPECT_FAILS(run(lists), Code::kLimit, "nesting deeper than 1000");
  std::string tuples = kProto2 + "N" + std::string(100000, '\x85') + ".";
  EXPECT_FAILS(run(tuples), Code::kLimit, "nesting deeper than 1000");
  std::string dicts = kProto2 + "}";
  for (int i = 0; i < 5000; ++i) dicts += "K\x01}";
  for (int i = 0; i < 5000; ++i) dicts += "s";
  EXPECT_FAILS(run(dicts + "."), Code::kLimit, "nesting");
  // Exactly at the limit is fine.
  UnpickleOptions o;
  o.limits.max_depth = 10;
  EXPECT_TRUE(run(kProto2 + "N" + std::string(10, '\x85') + ".", o).ok());
  EXPECT_FAILS(run(kProto2 + "N" + std::string(11, '\x85') + ".", o), Code::kLimit, "nesting");
  o.limits.max_depth = 0;
  EXPECT_FAILS(run(kProto2 + ").", o), Code::kLimit, "nesting deeper than 0");
}

TEST(PickleHostile, MemoAndStackBombs) {
  UnpickleOptions o;
  o.limits.max_memo = 1000;
  std::string puts = kProto2 + "N";
  for (uint32_t i = 0; i < 2000; ++i) puts += "r" + u32(i * 7919u);
  EXPECT_FAILS(run(puts + ".", o), Code::kLimit, "memo exceeds 1000");
  // Re-putting the same key does not count twice.
  std::string same = kProto2 + "N";
  for (int i = 0; i < 2000; ++i) same += "q\x05";
  EXPECT_TRUE(run(same + ".", o).ok());
  EXPECT_FAILS(run(kProto2 + "j" + u32(0xffffffffu) + "."), Code::kCorrupt,
               "memo key 4294967295 not found at offset 2");
  EXPECT_FAILS(run(kProto2 + "h\x00."s), Code::kCorrupt, "memo key 0 not found");
  EXPECT_FAILS(run(kProto2 + "g-1\n."), Code::kCorrupt, "malformed GET index");
  EXPECT_FAILS(run(kProto2 + "q\x00."s), Code::kCorrupt, "stack underflow in BINPUT");
  UnpickleOptions small;
  small.limits.max_stack = 100;
  EXPECT_FAILS(run(kProto2 + std::string(200, 'N') + ".", small), Code::kLimit, "stack");
}

TEST(PickleHostile, MemoKeysFarAheadStayFindable) {
  // Key 5000 arrives while the memo is empty (kept aside, not in the key-indexed array);
  // 3000 more keys then grow the array past it, and it must still be found and replaced.
  std::string p = kProto2 + "K\x07r" + u32(5000) + "0";
  for (uint32_t i = 0; i < 3000; ++i) p += "Nr" + u32(i) + "0";
  auto r = run(p + "j" + u32(5000) + ".");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->value->i, 7);
  auto replaced = run(p + "K\x09r" + u32(5000) + "0j" + u32(5000) + ".");
  ASSERT_TRUE(replaced.ok()) << replaced.status().message();
  EXPECT_EQ(replaced->value->i, 9);
  // 3001 distinct keys: replacing one does not count, a new one does.
  UnpickleOptions o;
  o.limits.max_memo = 3001;
  EXPECT_TRUE(run(p + "K\x09r" + u32(5000) + "0N.", o).ok());
  EXPECT_FAILS(run(p + "Nr" + u32(3000) + ".", o), Code::kLimit, "memo exceeds 3001");
}

TEST(PickleHostile, UnreadMemoEntriesStillCount) {
  // Keys no GET reads keep no value, but MEMOIZE numbers entries after them, and the limit
  // counts them.
  auto r =
      run("\x80\x04K\x05q\x00"
          "0K\x07\x94"
          "0K\x09\x94"
          "0h\x01."s);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->value->i, 7);
  auto text = run("I5\np0\n0I7\np1\n0g1\n."s);
  ASSERT_TRUE(text.ok()) << text.status().message();
  EXPECT_EQ(text->value->i, 7);
  UnpickleOptions o;
  o.limits.max_memo = 2;
  EXPECT_FAILS(run("\x80\x04K\x05q\x00"
                   "0K\x07\x94"
                   "0K\x09\x94"
                   "0h\x01."s,
                   o),
               Code::kLimit, "memo exceeds 2");
}

TEST(PickleHostile, StackMisuse) {
  EXPECT_FAILS(run(kProto2 + "a."), Code::kCorrupt, "stack underflow in APPEND");
  EXPECT_FAILS(run(kProto2 + "N\x86."), Code::kCorrupt, "stack underflow in TUPLE2");
  EXPECT_FAILS(run(kProto2 + "N(\x85."), Code::kCorrupt, "stack underflow in TUPLE1");
  EXPECT_FAILS(run(kProto2 + "t."), Code::kCorrupt, "TUPLE without a MARK");
  EXPECT_FAILS(run(kProto2 + "NNa."), Code::kCorrupt, "APPEND on a None");
  EXPECT_FAILS(run(kProto2 + "}(K\x01u."), Code::kCorrupt, "odd number");
  EXPECT_FAILS(run(kProto2 + "}}b."), Code::kCorrupt, "BUILD on a plain dict");
  EXPECT_FAILS(run(kProto2 + "NR."), Code::kCorrupt, "stack underflow in REDUCE");
  EXPECT_FAILS(run(kProto2 + "N)R."), Code::kCorrupt, "REDUCE on None");
  EXPECT_FAILS(run(kProto2 + "ctorch\nfloat32\n)R."), Code::kCorrupt, "not callable");
  EXPECT_FAILS(run(kProto2 + "\xff."), Code::kCorrupt, "unknown pickle opcode 0xff at offset 2");
  EXPECT_FAILS(run("\x80\x06."), Code::kUnsupported, "protocol 6");
  EXPECT_FAILS(run(kProto2 + "X\x02\x00\x00\x00\xc3\x28."s), Code::kCorrupt, "invalid UTF-8");
  EXPECT_FAILS(run(kProto2 + "\x82\x01."), Code::kUnsupported, "extension");
  EXPECT_FAILS(run(kProto2 + "N\x97."), Code::kUnsupported, "out-of-band");
}

TEST(PickleHostile, RecursiveStructuresAreRefused) {
  // l = []; l.append(l)
  EXPECT_FAILS(run(kProto2 + "]q\x00h\x00"
                             "a."s),
               Code::kUnsupported, "recursive");
  // d = {}; d['self'] = d
  EXPECT_FAILS(run(kProto2 + "}q\x00X\x01\x00\x00\x00sh\x00s."s), Code::kUnsupported, "recursive");
  // A shared list that is complete before it is referenced again is fine.
  auto r = run(kProto2 +
               "](]q\x00K\x01"
               "ah\x00"
               "e."s);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->value->items[0], r->value->items[1]);
}

TEST(PickleHostile, PersistentIdNeedsAHook) {
  EXPECT_FAILS(run(kProto2 + "NQ."), Code::kCorrupt, "persistent_load");
  EXPECT_FAILS(run("P0\n."), Code::kCorrupt, "persistent_load");
  UnpickleOptions o;
  o.persistent_load = [](const ValuePtr&) -> Result<ValuePtr> {
    return Status(Code::kNotFound, "ctx: no such record");
  };
  EXPECT_FAILS(run(kProto2 + "NQ.", o), Code::kNotFound, "no such record (persistent id");
}

ValuePtr pid(std::vector<ValuePtr> items) { return Value::tuple(std::move(items)); }

TEST(StorageTable, RegistersEachKeyOnceAndChecksDeclarations) {
  StorageTable t("f.pt");
  auto a = t.load(pid({Value::str("storage"), Value::global("torch.FloatStorage"), Value::str("0"),
                       Value::str("cuda:1"), Value::integer(6)}));
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_TRUE((*a)->tensor.is_storage);
  EXPECT_EQ((*a)->tensor.shape, std::vector<int64_t>{6});
  ASSERT_EQ(t.storages().size(), 1u);
  EXPECT_EQ(t.storages()[0].nbytes, 24u);
  EXPECT_EQ(t.storages()[0].device, "cuda:1");
  // Python 2 bytes fields and a legacy sixth element.
  auto b =
      t.load(pid({Value::bytes("storage"), Value::global("torch.cuda.FloatStorage"),
                  Value::bytes("0"), Value::bytes("cuda:1"), Value::integer(6), Value::none()}));
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(t.storages().size(), 1u);
  auto c = t.load(pid({Value::str("storage"), Value::global("torch.FloatStorage"), Value::str("0"),
                       Value::str("cuda:1"), Value::integer(7)}));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kCorrupt);
  EXPECT_NE(c.status().message().find("f.pt: storage '0' is declared twice"), std::string::npos)
      << c.status().message();
  // UntypedStorage counts bytes; TorchScript's ScalarType names work too.
  auto u = t.load(pid({Value::str("storage"), Value::global("torch.storage.UntypedStorage"),
                       Value::str("u"), Value::str("cpu"), Value::integer(5)}));
  ASSERT_TRUE(u.ok());
  EXPECT_EQ((*u)->tensor.dtype, DType::kUInt8);
  auto f8 = t.load(pid({Value::str("storage"), Value::global("torch.Float8_e4m3fnStorage"),
                        Value::str("f8"), Value::str("cpu"), Value::integer(5)}));
  ASSERT_TRUE(f8.ok());
  EXPECT_EQ((*f8)->tensor.dtype, DType::kFloat8_e4m3fn);
}

TEST(StorageTable, NumberedAndOtherKeysAreDistinct) {
  StorageTable t("f.pt");
  auto id = [](const std::string& key, int64_t numel) {
    return pid({Value::str("storage"), Value::global("torch.FloatStorage"), Value::str(key),
                Value::str("cpu"), Value::integer(numel)});
  };
  // "5000" comes before the numbered keys reach it, "01" is not the number 1.
  ASSERT_TRUE(t.load(id("5000", 1)).ok());
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(t.load(id(std::to_string(i), 2)).ok());
  ASSERT_TRUE(t.load(id("01", 3)).ok());
  ASSERT_EQ(t.storages().size(), 3002u);
  auto again = t.load(id("5000", 1));
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ((*again)->tensor.storage, 0u);
  EXPECT_EQ((*t.load(id("1", 2)))->tensor.storage, 2u);
  EXPECT_EQ((*t.load(id("01", 3)))->tensor.storage, 3001u);
  EXPECT_EQ(t.storages().size(), 3002u);
  auto differs = t.load(id("5000", 2));
  ASSERT_FALSE(differs.ok());
  EXPECT_NE(differs.status().message().find("storage '5000' is declared twice"), std::string::npos)
      << differs.status().message();
}

TEST(StorageTable, RejectsMalformedIds) {
  StorageTable t("f.pt");
  auto expect = [&](ValuePtr p, Code code, const char* fragment) {
    auto r = t.load(p);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), code) << r.status().message();
    EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
  };
  expect(Value::str("0"), Code::kCorrupt, "must be a tuple");
  expect(pid({Value::str("tensor")}), Code::kCorrupt, "unknown persistent id type 'tensor'");
  expect(pid({Value::str("module"), Value::none(), Value::none(), Value::none()}),
         Code::kUnsupported, "module");
  expect(pid({Value::str("storage"), Value::global("torch.NopeStorage"), Value::str("k"),
              Value::str("cpu"), Value::integer(1)}),
         Code::kCorrupt, "storage 'k': unknown storage type 'torch.NopeStorage'");
  expect(pid({Value::str("storage"), Value::global("torch.FloatStorage"), Value::str("k"),
              Value::str("cpu"), Value::integer(-1)}),
         Code::kCorrupt, "non-negative");
  expect(pid({Value::str("storage"), Value::global("torch.DoubleStorage"), Value::str("k"),
              Value::str("cpu"), Value::integer(int64_t{1} << 61)}),
         Code::kCorrupt, "impossible size");
  expect(pid({Value::str("storage"), Value::global("torch.FloatStorage"), Value::str("k"),
              Value::str("cpu")}),
         Code::kCorrupt, "4 fields");
  expect(pid({Value::str("storage"), Value::global("torch.FloatStorage"), Value::str("k"),
              Value::str("cpu"), Value::integer(4),
              Value::tuple({Value::str("v"), Value::integer(3), Value::integer(2)})}),
         Code::kCorrupt, "outside the storage");
}

TEST(StorageTable, LegacyViewMetadataIsAWindow) {
  StorageTable t("f.pt");
  auto v = t.load(pid({Value::str("storage"), Value::global("torch.FloatStorage"),
                       Value::str("root"), Value::str("cpu"), Value::integer(10),
                       Value::tuple({Value::str("view"), Value::integer(4), Value::integer(3)})}));
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ((*v)->tensor.storage_offset, 4);
  EXPECT_EQ((*v)->tensor.shape, std::vector<int64_t>{3});
  EXPECT_EQ(t.storages()[0].nbytes, 40u);
}

// A persistent_load that shrinks the storage makes the tensor view fall outside it.
TEST(PickleHostile, TensorViewOutsideStorage) {
  Tree tree;
  tree.storages.push_back(StorageInfo{"k", DType::kFloat32, 24, "cpu"});
  TensorMeta t;
  t.shape = {2, 3};
  t.strides = {3, 1};
  tree.root = Value::make_tensor(t);
  auto p = pickle_torch(tree, {});
  ASSERT_TRUE(p.ok());
  UnpickleOptions o;
  o.persistent_load = [](const ValuePtr&) -> Result<ValuePtr> {
    TensorMeta s;
    s.is_storage = true;
    s.shape = {5};
    s.strides = {1};
    return Value::make_tensor(s);
  };
  EXPECT_FAILS(run(p->bytes, o), Code::kCorrupt, "_rebuild_tensor_v2 at offset ");
  EXPECT_FAILS(run(p->bytes, o), Code::kCorrupt, "needs 24 bytes");
}

// Deterministic mutation smoke test: flipped, inserted and deleted bytes in a realistic
// pickle must end in a Status (or a valid tree), never a crash or sanitizer report.
TEST(PickleHostile, RandomMutationsFailCleanly) {
  Tree tree;
  tree.storages.push_back(StorageInfo{"k", DType::kFloat32, 48, "cpu"});
  tree.storages.push_back(StorageInfo{"q", DType::kFloat8_e5m2, 4, "cpu"});
  ValuePtr sd = Value::dict(true);
  TensorMeta t;
  t.shape = {3, 4};
  t.strides = {4, 1};
  ValuePtr w = Value::make_tensor(t);
  t.is_parameter = true;
  sd->entries.emplace_back(Value::str("w"), w);
  sd->entries.emplace_back(Value::str("tied"), w);
  sd->entries.emplace_back(Value::str("p"), Value::make_tensor(t));
  TensorMeta f8;
  f8.dtype = DType::kFloat8_e5m2;
  f8.shape = {4};
  f8.strides = {1};
  f8.storage = 1;
  sd->entries.emplace_back(Value::str("f8"), Value::make_tensor(f8));
  sd->entries.emplace_back(
      Value::str("misc"),
      Value::list(
          {Value::bytes("ab"), Value::floating(1.5),
           Value::big_integer("123456789012345678901234567890"),
           Value::object("builtins.set", Value::tuple({Value::list({Value::integer(1)})}))}));
  sd->attrs = Value::dict();
  tree.root = sd;
  auto p = pickle_torch(tree, {});
  ASSERT_TRUE(p.ok()) << p.status().message();
  std::mt19937 rng(1234);
  int ok = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string m = p->bytes;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % m.size();
      switch (rng() % 3) {
        case 0:
          m[at] = static_cast<char>(rng());
          break;
        case 1:
          m.insert(m.begin() + at, static_cast<char>(rng()));
          break;
        default:
          m.erase(m.begin() + at);
          break;
      }
    }
    StorageTable table("ctx");
    UnpickleOptions o;
    o.allow_objects = iter % 2;
    o.persistent_load = [&](const ValuePtr& pid) { return table.load(pid); };
    auto r = run(m, o);
    if (r.ok()) {
      ++ok;
      continue;
    }
    EXPECT_NE(r.status().code(), Code::kInternal) << r.status().message();
    EXPECT_EQ(r.status().message().rfind("ctx: ", 0), 0u) << r.status().message();
  }
  EXPECT_LT(ok, 3000);
}

}  // namespace
}  // namespace ckptio
