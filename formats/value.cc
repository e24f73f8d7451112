#include "formats/value.h"

#include <charconv>

namespace ckptio {

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kBigInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kStr: return "str";
    case Kind::kBytes: return "bytes";
    case Kind::kList: return "list";
    case Kind::kTuple: return "tuple";
    case Kind::kDict: return "dict";
    case Kind::kTensor: return "tensor";
    case Kind::kGlobal: return "global";
    case Kind::kObject: return "object";
  }
  return "?";
}

int64_t TensorMeta::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // callers validate first (check_tensor_view)
  return n;
}

namespace {
ValuePtr make(Kind k) {
  auto v = std::make_shared<Value>();
  v->kind = k;
  return v;
}
}  // namespace

ValuePtr Value::none() { return make(Kind::kNone); }
ValuePtr Value::boolean(bool b) {
  auto v = make(Kind::kBool);
  v->b = b;
  return v;
}
ValuePtr Value::integer(int64_t i) {
  auto v = make(Kind::kInt);
  v->i = i;
  return v;
}
ValuePtr Value::big_integer(std::string decimal) {
  auto v = make(Kind::kBigInt);
  v->s = std::move(decimal);
  return v;
}
ValuePtr Value::floating(double f) {
  auto v = make(Kind::kFloat);
  v->f = f;
  return v;
}
ValuePtr Value::str(std::string s) {
  auto v = make(Kind::kStr);
  v->s = std::move(s);
  return v;
}
ValuePtr Value::bytes(std::string s) {
  auto v = make(Kind::kBytes);
  v->s = std::move(s);
  return v;
}
ValuePtr Value::list(std::vector<ValuePtr> items) {
  auto v = make(Kind::kList);
  v->items = std::move(items);
  return v;
}
ValuePtr Value::tuple(std::vector<ValuePtr> items) {
  auto v = make(Kind::kTuple);
  v->items = std::move(items);
  return v;
}
ValuePtr Value::dict(bool ordered) {
  auto v = make(Kind::kDict);
  v->ordered = ordered;
  return v;
}
ValuePtr Value::global(std::string name) {
  auto v = make(Kind::kGlobal);
  v->s = std::move(name);
  return v;
}
ValuePtr Value::object(std::string class_name, ValuePtr args, ValuePtr state) {
  auto v = make(Kind::kObject);
  v->s = std::move(class_name);
  v->args = std::move(args);
  v->state = std::move(state);
  return v;
}
ValuePtr Value::make_tensor(TensorMeta meta) {
  auto v = make(Kind::kTensor);
  v->tensor = std::move(meta);
  return v;
}

ValuePtr Value::get(const std::string& key) const {
  if (kind != Kind::kDict) return nullptr;
  for (const auto& [k, v] : entries)
    if (k && k->kind == Kind::kStr && k->s == key) return v;
  return nullptr;
}

namespace {

// Bytes a non-empty view with non-negative sizes, strides and offset addresses:
// (offset + sum((size-1)*stride) + 1) * element size; false when that overflows 64 bits.
bool view_bytes_needed(const TensorMeta& t, uint64_t* need) {
  uint64_t last = static_cast<uint64_t>(t.storage_offset);
  for (size_t d = 0; d < t.shape.size(); ++d) {
    uint64_t term;
    if (__builtin_mul_overflow(static_cast<uint64_t>(t.shape[d] - 1),
                               static_cast<uint64_t>(t.strides[d]), &term) ||
        __builtin_add_overflow(last, term, &last))
      return false;
  }
  return !__builtin_add_overflow(last, 1u, need) &&
         !__builtin_mul_overflow(*need, static_cast<uint64_t>(dtype_size(t.dtype)), need);
}

}  // namespace

Status check_tensor_view(const TensorMeta& t, const std::vector<StorageInfo>& storages,
                         const std::string& where) {
  if (t.storage >= storages.size())
    return Status(Code::kCorrupt, where + ": tensor refers to storage #" +
                                      std::to_string(t.storage) + " which does not exist");
  const StorageInfo& s = storages[t.storage];
  if (t.shape.size() != t.strides.size())
    return Status(Code::kCorrupt, where + ": tensor has " + std::to_string(t.shape.size()) +
                                      " sizes but " + std::to_string(t.strides.size()) +
                                      " strides");
  if (t.storage_offset < 0)
    return Status(Code::kCorrupt, where + ": negative storage offset " +
                                      std::to_string(t.storage_offset));
  bool empty = false;
  for (size_t d = 0; d < t.shape.size(); ++d) {
    if (t.shape[d] < 0)
      return Status(Code::kCorrupt, where + ": negative size " + std::to_string(t.shape[d]) +
                                        " in dimension " + std::to_string(d));
    if (t.strides[d] < 0)
      return Status(Code::kCorrupt, where + ": negative stride " +
                                        std::to_string(t.strides[d]) + " in dimension " +
                                        std::to_string(d));
    if (t.shape[d] == 0) empty = true;
  }
  if (empty) return Status::Ok();  // addresses no element, as in torch's set_()
  uint64_t need;
  if (!view_bytes_needed(t, &need))
    return Status(Code::kCorrupt, where + ": shape x stride overflows 64 bits");
  if (need > s.nbytes)
    return Status(Code::kCorrupt,
                  where + ": tensor view needs " + std::to_string(need) + " bytes but storage '" +
                      s.key + "' holds " + std::to_string(s.nbytes));
  return Status::Ok();
}

bool tensor_view_fits(const TensorMeta& t, uint64_t storage_nbytes) {
  // The same conditions as check_tensor_view, in the same order, without the messages.
  if (t.shape.size() != t.strides.size() || t.storage_offset < 0) return false;
  bool empty = false;
  for (size_t d = 0; d < t.shape.size(); ++d) {
    if (t.shape[d] < 0 || t.strides[d] < 0) return false;
    if (t.shape[d] == 0) empty = true;
  }
  if (empty) return true;
  uint64_t need;
  return view_bytes_needed(t, &need) && need <= storage_nbytes;
}

bool tensor_view_fits(const TensorMeta& t, const std::vector<StorageInfo>& storages) {
  return t.storage < storages.size() && tensor_view_fits(t, storages[t.storage].nbytes);
}

namespace detail {
// The one spelling of a position in a value tree (docs/cpp-api.md, "Paths"): Python's
// subscripts from the root, ['model']['layer.0.weight'][0], strings quoted and escaped as
// Python literals (so a key holding a quote or a newline cannot forge another path).
void append_key_label(std::string& out, const Value& key) {
  switch (key.kind) {
    case Kind::kStr:
      out += '\'';
      for (char c : key.s) {
        auto u = static_cast<unsigned char>(c);
        if (c == '\'' || c == '\\') {
          out += '\\';
          out += c;
        } else if (u < 0x20 || u == 0x7f) {
          static const char kHex[] = "0123456789abcdef";
          out += "\\x";
          out += kHex[u >> 4];
          out += kHex[u & 15];
        } else {
          out += c;
        }
      }
      out += '\'';
      return;
    case Kind::kInt: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, key.i);
      out.append(buf, r.ptr);
      return;
    }
    case Kind::kBigInt:
      out += key.s;
      return;
    case Kind::kBool:
      out += key.b ? "True" : "False";
      return;
    case Kind::kNone:
      out += "None";
      return;
    default:
      out += '<';
      out += kind_name(key.kind);
      out += '>';
  }
}
std::string key_label(const Value& key) {
  std::string out;
  append_key_label(out, key);
  return out;
}
}  // namespace detail

}  // namespace ckptio
