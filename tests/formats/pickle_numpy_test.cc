// numpy values at the pickle level (formats/pickle/pickle_numpy.h): hand-assembled pickles
// with the opcode sequences numpy's __reduce__ produces (checked against real numpy output in
// tests/interop/numpy_test.cc), and hostile variants of them. Each array's bytes must reach
// the inline-storage hook little-endian and in C order; every refusal must name the global.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "formats/pickle/storage_table.h"
#include "formats/pickle/unpickler.h"

using namespace std::string_literals;

namespace ckptio {
namespace {

// ---- pickle assembly (protocol 2 opcodes, plus SHORT_BINBYTES / BINBYTES of protocol 3) ----
std::string le(uint64_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
  return s;
}
std::string glob(const std::string& module, const std::string& name) {
  return "c" + module + "\n" + name + "\n";
}
std::string str(const std::string& s) { return "X" + le(s.size(), 4) + s; }
std::string bin(const std::string& b) {
  return b.size() < 256 ? "C" + le(b.size(), 1) + b : "B" + le(b.size(), 4) + b;
}
// Protocol 2's bytes: _codecs.encode(latin-1 text as UTF-8, 'latin1').
std::string codecs_bytes(const std::string& b) {
  std::string utf8;
  for (unsigned char c : b) {
    if (c < 0x80) {
      utf8.push_back(static_cast<char>(c));
    } else {
      utf8.push_back(static_cast<char>(0xc0 | (c >> 6)));
      utf8.push_back(static_cast<char>(0x80 | (c & 0x3f)));
    }
  }
  return glob("_codecs", "encode") + "(" + str(utf8) + str("latin1") + "tR";
}
std::string i32(int32_t v) { return "J" + le(static_cast<uint32_t>(v), 4); }
std::string ints(const std::vector<int64_t>& dims) {
  std::string s = "(";
  for (int64_t d : dims) {
    if (d >= INT32_MIN && d <= INT32_MAX) {
      s += i32(static_cast<int32_t>(d));
    } else {  // LONG1, 8 bytes two's complement
      s += "\x8a\x08"s + le(static_cast<uint64_t>(d), 8);
    }
  }
  return s + "t";
}
std::string wrap(const std::string& body) { return "\x80\x02"s + body + "."; }

const char kCore[] = "numpy.core.multiarray";
const char kCore2[] = "numpy._core.multiarray";

// numpy.dtype(name, False, True) + BUILD (3, order, None, None, None, -1, -1, 0), or with
// `state` instead.
std::string dtype(const std::string& name, const std::string& order = "<",
                  const std::string& state = "") {
  return glob("numpy", "dtype") + "(" + str(name) + "\x89\x88tR" +
         (state.empty() ? "(" + i32(3) + str(order) + "NNN" + i32(-1) + i32(-1) + i32(0) + "t"
                        : state) +
         "b";
}
std::string scalar(const std::string& dt, const std::string& raw, const char* mod = kCore) {
  return glob(mod, "scalar") + "(" + dt + bin(raw) + "tR";
}
std::string array(const std::vector<int64_t>& shape, const std::string& dt, bool fortran,
                  const std::string& data, const char* mod = kCore) {
  return glob(mod, "_reconstruct") + "(" + glob("numpy", "ndarray") + "(K\x00t"s + bin("b") + "tR" +
         "(" + i32(1) + ints(shape) + dt + (fortran ? "\x88" : "\x89") + data + "tb";
}

// ---- running -------------------------------------------------------------------------
struct Run {
  Result<Unpickled> result = Status(Code::kInternal, "not run");
  StorageTable table{"ctx"};
};
std::unique_ptr<Run> run(const std::string& bytes, bool with_hook = true) {
  auto r = std::make_unique<Run>();
  UnpickleOptions o;
  o.context = "ctx";
  Run* p = r.get();
  if (with_hook)
    o.inline_storage = [p](DType d, std::string b) { return p->table.add_inline(d, std::move(b)); };
  r->result = unpickle(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), o);
  return r;
}
ValuePtr value_of(const std::string& bytes) {
  auto r = run(wrap(bytes));
  EXPECT_TRUE(r->result.ok()) << r->result.status().message();
  return r->result.ok() ? r->result.value().value : Value::none();
}

#define EXPECT_FAILS(bytes, code_, fragment)                           \
  do {                                                                 \
    auto _r = run(bytes);                                              \
    ASSERT_FALSE(_r->result.ok());                                     \
    const std::string& _m = _r->result.status().message();             \
    EXPECT_EQ(_r->result.status().code(), code_) << _m;                \
    EXPECT_NE(_m.find(fragment), std::string::npos) << _m;             \
    EXPECT_EQ(_m.rfind("ctx: ", 0), 0u) << _m;                         \
    EXPECT_EQ(_m.find('\n'), std::string::npos) << "one line: " << _m; \
  } while (0)

std::string f64(double d) {
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return le(u, 8);
}
std::string f32(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return le(u, 4);
}
std::string reversed(std::string s) { return std::string(s.rbegin(), s.rend()); }

TEST(PickleNumpy, ScalarsBecomeNumbers) {
  ValuePtr v = value_of(scalar(dtype("b1", "|"), "\x01"));
  ASSERT_EQ(v->kind, Kind::kBool);
  EXPECT_TRUE(v->b);
  v = value_of(scalar(dtype("i1", "|"), "\xfe"));
  ASSERT_EQ(v->kind, Kind::kInt);
  EXPECT_EQ(v->i, -2);
  v = value_of(scalar(dtype("i2", ">"), "\xff\x00"s));  // big-endian -256
  ASSERT_EQ(v->kind, Kind::kInt);
  EXPECT_EQ(v->i, -256);
  v = value_of(scalar(dtype("i8"), le(static_cast<uint64_t>(INT64_MIN), 8), kCore2));
  ASSERT_EQ(v->kind, Kind::kInt);
  EXPECT_EQ(v->i, INT64_MIN);
  v = value_of(scalar(dtype("u4"), "\xff\xff\xff\xff"));
  ASSERT_EQ(v->kind, Kind::kInt);
  EXPECT_EQ(v->i, 4294967295);
  v = value_of(scalar(dtype("u8"), std::string(8, '\xff')));
  ASSERT_EQ(v->kind, Kind::kBigInt);
  EXPECT_EQ(v->s, "18446744073709551615");
  v = value_of(scalar(dtype("f2"), "\x00\x3c"s));  // 1.0
  ASSERT_EQ(v->kind, Kind::kFloat);
  EXPECT_EQ(v->f, 1.0);
  v = value_of(scalar(dtype("f2"), "\x01\x00"s));  // smallest subnormal
  EXPECT_EQ(v->f, 5.9604644775390625e-08);
  v = value_of(scalar(dtype("f2", ">"), "\xfc\x00"s));  // -inf, big-endian
  EXPECT_TRUE(std::isinf(v->f) && v->f < 0);
  v = value_of(scalar(dtype("f4", ">"), reversed(f32(0.1f))));
  EXPECT_EQ(v->f, static_cast<double>(0.1f));
  v = value_of(scalar(dtype("f8"), f64(-2.5)));
  EXPECT_EQ(v->f, -2.5);
  v = value_of(scalar(dtype("c8", ">"), reversed(f32(1.5f)) + reversed(f32(-3.0f))));
  ASSERT_EQ(v->kind, Kind::kObject);
  EXPECT_EQ(v->s, "builtins.complex");
  ASSERT_EQ(v->args->items.size(), 2u);
  EXPECT_EQ(v->args->items[0]->f, 1.5);
  EXPECT_EQ(v->args->items[1]->f, -3.0);
}

TEST(PickleNumpy, ArraysBecomeLittleEndianCOrderTensors) {
  // >i4, shape (2, 3): 0..5 big-endian, C order.
  std::string raw;
  for (uint32_t i = 0; i < 6; ++i) raw += reversed(le(i, 4));
  auto r = run(
      wrap("(" + array({2, 3}, dtype("i4", ">"), false, bin(raw)) +
           // float64 (2, 3) in Fortran order: memory 0 3 1 4 2 5 for C values 0..5.
           array({2, 3}, dtype("f8"), true,
                 bin(f64(0) + f64(3) + f64(1) + f64(4) + f64(2) + f64(5)), kCore2) +
           // complex64 big-endian: each half swapped, not the whole element.
           array({1}, dtype("c8", ">"), false, codecs_bytes(reversed(f32(1)) + reversed(f32(2)))) +
           "t"));
  ASSERT_TRUE(r->result.ok()) << r->result.status().message();
  const Value& root = *r->result.value().value;
  ASSERT_EQ(root.items.size(), 3u);
  const std::vector<std::string> want = {
      [] {
        std::string s;
        for (uint32_t i = 0; i < 6; ++i) s += le(i, 4);
        return s;
      }(),
      f64(0) + f64(1) + f64(2) + f64(3) + f64(4) + f64(5),
      f32(1) + f32(2),
  };
  const DType dtypes[] = {DType::kInt32, DType::kFloat64, DType::kComplex64};
  for (size_t k = 0; k < 3; ++k) {
    const Value& t = *root.items[k];
    ASSERT_EQ(t.kind, Kind::kTensor) << k;
    EXPECT_EQ(t.tensor.dtype, dtypes[k]);
    EXPECT_FALSE(t.tensor.is_storage);
    EXPECT_EQ(t.tensor.storage_offset, 0);
    auto bytes = r->table.inline_bytes(t.tensor.storage);
    ASSERT_TRUE(bytes) << k;
    EXPECT_EQ(*bytes, want[k]) << k;
    EXPECT_EQ(r->table.storages()[t.tensor.storage].nbytes, want[k].size());
    EXPECT_EQ(r->table.storages()[t.tensor.storage].device, "cpu");
  }
  EXPECT_EQ(root.items[0]->tensor.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(root.items[0]->tensor.strides, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(root.items[2]->tensor.shape, (std::vector<int64_t>{1}));
  EXPECT_EQ(r->table.storages().size(), 3u);
}

TEST(PickleNumpy, FortranOrderIn3D) {
  // (2, 3, 4) int16, Fortran order: element (i, j, k) sits at i + 2j + 6k.
  std::string fortran(48, '\0'), c_order;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) {
        const uint16_t v = static_cast<uint16_t>(100 * i + 10 * j + k);
        fortran.replace(2 * (i + 2 * j + 6 * k), 2, le(v, 2));
        c_order += le(v, 2);
      }
  auto r = run(wrap(array({2, 3, 4}, dtype("i2"), true, bin(fortran))));
  ASSERT_TRUE(r->result.ok()) << r->result.status().message();
  const Value& t = *r->result.value().value;
  ASSERT_EQ(t.kind, Kind::kTensor);
  EXPECT_EQ(t.tensor.strides, (std::vector<int64_t>{12, 4, 1}));
  EXPECT_EQ(*r->table.inline_bytes(t.tensor.storage), c_order);
}

TEST(PickleNumpy, EmptyZeroDimAndSharedArrays) {
  // A 0-dim array, an empty one, and the same array twice through the memo: one storage.
  auto r = run(wrap("(" + array({}, dtype("f8"), false, bin(f64(7))) +
                    array({0, 5}, dtype("f4"), false, bin("")) + "q\x07h\x07t"));
  ASSERT_TRUE(r->result.ok()) << r->result.status().message();
  const auto& items = r->result.value().value->items;
  ASSERT_EQ(items.size(), 3u);
  EXPECT_TRUE(items[0]->tensor.shape.empty());
  EXPECT_EQ(*r->table.inline_bytes(items[0]->tensor.storage), f64(7));
  EXPECT_EQ(items[1]->tensor.shape, (std::vector<int64_t>{0, 5}));
  EXPECT_EQ(items[1], items[2]);
  EXPECT_EQ(r->table.storages().size(), 2u);
}

TEST(PickleNumpy, FromBufferOfProtocol5) {
  // numpy.core.numeric._frombuffer(bytearray, dtype, shape, order), in-band buffers.
  std::string buf = f32(1) + f32(2) + f32(3) + f32(4) + f32(5) + f32(6);
  for (const char* order : {"C", "F"}) {
    auto r = run(wrap(glob("numpy._core.numeric", "_frombuffer") + "(\x96"s + le(buf.size(), 8) +
                      buf + dtype("f4") + ints({3, 2}) + str(order) + "tR"));
    ASSERT_TRUE(r->result.ok()) << r->result.status().message();
    const Value& t = *r->result.value().value;
    ASSERT_EQ(t.kind, Kind::kTensor);
    EXPECT_EQ(t.tensor.shape, (std::vector<int64_t>{3, 2}));
    EXPECT_EQ(*r->table.inline_bytes(t.tensor.storage),
              order[0] == 'C' ? buf : f32(1) + f32(4) + f32(2) + f32(5) + f32(3) + f32(6));
  }
}

TEST(PickleNumpy, RefusedKindsNameTheGlobal) {
  struct Case {
    std::string name, fragment;
  } cases[] = {
      {"O8", "numpy.dtype('O8') at offset 26: object arrays"},
      {"U3", "numpy.dtype('U3') at offset 26: string dtypes"},
      {"S3", "numpy.dtype('S3') at offset 26: string dtypes"},
      {"V8", "numpy.dtype('V8') at offset 26: void dtypes"},
      {"M8", "numpy.dtype('M8') at offset 26: datetime64"},
      {"m8", "numpy.dtype('m8') at offset 26: datetime64"},
      {"f16", "numpy.dtype('f16') at offset 27: extended-precision"},
      {"q9", "numpy.dtype('q9') at offset 26: an unknown type code"},
  };
  for (const auto& c : cases) EXPECT_FAILS(wrap(dtype(c.name)), Code::kUnsupported, c.fragment);
  // A numeric code whose state says it is something else.
  auto state = [](const std::string& sub, const std::string& names, int elsize, int flags,
                  const std::string& meta = "") {
    return "(" + i32(meta.empty() ? 3 : 4) + str("<") + sub + names + i32(elsize) + i32(-1) +
           i32(flags) + meta + "t";
  };
  EXPECT_FAILS(wrap(dtype("f4", "", state("N", "NN", -1, 0, "}"))), Code::kUnsupported,
               "numpy.dtype('f4') at offset");
  EXPECT_FAILS(wrap(dtype("f4", "", state("N", "NN", -1, 0, "}"))), Code::kUnsupported,
               "with metadata");
  EXPECT_FAILS(wrap(dtype("f4", "", state("N", "(" + str("a") + "t}", -1, 0))), Code::kUnsupported,
               "structured dtype");
  EXPECT_FAILS(wrap(dtype("f4", "", state("(" + dtype("f4") + "(K\x02tt", "NN", -1, 0))),
               Code::kUnsupported, "subarray dtype");
  EXPECT_FAILS(wrap(dtype("f4", "", state("N", "NN", 12, 0))), Code::kUnsupported, "custom dtype");
  EXPECT_FAILS(wrap(dtype("f4", "", state("N", "NN", -1, 63))), Code::kUnsupported, "flags 63");
  EXPECT_FAILS(wrap(dtype("f4", "|")), Code::kCorrupt, "byte order '|'");
  EXPECT_FAILS(wrap(dtype("f4", "=")), Code::kCorrupt, "byte order must be");
  EXPECT_FAILS(wrap(dtype("f4", "", "(" + i32(3) + str("<") + "t")), Code::kCorrupt,
               "tuple of 8 or 9 items");
  // ndarray subclasses (np.matrix, ...): refused at GLOBAL, or by _reconstruct when the
  // caller allows unknown classes.
  EXPECT_FAILS(wrap(glob("numpy", "matrix")), Code::kForbidden, "numpy.matrix");
  {
    UnpickleOptions o;
    o.context = "ctx";
    o.allow_objects = true;
    std::string p = wrap(glob(kCore, "_reconstruct") + "(" + glob("numpy", "matrix") + "(K\x00t"s +
                         bin("b") + "tR");
    auto r = unpickle(reinterpret_cast<const uint8_t*>(p.data()), p.size(), o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kUnsupported);
    EXPECT_NE(r.status().message().find(
                  "numpy.core.multiarray._reconstruct at offset 61: subclass 'numpy.matrix'"),
              std::string::npos)
        << r.status().message();
  }
  // Other numpy globals stay outside the allow-list.
  EXPECT_FAILS(wrap(glob("numpy.ma.core", "_mareconstruct")), Code::kForbidden,
               "numpy.ma.core._mareconstruct");
  EXPECT_FAILS(wrap(glob("numpy", "ndarray") + "((K\x00t"s + bin("b") + "tR"), Code::kUnsupported,
               "calling numpy.ndarray");
}

TEST(PickleNumpy, HostileArrayStatesFailCleanly) {
  const std::string f4 = dtype("f4");
  // Shape against bytes: the check comes before anything is allocated.
  EXPECT_FAILS(wrap(array({2, 3}, f4, false, bin(std::string(20, 'x')))), Code::kCorrupt,
               "shape (2, 3) of f4 needs 24 bytes, the pickle holds 20");
  EXPECT_FAILS(wrap(array({2}, f4, false, bin(std::string(12, 'x')))), Code::kCorrupt,
               "shape (2,) of f4 needs 8 bytes, the pickle holds 12");
  EXPECT_FAILS(wrap(array({-1, 3}, f4, false, bin(""))), Code::kCorrupt, "negative dimension (-1)");
  EXPECT_FAILS(wrap(array({int64_t{1} << 40, int64_t{1} << 40}, f4, false, bin(""))),
               Code::kCorrupt, "too large");
  EXPECT_FAILS(wrap(array({int64_t{1} << 31, int64_t{1} << 30}, f4, false, bin(""))),
               Code::kCorrupt, "too large (its byte size overflows)");
  // No elements, but strides that overflow.
  EXPECT_FAILS(wrap(array({0, int64_t{1} << 40, int64_t{1} << 40}, f4, false, bin(""))),
               Code::kCorrupt, "too large");
  EXPECT_FAILS(wrap(array({INT64_MAX}, f4, false, bin(""))), Code::kCorrupt, "too large");
  {  // a dimension beyond int64 (LONG1 of 9 bytes)
    std::string p = wrap(array({1}, f4, false, bin("")));
    std::string from = ints({1}), to = "(\x8a\x09"s + std::string(8, '\0') + "\x01t";
    p.replace(p.find(from), from.size(), to);
    EXPECT_FAILS(p, Code::kCorrupt, "too large for any array");
  }
  EXPECT_FAILS(wrap(array(std::vector<int64_t>(65, 1), f4, false, bin(f32(0)))), Code::kCorrupt,
               "65 dimensions");
  // The data of an object array (a list) with a numeric dtype; data that is not bytes.
  EXPECT_FAILS(wrap(array({1}, f4, false, "]")), Code::kCorrupt, "data is a list");
  EXPECT_FAILS(wrap(array({1}, f4, false, i32(5))), Code::kCorrupt, "(data) must be bytes");
  EXPECT_FAILS(wrap(array({1}, "N", false, bin(f32(0)))), Code::kCorrupt,
               "(dtype) must be a numpy.dtype");
  // A state of another version or shape.
  {
    std::string p = wrap(array({1}, f4, false, bin(f32(0))));
    p.replace(p.find("(" + i32(1) + ints({1})), 1 + 5, "(" + i32(2));
    EXPECT_FAILS(p, Code::kUnsupported, "array state version 2");
  }
  EXPECT_FAILS(wrap(glob(kCore, "_reconstruct") + "(" + glob("numpy", "ndarray") + "(K\x00t"s +
                    bin("b") + "tR" + "(K\x01tb"),
               Code::kCorrupt, "state must be (version, shape, dtype, is_fortran, data)");
  // An array that never gets its state, and a dtype that never gets its own.
  EXPECT_FAILS(wrap(glob(kCore, "_reconstruct") + "(" + glob("numpy", "ndarray") + "(K\x00t"s +
                    bin("b") + "tR"),
               Code::kCorrupt, "numpy array made by _reconstruct at offset 62 never got its state");
  EXPECT_FAILS(wrap(scalar(glob("numpy", "dtype") + "(" + str("f8") + "\x89\x88tR", f64(1))),
               Code::kCorrupt, "numpy.dtype('f8') never got its state");
  // Scalars of the wrong size.
  EXPECT_FAILS(wrap(scalar(dtype("f8"), "abc")), Code::kCorrupt,
               "a f8 scalar needs 8 bytes, the pickle holds 3");
  // _frombuffer against its buffer and order.
  EXPECT_FAILS(wrap(glob("numpy.core.numeric", "_frombuffer") + "(" + bin(f32(1)) + f4 + ints({2}) +
                    str("C") + "tR"),
               Code::kCorrupt, "numpy.core.numeric._frombuffer at offset 112: shape (2,) of f4");
  EXPECT_FAILS(wrap(glob("numpy.core.numeric", "_frombuffer") + "(" + bin(f32(1)) + f4 + ints({1}) +
                    str("K") + "tR"),
               Code::kCorrupt, "(order) must be 'C' or 'F'");
}

TEST(PickleNumpy, ArraysNeedTheInlineStorageHook) {
  // Readers without a place for in-pickle bytes (TorchScript) refuse arrays, not scalars.
  auto r = run(wrap(array({1}, dtype("f4"), false, bin(f32(1)))), false);
  ASSERT_FALSE(r->result.ok());
  EXPECT_EQ(r->result.status().code(), Code::kUnsupported);
  EXPECT_NE(r->result.status().message().find("numpy arrays are not supported in this kind"),
            std::string::npos)
      << r->result.status().message();
  auto s = run(wrap(scalar(dtype("f4"), f32(1))), false);
  ASSERT_TRUE(s->result.ok()) << s->result.status().message();
  EXPECT_EQ(s->result.value().value->f, 1.0);
}

}  // namespace
}  // namespace ckptio
