#include "formats/pickle/pickle_numpy.h"

#include <array>
#include <cmath>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

#include "formats/dtype.h"
#include "formats/pickle/pickle_error.h"
#include "formats/pickle/pickle_globals.h"

namespace ckptio {
namespace pickle_detail {
namespace {

// numpy 1 pickles name numpy.core, numpy 2 numpy._core (numpy 1.26 reads both).
bool one_of(const std::string& fn, std::string_view tail) {
  for (std::string_view m : {"numpy.core.", "numpy._core."})
    if (fn.size() == m.size() + tail.size() && fn.compare(0, m.size(), m) == 0 &&
        fn.compare(m.size(), tail.size(), tail) == 0)
      return true;
  return false;
}
bool is_reconstruct(const std::string& fn) { return one_of(fn, "multiarray._reconstruct"); }
bool is_scalar(const std::string& fn) { return one_of(fn, "multiarray.scalar"); }
bool is_frombuffer(const std::string& fn) { return one_of(fn, "numeric._frombuffer"); }

constexpr std::string_view kDType = "numpy.dtype";
constexpr std::string_view kNdarray = "numpy.ndarray";
// numpy's NPY_MAXDIMS (32 in numpy 1, 64 in numpy 2).
constexpr size_t kMaxDims = 64;
// As StorageTable: no real array is near this, and it leaves headroom for offset arithmetic.
constexpr uint64_t kMaxBytes = uint64_t{1} << 62;

const char* const kWhatWeRead = "ckptio reads numpy bool, int, uint, float and complex values";

std::string describe(const Value* v) {
  if (!v) return "nothing";
  if (v->kind == Kind::kGlobal || v->kind == Kind::kObject) return v->s;
  return kind_name(v->kind);
}

// A numeric dtype as numpy's dtype.__reduce__ describes it: the name ('f4', 'c16', ...),
// then the byte order from the BUILD state.
struct NumpyType {
  std::string name;
  DType dtype = DType::kUInt8;
  int size = 1;
  bool big_endian = false;
};

// The torch dtype of a numpy type code, or throws naming what numpy kind it is.
DType dtype_of_name(const std::string& fn, const std::string& name, const CallSite& site) {
  struct TypeCode {
    const char* name;
    DType dtype;
  };
  static constexpr TypeCode kCodes[] = {
      {"b1", DType::kBool},      {"i1", DType::kInt8},        {"i2", DType::kInt16},
      {"i4", DType::kInt32},     {"i8", DType::kInt64},       {"u1", DType::kUInt8},
      {"u2", DType::kUInt16},    {"u4", DType::kUInt32},      {"u8", DType::kUInt64},
      {"f2", DType::kFloat16},   {"f4", DType::kFloat32},     {"f8", DType::kFloat64},
      {"c8", DType::kComplex64}, {"c16", DType::kComplex128},
  };
  for (const auto& c : kCodes)
    if (name == c.name) return c.dtype;
  const char* what = nullptr;
  switch (name.empty() ? '\0' : name[0]) {
    case 'O':
      what = "object arrays (dtype 'O': Python objects, not data) are";
      break;
    case 'U':
    case 'S':
    case 'a':
      what = "string dtypes ('U' / 'S': torch has no string tensors) are";
      break;
    case 'V':
      what = "void dtypes (structured records, subarrays or custom dtypes) are";
      break;
    case 'M':
    case 'm':
      what = "datetime64 / timedelta64 dtypes are";
      break;
    default:
      for (const char* longdouble : {"f12", "f16", "c24", "c32"})
        if (name == longdouble)
          what = "extended-precision (longdouble) dtypes, which torch has no dtype for, are";
  }
  fail(Code::kUnsupported, fn + "('" + name + "')" + at(site.offset) + ": " +
                               (what ? what : "an unknown type code is") + " not supported; " +
                               kWhatWeRead);
}

bool is_dtype_object(const Value& v) { return v.kind == Kind::kObject && v.s == kDType; }

// The dtype argument of a scalar or an array: a numpy.dtype REDUCE that BUILD gave its state.
NumpyType dtype_arg(const std::string& fn, const Value* v, size_t i, const CallSite& site) {
  if (!v || !is_dtype_object(*v) || !v->args || v->args->items.empty())
    bad_arg(fn, i, "dtype", "a numpy.dtype", v, site);
  if (!v->state)
    fail(Code::kCorrupt, fn + at(site.offset) + ": numpy.dtype('" + v->args->items[0]->s +
                             "') never got its state (no BUILD)");
  NumpyType t;
  t.name = v->args->items[0]->s;
  t.dtype = dtype_of_name(std::string(kDType), t.name, site);  // checked at REDUCE already
  t.size = dtype_size(t.dtype);
  t.big_endian = v->state->items[1]->s == ">";
  return t;
}

// The raw bytes of a scalar or an array: bytes (SHORT_BINBYTES, or _codecs.encode at protocol
// 2) or a bytearray (BYTEARRAY8, protocol 5's in-band buffers).
const std::string& bytes_arg(const std::string& fn, const Value* v, size_t i, const char* what,
                             const CallSite& site) {
  if (v && v->kind == Kind::kBytes) return v->s;
  if (v && v->kind == Kind::kObject && v->s == "builtins.bytearray" && v->args &&
      v->args->items.size() == 1 && v->args->items[0]->kind == Kind::kBytes)
    return v->args->items[0]->s;
  bad_arg(fn, i, what, "bytes", v, site);
}

// ---- numpy.dtype --------------------------------------------------------------------------

ValuePtr make_dtype(const std::string& fn, const Value& args, const CallSite& site) {
  expect_arity(fn, args, 1, 3, site);
  const std::string& name = str_arg(fn, args, 0, "name", site);
  dtype_of_name(fn, name, site);
  for (size_t i = 1; i < args.items.size(); ++i)
    bool_arg(fn, args, i, i == 1 ? "align" : "copy", site);
  return Value::object(fn, Value::tuple(args.items));
}

// dtype.__setstate__'s tuple: (version, byteorder, subarray, names, fields, elsize,
// alignment, flags[, metadata]). A numeric dtype has no subarray, fields, explicit sizes,
// flags or metadata; anything else describes a kind of dtype that ckptio refuses.
void build_dtype(Value& obj, const ValuePtr& state, const CallSite& site) {
  const std::string fn = "numpy.dtype('" + obj.args->items[0]->s + "')";
  const DType dtype = dtype_of_name(std::string(kDType), obj.args->items[0]->s, site);
  auto corrupt = [&](const std::string& what) {
    fail(Code::kCorrupt, fn + at(site.offset) + ": BUILD state " + what);
  };
  auto refuse = [&](const std::string& what) {
    fail(Code::kUnsupported,
         fn + at(site.offset) + ": " + what + " is not supported; " + kWhatWeRead);
  };
  if (state->kind != Kind::kTuple || (state->items.size() != 8 && state->items.size() != 9))
    corrupt("must be a tuple of 8 or 9 items, got " + describe(state.get()) +
            (state->kind == Kind::kTuple ? " of " + std::to_string(state->items.size()) : ""));
  const auto& s = state->items;
  const int64_t want_version = s.size() == 8 ? 3 : 4;
  if (s[0]->kind != Kind::kInt || s[0]->i != want_version)
    corrupt("version must be " + std::to_string(want_version) + " for " + std::to_string(s.size()) +
            " items");
  if (s[1]->kind != Kind::kStr || (s[1]->s != "<" && s[1]->s != ">" && s[1]->s != "|"))
    corrupt("byte order must be '<', '>' or '|'");
  if (dtype_size(dtype) > 1 && s[1]->s == "|")
    corrupt("byte order '|' (not applicable) for a " + std::to_string(dtype_size(dtype)) +
            "-byte type");
  if (s[2]->kind != Kind::kNone) refuse("a subarray dtype");
  if (s[3]->kind != Kind::kNone || s[4]->kind != Kind::kNone) refuse("a structured dtype (fields)");
  for (size_t i : {5, 6})
    if (s[i]->kind != Kind::kInt || s[i]->i != -1)
      refuse(std::string("a custom dtype (explicit ") + (i == 5 ? "item size" : "alignment") + ")");
  if (s[7]->kind != Kind::kInt) corrupt("flags must be an int");
  if (s[7]->i != 0) refuse("a dtype with flags " + std::to_string(s[7]->i) + " (custom or object)");
  if (s.size() == 9 && s[8]->kind != Kind::kNone) refuse("a dtype with metadata");
  obj.state = state;
}

// ---- numpy scalars ------------------------------------------------------------------------

uint64_t load_le(const uint8_t* p, int n, bool big_endian) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) {
    const int k = big_endian ? n - 1 - i : i;
    v |= uint64_t{p[i]} << (8 * k);
  }
  return v;
}

double half_to_double(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  double v;
  if (exp == 0)
    v = std::ldexp(mant, -24);  // zero and subnormals
  else if (exp == 31)
    v = mant ? std::nan("") : INFINITY;
  else
    v = std::ldexp(mant + 1024, exp - 25);
  return sign ? -v : v;
}

double float_at(const uint8_t* p, int size, bool big_endian) {
  const uint64_t bits = load_le(p, size, big_endian);
  if (size == 2) return half_to_double(static_cast<uint16_t>(bits));
  if (size == 4) {
    float f;
    const uint32_t b = static_cast<uint32_t>(bits);
    std::memcpy(&f, &b, 4);
    return f;
  }
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

// numpy.core.multiarray.scalar(dtype, raw): the value as the Python number numpy's .item()
// gives (bool, int, float, complex).
ValuePtr make_scalar(const std::string& fn, const Value& args, const CallSite& site) {
  expect_arity(fn, args, 2, 2, site);
  const NumpyType t = dtype_arg(fn, args.items[0].get(), 0, site);
  const std::string& raw = bytes_arg(fn, args.items[1].get(), 1, "raw bytes", site);
  if (raw.size() != static_cast<size_t>(t.size))
    fail(Code::kCorrupt, fn + at(site.offset) + ": a " + t.name + " scalar needs " +
                             std::to_string(t.size) + " bytes, the pickle holds " +
                             std::to_string(raw.size()));
  const auto* p = reinterpret_cast<const uint8_t*>(raw.data());
  switch (t.dtype) {
    case DType::kBool:
      return Value::boolean(p[0] != 0);
    case DType::kInt8:
    case DType::kInt16:
    case DType::kInt32:
    case DType::kInt64: {
      const uint64_t u = load_le(p, t.size, t.big_endian);
      const int shift = 64 - 8 * t.size;  // sign-extend from the type's width
      return Value::integer(static_cast<int64_t>(u << shift) >> shift);
    }
    case DType::kUInt8:
    case DType::kUInt16:
    case DType::kUInt32:
    case DType::kUInt64: {
      const uint64_t u = load_le(p, t.size, t.big_endian);
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::big_integer(std::to_string(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case DType::kComplex64:
    case DType::kComplex128: {
      const int half = t.size / 2;
      return Value::object("builtins.complex",
                           Value::tuple({Value::floating(float_at(p, half, t.big_endian)),
                                         Value::floating(float_at(p + half, half, t.big_endian))}));
    }
    default:
      return Value::floating(float_at(p, t.size, t.big_endian));
  }
}

// ---- numpy arrays -------------------------------------------------------------------------

// An array's shape: ints, none negative, at most kMaxDims; and the number of elements, and
// the C-order strides, without overflow (a zero dimension makes the element count 0, not the
// strides: they are products of the other dimensions, which must fit too).
struct Shape {
  std::vector<int64_t> dims, strides;
  uint64_t numel = 1;
};
Shape shape_arg(const std::string& fn, const Value* v, const char* what, const CallSite& site) {
  if (!v || (v->kind != Kind::kTuple && v->kind != Kind::kList))
    fail(Code::kCorrupt,
         fn + at(site.offset) + ": " + what + " must be a tuple of ints, got " + describe(v));
  if (v->items.size() > kMaxDims)
    fail(Code::kCorrupt, fn + at(site.offset) + ": " + what + " has " +
                             std::to_string(v->items.size()) + " dimensions, more than numpy's " +
                             std::to_string(kMaxDims));
  Shape s;
  uint64_t stride_span = 1;  // product of max(d, 1): what the outermost stride needs
  for (const auto& d : v->items) {
    const bool big = d->kind == Kind::kBigInt;
    if (d->kind != Kind::kInt && !big)
      fail(Code::kCorrupt, fn + at(site.offset) + ": " + what + " must be a tuple of ints, got " +
                               describe(d.get()) + " in it");
    const std::string text = big ? d->s : std::to_string(d->i);
    if (big ? text[0] == '-' : d->i < 0)
      fail(Code::kCorrupt,
           fn + at(site.offset) + ": " + what + " has a negative dimension (" + text + ")");
    if (big || static_cast<uint64_t>(d->i) >= kMaxBytes)
      fail(Code::kCorrupt, fn + at(site.offset) + ": " + what + " has a dimension of " + text +
                               ", too large for any array");
    const uint64_t u = static_cast<uint64_t>(d->i);
    if (__builtin_mul_overflow(s.numel, u, &s.numel) ||
        __builtin_mul_overflow(stride_span, u ? u : 1, &stride_span) || stride_span >= kMaxBytes)
      fail(Code::kCorrupt, fn + at(site.offset) + ": " + what +
                               " is too large (its element count or strides overflow)");
    s.dims.push_back(d->i);
  }
  s.strides.assign(s.dims.size(), 1);
  for (size_t i = s.dims.size(); i-- > 1;)
    s.strides[i - 1] = s.strides[i] * (s.dims[i] ? s.dims[i] : 1);
  return s;
}

std::string shape_text(const std::vector<int64_t>& dims) {
  std::string out = "(";
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? ", " : "") + std::to_string(dims[i]);
  return out + (dims.size() == 1 ? ",)" : ")");
}

// The array's elements, in C order and little-endian, from numpy's raw bytes (`fortran`:
// column-major, as tobytes('F') writes a Fortran-contiguous array).
std::string c_order_le(const std::string& raw, const Shape& s, const NumpyType& t, bool fortran) {
  const size_t k = static_cast<size_t>(t.size);
  std::string out;
  if (!fortran || s.dims.size() < 2 || s.numel < 2) {
    out = raw;
  } else {
    out.resize(raw.size());
    // Walk the output in C order, keeping the source offset (Fortran strides) in step.
    const size_t nd = s.dims.size();
    std::array<uint64_t, kMaxDims> fstride{}, idx{};  // nd <= kMaxDims (shape_arg)
    fstride[0] = 1;
    for (size_t i = 1; i < nd; ++i)
      fstride[i] = fstride[i - 1] * static_cast<uint64_t>(s.dims[i - 1]);
    uint64_t src = 0;
    for (uint64_t n = 0; n < s.numel; ++n) {
      std::memcpy(&out[n * k], &raw[src * k], k);
      for (size_t j = nd; j-- > 0;) {
        src += fstride[j];
        if (++idx[j] < static_cast<uint64_t>(s.dims[j])) break;
        src -= fstride[j] * idx[j];
        idx[j] = 0;
      }
    }
  }
  const size_t unit = t.dtype == DType::kComplex64 || t.dtype == DType::kComplex128 ? k / 2 : k;
  if (t.big_endian && unit > 1)
    for (size_t off = 0; off < out.size(); off += unit)
      for (size_t a = off, b = off + unit - 1; a < b; ++a, --b) std::swap(out[a], out[b]);
  return out;
}

// The tensor an array's parts describe, its bytes checked against the shape and handed to
// the run's inline storage. `into` (the _reconstruct placeholder) becomes that tensor.
void fill_array(const std::string& fn, Value& into, const Shape& s, const NumpyType& t,
                const std::string& raw, bool fortran, const CallSite& site) {
  uint64_t nbytes;
  if (__builtin_mul_overflow(s.numel, static_cast<uint64_t>(t.size), &nbytes) ||
      nbytes >= kMaxBytes)
    fail(Code::kCorrupt, fn + at(site.offset) + ": shape " + shape_text(s.dims) + " of " + t.name +
                             " is too large (its byte size overflows)");
  if (nbytes != raw.size())
    fail(Code::kCorrupt, fn + at(site.offset) + ": shape " + shape_text(s.dims) + " of " + t.name +
                             " needs " + std::to_string(nbytes) + " bytes, the pickle holds " +
                             std::to_string(raw.size()));
  const NumpyContext* ctx = site.numpy;
  if (!ctx || !ctx->add_storage || !*ctx->add_storage)
    fail(Code::kUnsupported,
         fn + at(site.offset) + ": numpy arrays are not supported in this kind of file");
  Result<uint32_t> index = (*ctx->add_storage)(t.dtype, c_order_le(raw, s, t, fortran));
  if (!index.ok()) fail(index.status().code(), index.status().message() + at(site.offset));
  TensorMeta m;
  m.dtype = t.dtype;
  m.shape = s.dims;
  m.strides = s.strides;
  m.storage = index.value();
  into.kind = Kind::kTensor;
  into.tensor = std::move(m);
  into.s.clear();
  into.items.clear();  // APPENDS on the placeholder (allow_objects lets them through)
  into.entries.clear();
  into.args.reset();
  into.state.reset();
}

// numpy.core.multiarray._reconstruct(ndarray, (0,), b'b'): an empty array that BUILD fills.
// Until then it is a kObject "numpy.ndarray" placeholder.
ValuePtr make_placeholder(const std::string& fn, const Value& args, const CallSite& site) {
  expect_arity(fn, args, 3, 3, site);
  const Value& cls = *args.items[0];
  if (cls.kind != Kind::kGlobal) bad_arg(fn, 0, "subtype", "the class numpy.ndarray", &cls, site);
  if (cls.s != kNdarray)
    fail(Code::kUnsupported, fn + at(site.offset) + ": subclass '" + cls.s +
                                 "' of numpy.ndarray is not supported; only plain arrays are read");
  int_seq_arg(fn, args, 1, "shape", site);
  bytes_arg(fn, args.items[2].get(), 2, "dtype code", site);
  if (site.numpy) {
    ++site.numpy->unbuilt;
    site.numpy->unbuilt_offset = site.offset;
  }
  return Value::object(std::string(kNdarray), Value::tuple(args.items));
}

// ndarray.__setstate__((version, shape, dtype, is_fortran, raw)), version 1 (or absent).
void build_array(Value& obj, const ValuePtr& state, const CallSite& site) {
  const std::string fn = "numpy.ndarray.__setstate__";
  if (state->kind != Kind::kTuple || (state->items.size() != 5 && state->items.size() != 4))
    fail(Code::kCorrupt, fn + at(site.offset) +
                             ": state must be (version, shape, dtype, is_fortran, data), got " +
                             describe(state.get()));
  const Value& st = *state;
  size_t base = 0;
  if (st.items.size() == 5) {
    if (int_arg(fn, st, 0, "version", site) != 1)
      fail(Code::kUnsupported, fn + at(site.offset) + ": array state version " +
                                   std::to_string(st.items[0]->i) + " (numpy writes 1)");
    base = 1;
  }
  const Shape s = shape_arg(fn, st.items[base].get(), "shape", site);
  const NumpyType t = dtype_arg(fn, st.items[base + 1].get(), base + 1, site);
  const bool fortran = bool_arg(fn, st, base + 2, "is_fortran", site);
  const Value* data = st.items[base + 3].get();
  if (data->kind == Kind::kList)
    fail(Code::kCorrupt, fn + at(site.offset) +
                             ": data is a list (an object array's), but the "
                             "dtype is " +
                             t.name);
  const std::string& raw = bytes_arg(fn, data, base + 3, "data", site);
  fill_array(fn, obj, s, t, raw, fortran, site);
  if (site.numpy && site.numpy->unbuilt) --site.numpy->unbuilt;
}

// numpy.core.numeric._frombuffer(buf, dtype, shape, order): protocol 5's contiguous arrays.
ValuePtr from_buffer(const std::string& fn, const Value& args, const CallSite& site) {
  expect_arity(fn, args, 4, 4, site);
  const std::string& raw = bytes_arg(fn, args.items[0].get(), 0, "buffer", site);
  const NumpyType t = dtype_arg(fn, args.items[1].get(), 1, site);
  const Shape s = shape_arg(fn, args.items[2].get(), "shape", site);
  const std::string& order = str_arg(fn, args, 3, "order", site);
  if (order != "C" && order != "F")
    bad_arg(fn, 3, "order", "'C' or 'F'", args.items[3].get(), site);
  ValuePtr v = Value::none();
  fill_array(fn, *v, s, t, raw, order == "F", site);
  return v;
}

}  // namespace

bool is_numpy_global(const std::string& dotted) {
  if (dotted.compare(0, 6, "numpy.") != 0) return false;
  return dotted == kDType || dotted == kNdarray || is_reconstruct(dotted) || is_scalar(dotted) ||
         is_frombuffer(dotted);
}

ValuePtr numpy_call(const std::string& fn, const Value& args, const CallSite& site) {
  if (fn == kDType) return make_dtype(fn, args, site);
  if (is_scalar(fn)) return make_scalar(fn, args, site);
  if (is_reconstruct(fn)) return make_placeholder(fn, args, site);
  if (is_frombuffer(fn)) return from_buffer(fn, args, site);
  fail(Code::kUnsupported, "calling " + fn + at(site.offset) +
                               " is not supported (arrays are read through _reconstruct)");
}

bool numpy_build(const ValuePtr& obj, const ValuePtr& state, const CallSite& site) {
  if (obj->kind != Kind::kObject) return false;
  if (obj->s == kDType) {
    build_dtype(*obj, state, site);
    return true;
  }
  if (obj->s == kNdarray) {
    build_array(*obj, state, site);
    return true;
  }
  return false;
}

void numpy_check_complete(const NumpyContext& ctx) {
  if (ctx.unbuilt)
    fail(Code::kCorrupt, "numpy array made by _reconstruct" + at(ctx.unbuilt_offset) +
                             " never got its state (no BUILD)");
}

}  // namespace pickle_detail
}  // namespace ckptio
