#include "formats/pickle/pickle_globals.h"

#include <algorithm>
#include <cctype>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "formats/dtype.h"
#include "formats/pickle/pickle_error.h"
#include "formats/pickle/pickle_numpy.h"
#include "formats/pickle/pickle_text.h"

namespace ckptio {
namespace pickle_detail {
namespace {

// Python's _compat_pickle NAME_MAPPING / IMPORT_MAPPING entries that can matter for
// checkpoints, plus torch's own module rename (torch.tensor -> torch._tensor).
struct NameMap {
  const char* module;
  const char* name;
  const char* new_module;
  const char* new_name;
};
constexpr NameMap kNameMapping[] = {
    {"__builtin__", "xrange", "builtins", "range"},
    {"__builtin__", "unicode", "builtins", "str"},
    {"__builtin__", "long", "builtins", "int"},
    {"__builtin__", "basestring", "builtins", "str"},
    {"__builtin__", "unichr", "builtins", "chr"},
    {"__builtin__", "reduce", "functools", "reduce"},
    {"__builtin__", "intern", "sys", "intern"},
    {"itertools", "izip", "builtins", "zip"},
    {"itertools", "imap", "builtins", "map"},
    {"itertools", "ifilter", "builtins", "filter"},
    {"UserDict", "UserDict", "collections", "UserDict"},
    {"UserList", "UserList", "collections", "UserList"},
    {"UserString", "UserString", "collections", "UserString"},
};
struct ModuleMap {
  const char* module;
  const char* new_module;
};
constexpr ModuleMap kImportMapping[] = {
    {"__builtin__", "builtins"}, {"copy_reg", "copyreg"},
    {"exceptions", "builtins"},  {"Queue", "queue"},
    {"cPickle", "pickle"},       {"cStringIO", "io"},
    {"StringIO", "io"},          {"torch.tensor", "torch._tensor"},
};

const std::unordered_set<std::string>& callables() {
  static const std::unordered_set<std::string> k = {
      "collections.OrderedDict",
      "collections.Counter",
      "torch._utils._rebuild_tensor",
      "torch._utils._rebuild_tensor_v2",
      "torch._utils._rebuild_tensor_v3",
      "torch._utils._rebuild_parameter",
      "torch._utils._rebuild_parameter_with_state",
      "torch._utils._rebuild_qtensor",
      "torch._utils._rebuild_sparse_tensor",
      "torch._utils._rebuild_sparse_csr_tensor",
      "torch._utils._rebuild_meta_tensor_no_storage",
      "torch._utils._rebuild_nested_tensor",
      "torch._utils._rebuild_wrapper_subclass",
      "torch._utils._rebuild_device_tensor_from_numpy",
      "torch._utils._rebuild_device_tensor_from_cpu_tensor",
      "torch._tensor._rebuild_from_type_v2",
      "torch.nn.parameter.Parameter",
      "torch.Tensor",
      "torch.Size",
      "torch.device",
      "torch.serialization._get_layout",
      "builtins.set",
      "builtins.frozenset",
      "builtins.complex",
      "builtins.bytes",
      "builtins.bytearray",
      "_codecs.encode",
      "torch.jit._pickle.restore_type_tag",
      "torch.jit._pickle.build_intlist",
      "torch.jit._pickle.build_doublelist",
      "torch.jit._pickle.build_boollist",
      "torch.jit._pickle.build_tensorlist",
  };
  return k;
}

const std::unordered_set<std::string>& plain_values() {
  static const std::unordered_set<std::string> k = {
      "torch.per_tensor_affine",
      "torch.per_tensor_symmetric",
      "torch.per_channel_affine",
      "torch.per_channel_symmetric",
      "torch.per_channel_affine_float_qparams",
      "torch.storage.UntypedStorage",
      "torch.storage.TypedStorage",
  };
  return k;
}

bool is_storage_class(const std::string& dotted) {
  for (const char* prefix : {"torch.cuda.", "torch."}) {
    std::string p = prefix;
    if (dotted.compare(0, p.size(), p) == 0) {
      std::string rest = dotted.substr(p.size());
      if (rest.find('.') == std::string::npos && dtype_from_storage_class(rest)) return true;
    }
  }
  return false;
}

// "torch.float" -> "torch.float32"; empty when not a dtype name.
std::string canonical_dtype(const std::string& dotted) {
  if (dotted.compare(0, 6, "torch.") != 0) return "";
  std::string rest = dotted.substr(6);
  if (rest.find('.') != std::string::npos) return "";
  auto d = dtype_from_name(rest);
  if (!d) return "";
  return "torch." + std::string(dtype_name(*d));
}

std::string describe(const Value* v) {
  if (!v) return "nothing";
  if (v->kind == Kind::kGlobal || v->kind == Kind::kObject) return v->s;
  return kind_name(v->kind);
}

ValuePtr copy_tensor(const Value& t) { return Value::make_tensor(t.tensor); }

ValuePtr make_parameter(const std::string& fn, const Value& args, const CallSite& site,
                        bool requires_grad) {
  const Value& data = *args.items[0];
  if (data.kind != Kind::kTensor || data.tensor.is_storage)
    bad_arg(fn, 0, "data", "a tensor", &data, site);
  ValuePtr p = copy_tensor(data);
  p->tensor.is_parameter = true;
  p->tensor.requires_grad = requires_grad;
  return p;
}

ValuePtr sequence_copy(const std::string& fn, const Value& args, size_t i, const CallSite& site) {
  const Value& v = *args.items[i];
  if (v.kind == Kind::kList || v.kind == Kind::kTuple) return Value::list(v.items);
  if (v.kind == Kind::kObject && (v.s == "builtins.set" || v.s == "builtins.frozenset") && v.args &&
      !v.args->items.empty() && v.args->items[0]->kind == Kind::kList)
    return Value::list(v.args->items[0]->items);
  bad_arg(fn, i, "iterable", "a list or tuple", &v, site);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// _codecs.encode(text, encoding) as Python 3 pickles bytes at protocol < 3.
std::string encode_text(const std::string& fn, const Value& args, const CallSite& site) {
  const std::string& text = str_arg(fn, args, 0, "text", site);
  std::string enc = args.items.size() > 1 ? lower(str_arg(fn, args, 1, "encoding", site)) : "utf-8";
  if (enc == "latin1" || enc == "latin-1" || enc == "iso-8859-1" || enc == "iso8859-1" ||
      enc == "l1") {
    auto b = utf8_to_latin1(text);
    if (!b)
      fail(Code::kCorrupt,
           fn + ": text has a code point above 255 for encoding '" + enc + "'" + at(site.offset));
    return *b;
  }
  if (enc == "utf-8" || enc == "utf8") return text;
  fail(Code::kUnsupported,
       fn + ": encoding '" + enc + "' is not supported (latin1 or utf-8)" + at(site.offset));
}

std::string bytes_from(const std::string& fn, const Value& args, const CallSite& site) {
  if (args.items.empty()) return "";
  const Value& v = *args.items[0];
  if (v.kind == Kind::kBytes) return v.s;
  if (v.kind == Kind::kStr) return encode_text(fn, args, site);
  if (v.kind == Kind::kList || v.kind == Kind::kTuple) {
    std::string out;
    for (const auto& x : v.items) {
      if (!x || x->kind != Kind::kInt || x->i < 0 || x->i > 255)
        bad_arg(fn, 0, "source", "a list of ints in 0..255", x.get(), site);
      out.push_back(static_cast<char>(x->i));
    }
    return out;
  }
  bad_arg(fn, 0, "source", "bytes, str or a list of ints", &v, site);
}

ValuePtr rebuild_from_type_v2(const std::string& fn, const Value& args, const CallSite& site) {
  expect_arity(fn, args, 4, 4, site);
  const Value& func = *args.items[0];
  const Value& type = *args.items[1];
  const Value& inner = *args.items[2];
  if (func.kind != Kind::kGlobal || !is_tensor_rebuild_function(func.s))
    bad_arg(fn, 0, "func", "a torch._utils tensor rebuild function", &func, site);
  if (type.kind != Kind::kGlobal) bad_arg(fn, 1, "new_type", "a class", &type, site);
  if (inner.kind != Kind::kTuple) bad_arg(fn, 2, "args", "a tuple", &inner, site);
  ValuePtr t = rebuild_tensor_call(func.s, inner, site);
  if (!t || t->kind != Kind::kTensor)
    fail(Code::kCorrupt, fn + ": " + func.s + " did not produce a tensor" + at(site.offset));
  // The state (Python attributes of a tensor subclass instance) has no place in the tree;
  // the tensor data does not depend on it, so it is dropped.
  if (type.s == "torch.Tensor") return t;
  if (type.s == "torch.nn.parameter.Parameter") {
    t->tensor.is_parameter = true;
    return t;
  }
  if (site.allow_objects && !is_allow_listed(type.s))
    return Value::object(type.s, Value::tuple({t}), args.items[3]);
  fail(Code::kCorrupt, fn + ": new_type '" + type.s + "' is not a tensor class" + at(site.offset));
}

ValuePtr ordered_dict(const std::string& fn, const Value& args, const CallSite& site) {
  expect_arity(fn, args, 0, 1, site);
  ValuePtr d = Value::dict(fn == "collections.OrderedDict");
  if (args.items.empty()) return d;
  const Value& src = *args.items[0];
  if (src.kind == Kind::kDict) {
    d->entries = src.entries;
    return d;
  }
  if (src.kind != Kind::kList && src.kind != Kind::kTuple)
    bad_arg(fn, 0, "items", "a list of pairs", &src, site);
  for (const auto& p : src.items) {
    if (!p || (p->kind != Kind::kTuple && p->kind != Kind::kList) || p->items.size() != 2)
      bad_arg(fn, 0, "items", "a list of (key, value) pairs", p.get(), site);
    d->entries.emplace_back(p->items[0], p->items[1]);
  }
  return d;
}

ValuePtr call_allow_listed(const std::string& fn, const Value& args, const CallSite& site) {
  if (is_numpy_global(fn)) return numpy_call(fn, args, site);  // pickle_numpy.h
  if (ValuePtr t = rebuild_tensor_call(fn, args, site)) return t;
  if (fn == "collections.OrderedDict") return ordered_dict(fn, args, site);
  if (fn == "collections.Counter") {
    expect_arity(fn, args, 0, 1, site);
    if (!args.items.empty() && args.items[0]->kind != Kind::kDict)
      bad_arg(fn, 0, "counts", "a dict", args.items[0].get(), site);
    return Value::object(fn, Value::tuple(args.items));
  }
  if (fn == "torch._tensor._rebuild_from_type_v2") return rebuild_from_type_v2(fn, args, site);
  if (fn == "torch.nn.parameter.Parameter") {
    expect_arity(fn, args, 1, 2, site);
    bool rg = args.items.size() > 1 ? bool_arg(fn, args, 1, "requires_grad", site) : true;
    return make_parameter(fn, args, site, rg);
  }
  if (fn == "torch.Size") {
    expect_arity(fn, args, 0, 1, site);
    if (args.items.empty()) return Value::tuple();
    int_seq_arg(fn, args, 0, "sizes", site);  // validates
    return Value::tuple(args.items[0]->items);
  }
  if (fn == "torch.device") {
    expect_arity(fn, args, 1, 2, site);
    str_arg(fn, args, 0, "type", site);
    if (args.items.size() > 1 && args.items[1]->kind != Kind::kNone)
      int_arg(fn, args, 1, "index", site);
    return Value::object(fn, Value::tuple(args.items));
  }
  if (fn == "torch.serialization._get_layout") {
    expect_arity(fn, args, 1, 1, site);
    const std::string& name = str_arg(fn, args, 0, "name", site);
    static const std::unordered_set<std::string> kLayouts = {
        "torch.strided",    "torch.sparse_coo", "torch.sparse_csr", "torch.sparse_csc",
        "torch.sparse_bsr", "torch.sparse_bsc", "torch._mkldnn",    "torch.jagged"};
    if (!kLayouts.count(name))
      fail(Code::kCorrupt, fn + ": unknown layout '" + name + "'" + at(site.offset));
    return Value::global(name);
  }
  if (fn == "builtins.set" || fn == "builtins.frozenset") {
    expect_arity(fn, args, 0, 1, site);
    ValuePtr items = args.items.empty() ? Value::list() : sequence_copy(fn, args, 0, site);
    return Value::object(fn, Value::tuple({items}));
  }
  if (fn == "builtins.complex") {
    expect_arity(fn, args, 0, 2, site);
    for (size_t i = 0; i < args.items.size(); ++i) {
      Kind k = args.items[i]->kind;
      if (k != Kind::kFloat && k != Kind::kInt && k != Kind::kBool && k != Kind::kBigInt)
        bad_arg(fn, i, i == 0 ? "real" : "imag", "a number", args.items[i].get(), site);
    }
    return Value::object(fn, Value::tuple(args.items));
  }
  if (fn == "_codecs.encode") {
    expect_arity(fn, args, 1, 3, site);
    return Value::bytes(encode_text(fn, args, site));
  }
  if (fn == "builtins.bytes") {
    expect_arity(fn, args, 0, 3, site);
    return Value::bytes(bytes_from(fn, args, site));
  }
  if (fn == "builtins.bytearray") {
    expect_arity(fn, args, 0, 3, site);
    return Value::object(fn, Value::tuple({Value::bytes(bytes_from(fn, args, site))}));
  }
  if (fn == "torch.jit._pickle.restore_type_tag") {
    expect_arity(fn, args, 1, 2, site);
    return args.items[0];
  }
  if (fn.compare(0, 24, "torch.jit._pickle.build_") == 0) {
    expect_arity(fn, args, 1, 1, site);
    if (args.items[0]->kind != Kind::kList)
      bad_arg(fn, 0, "items", "a list", args.items[0].get(), site);
    return args.items[0];
  }
  // Legacy tensor constructors stay opaque objects under allow_objects, as before they were
  // allow-listed as values.
  if (site.allow_objects && is_tensor_type_class(fn))
    return Value::object(fn, Value::tuple(args.items));
  refuse_tensor_constructor(fn, site);  // torch.Tensor, tensor types, storages: say why
  fail(Code::kCorrupt, "'" + fn + "' is not callable" + at(site.offset));
}

}  // namespace

std::string normalize_global_name(const std::string& module, const std::string& name) {
  for (const auto& m : kNameMapping)
    if (module == m.module && name == m.name) return std::string(m.new_module) + "." + m.new_name;
  for (const auto& m : kImportMapping)
    if (module == m.module) return std::string(m.new_module) + "." + name;
  return module + "." + name;
}

bool is_allow_listed(const std::string& dotted) {
  return callables().count(dotted) || plain_values().count(dotted) || is_storage_class(dotted) ||
         is_tensor_type_class(dotted) || !canonical_dtype(dotted).empty() ||
         is_numpy_global(dotted);
}

ValuePtr resolve_global(const std::string& module, const std::string& name, const CallSite& site) {
  std::string dotted = normalize_global_name(module, name);
  std::string dtype = canonical_dtype(dotted);
  if (!dtype.empty()) return Value::global(dtype);
  if (dotted == "torch.UntypedStorage" || dotted == "torch.TypedStorage")
    dotted = "torch.storage." + name;  // the same classes, exported from torch
  if (is_allow_listed(dotted) || site.allow_objects) return Value::global(dotted);
  if (const char* why = refused_torch_global_reason(dotted))
    fail(Code::kUnsupported,
         "refusing pickle global '" + dotted + "'" + at(site.offset) + ": " + why);
  fail(Code::kForbidden,
       "refusing pickle global '" + dotted + "'" + at(site.offset) +
           ": not in the allow-list (torch's weights-only set: tensor rebuild functions, "
           "storage classes, dtypes, OrderedDict, ...); pass allow_objects to inspect it as "
           "an opaque object");
}

ValuePtr reduce(const ValuePtr& callable, const ValuePtr& args, const CallSite& site) {
  if (!args || args->kind != Kind::kTuple)
    fail(Code::kCorrupt,
         "REDUCE arguments must be a tuple, got " + describe(args.get()) + at(site.offset));
  if (!callable || callable->kind != Kind::kGlobal)
    fail(Code::kCorrupt, "REDUCE on " + describe(callable.get()) +
                             ", expected a global function or class" + at(site.offset));
  const std::string& fn = callable->s;
  // What nearly every REDUCE of a state dict calls (both allow-listed): skip the lookups.
  if (fn == std::string_view("torch._utils._rebuild_tensor_v2"))
    return rebuild_tensor_call(fn, *args, site);
  if (fn == std::string_view("collections.OrderedDict")) return ordered_dict(fn, *args, site);
  if (!is_allow_listed(fn)) {
    if (!site.allow_objects)  // unreachable: GLOBAL refused it already
      fail(Code::kForbidden, "refusing to call '" + fn + "'" + at(site.offset));
    return Value::object(fn, args);
  }
  return call_allow_listed(fn, *args, site);
}

ValuePtr new_object(const ValuePtr& cls, const ValuePtr& args, const CallSite& site) {
  if (!args || args->kind != Kind::kTuple)
    fail(Code::kCorrupt,
         "NEWOBJ arguments must be a tuple, got " + describe(args.get()) + at(site.offset));
  if (!cls || cls->kind != Kind::kGlobal)
    fail(Code::kCorrupt,
         "NEWOBJ on " + describe(cls.get()) + ", expected a class" + at(site.offset));
  // cls.__new__(cls, *args) of the allow-listed value classes builds the same value as the
  // constructor call (their __init__ takes the same arguments), so share the implementation.
  static const std::unordered_set<std::string> kClasses = {"torch.nn.parameter.Parameter",
                                                           "collections.OrderedDict",
                                                           "collections.Counter",
                                                           "builtins.set",
                                                           "builtins.frozenset",
                                                           "builtins.complex",
                                                           "builtins.bytes",
                                                           "builtins.bytearray",
                                                           "torch.Size",
                                                           "torch.device"};
  if (kClasses.count(cls->s)) return call_allow_listed(cls->s, *args, site);
  if (!is_allow_listed(cls->s) && site.allow_objects) return Value::object(cls->s, args);
  if (site.allow_objects && is_tensor_type_class(cls->s)) return Value::object(cls->s, args);
  refuse_tensor_constructor(cls->s, site);
  fail(Code::kCorrupt, "NEWOBJ on '" + cls->s + "', which is not a class" + at(site.offset));
}

void build(const ValuePtr& obj, const ValuePtr& state, const CallSite& site) {
  if (numpy_build(obj, state, site)) return;  // numpy dtypes and arrays (pickle_numpy.h)
  switch (obj->kind) {
    case Kind::kDict: {
      if (!obj->ordered) fail(Code::kCorrupt, "BUILD on a plain dict" + at(site.offset));
      // OrderedDict.__setstate__ is object's: __dict__.update(state), where state may be
      // (dict, slotstate). This is how a state_dict's _metadata arrives.
      std::vector<ValuePtr> parts;
      if (state->kind == Kind::kTuple && state->items.size() == 2) {
        parts = state->items;
      } else {
        parts = {state};
      }
      for (const auto& p : parts) {
        if (p->kind == Kind::kNone) continue;
        if (p->kind != Kind::kDict)
          fail(Code::kCorrupt, "BUILD state for an OrderedDict must be a dict, got " +
                                   describe(p.get()) + at(site.offset));
        if (!obj->attrs) {
          obj->attrs = p;
          continue;
        }
        ValuePtr merged = Value::dict();
        merged->entries = obj->attrs->entries;
        for (const auto& e : p->entries) {
          auto it =
              std::find_if(merged->entries.begin(), merged->entries.end(), [&](const auto& m) {
                return m.first->kind == Kind::kStr && e.first->kind == Kind::kStr &&
                       m.first->s == e.first->s;
              });
          if (it != merged->entries.end())
            it->second = e.second;
          else
            merged->entries.push_back(e);
        }
        obj->attrs = merged;
      }
      return;
    }
    case Kind::kTensor:
      // Tensors with Python attributes (2.x) or the ancient set_() state: the data is fully
      // described by the rebuild call, so the state is dropped.
      if (state->kind == Kind::kDict || state->kind == Kind::kTuple || state->kind == Kind::kNone)
        return;
      fail(Code::kCorrupt,
           "BUILD on a tensor with a " + describe(state.get()) + " state" + at(site.offset));
    case Kind::kObject:
      obj->state = state;
      return;
    default:
      fail(Code::kCorrupt, "BUILD on " + describe(obj.get()) + at(site.offset));
  }
}

void expect_arity(const std::string& fn, const Value& args, size_t min, size_t max,
                  const CallSite& site) {
  size_t n = args.items.size();
  if (n < min || n > max) {
    std::string want =
        min == max ? std::to_string(min) : std::to_string(min) + ".." + std::to_string(max);
    fail(Code::kCorrupt,
         fn + " takes " + want + " arguments, got " + std::to_string(n) + at(site.offset));
  }
}

void bad_arg(const std::string& fn, size_t i, const char* what, const char* expected,
             const Value* got, const CallSite& site) {
  fail(Code::kCorrupt, fn + " argument " + std::to_string(i + 1) + " (" + what + ") must be " +
                           expected + ", got " + describe(got) + at(site.offset));
}

int64_t int_arg(const std::string& fn, const Value& args, size_t i, const char* what,
                const CallSite& site) {
  const Value* v = i < args.items.size() ? args.items[i].get() : nullptr;
  if (!v || v->kind != Kind::kInt) bad_arg(fn, i, what, "an int", v, site);
  return v->i;
}

bool bool_arg(const std::string& fn, const Value& args, size_t i, const char* what,
              const CallSite& site) {
  const Value* v = i < args.items.size() ? args.items[i].get() : nullptr;
  if (v && v->kind == Kind::kBool) return v->b;
  if (v && v->kind == Kind::kInt && (v->i == 0 || v->i == 1)) return v->i == 1;
  bad_arg(fn, i, what, "a bool", v, site);
}

const std::string& str_arg(const std::string& fn, const Value& args, size_t i, const char* what,
                           const CallSite& site) {
  const Value* v = i < args.items.size() ? args.items[i].get() : nullptr;
  if (!v || v->kind != Kind::kStr) bad_arg(fn, i, what, "a str", v, site);
  return v->s;
}

std::vector<int64_t> int_seq_arg(const std::string& fn, const Value& args, size_t i,
                                 const char* what, const CallSite& site) {
  const Value* v = i < args.items.size() ? args.items[i].get() : nullptr;
  if (!v || (v->kind != Kind::kTuple && v->kind != Kind::kList))
    bad_arg(fn, i, what, "a tuple of ints", v, site);
  std::vector<int64_t> out;
  out.reserve(v->items.size());
  for (const auto& x : v->items) {
    if (!x || x->kind != Kind::kInt) bad_arg(fn, i, what, "a tuple of ints", x.get(), site);
    out.push_back(x->i);
  }
  return out;
}

}  // namespace pickle_detail
}  // namespace ckptio
