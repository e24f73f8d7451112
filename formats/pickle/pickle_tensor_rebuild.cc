// torch._utils' tensor rebuild functions: turn (storage, offset, size, stride, ...) into a
// kTensor view of the storage returned by the persistent_load hook, checking the view
// against the storage's extent before anything downstream can trust it.
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

#include "formats/dtype.h"
#include "formats/pickle/pickle_error.h"
#include "formats/pickle/pickle_globals.h"

namespace ckptio {
namespace pickle_detail {
namespace {

// string_view: comparing a name with these checks its length first (once per tensor).
constexpr std::string_view kV1 = "torch._utils._rebuild_tensor";
constexpr std::string_view kV2 = "torch._utils._rebuild_tensor_v2";
constexpr std::string_view kV3 = "torch._utils._rebuild_tensor_v3";
constexpr std::string_view kParam = "torch._utils._rebuild_parameter";
constexpr std::string_view kParamState = "torch._utils._rebuild_parameter_with_state";

const std::unordered_set<std::string>& unsupported() {
  static const std::unordered_set<std::string> k = {
      "torch._utils._rebuild_qtensor",
      "torch._utils._rebuild_sparse_tensor",
      "torch._utils._rebuild_sparse_csr_tensor",
      "torch._utils._rebuild_meta_tensor_no_storage",
      "torch._utils._rebuild_nested_tensor",
      "torch._utils._rebuild_wrapper_subclass",
      "torch._utils._rebuild_device_tensor_from_numpy",
      "torch._utils._rebuild_device_tensor_from_cpu_tensor",
  };
  return k;
}

// The text of a str argument, or "?" (only for messages).
std::string text_arg(const Value& args, size_t i) {
  if (i < args.items.size() && args.items[i]->kind == Kind::kStr) return args.items[i]->s;
  if (i < args.items.size() && args.items[i]->kind == Kind::kGlobal) return args.items[i]->s;
  return "?";
}

// Each says what torch would build and why ckptio's tree cannot hold it: a TensorMeta is a
// dense strided view of one storage record, nothing more.
[[noreturn]] void unsupported_tensor(const std::string& fn, const Value& args,
                                     const CallSite& site) {
  std::string what = "these tensors", why;
  if (fn == "torch._utils._rebuild_qtensor") {
    what = "quantized tensors";
    why = "their scales and zero points have no place in a ckptio tensor";
  } else if (fn == "torch._utils._rebuild_sparse_tensor") {
    what = "sparse tensors (layout " + text_arg(args, 0) + ")";
    why = "ckptio's tensors are dense views of one storage";
  } else if (fn == "torch._utils._rebuild_sparse_csr_tensor") {
    what = "sparse tensors (layout torch.sparse_csr)";
    why = "ckptio's tensors are dense views of one storage";
  } else if (fn == "torch._utils._rebuild_meta_tensor_no_storage") {
    what = "meta tensors (saved without storage)";
    why = "they have shape and dtype but no data";
  } else if (fn == "torch._utils._rebuild_nested_tensor") {
    what = "nested tensors";
    why = "ckptio's tensors are dense views of one storage, not lists of them";
  } else if (fn == "torch._utils._rebuild_wrapper_subclass") {
    what = "wrapper tensor subclasses (class " + text_arg(args, 0) + ")";
    why = "the subclass keeps its data outside the tensor";
  } else if (fn.find("_rebuild_device_tensor_from_") != std::string::npos) {
    what = "tensors of storage-less devices (XLA, MTIA, ...)";
    why = "the data is a CPU copy, and a ckptio tensor would lose the device '" +
          text_arg(args, 2) + "' it was saved for";
  }
  fail(Code::kUnsupported, what + " are not supported yet (" + fn + "): " + why + at(site.offset));
}

ValuePtr rebuild_tensor(const std::string& fn, const Value& args, const CallSite& site) {
  bool v3 = fn == kV3, v1 = fn == kV1;
  if (v1)
    expect_arity(fn, args, 4, 4, site);
  else if (v3)
    expect_arity(fn, args, 7, 8, site);
  else
    expect_arity(fn, args, 6, 7, site);

  const Value& storage = *args.items[0];
  if (storage.kind != Kind::kTensor || !storage.tensor.is_storage)
    bad_arg(fn, 0, "storage", "a storage (persistent id)", &storage, site);
  const TensorMeta& st = storage.tensor;

  TensorMeta t;
  t.dtype = st.dtype;
  int64_t offset = int_arg(fn, args, 1, "storage_offset", site);
  t.shape = int_seq_arg(fn, args, 2, "size", site);
  t.strides = int_seq_arg(fn, args, 3, "stride", site);
  size_t meta_index = 6;
  if (!v1) {
    t.requires_grad = bool_arg(fn, args, 4, "requires_grad", site);
    if (args.items[5]->kind != Kind::kDict)
      bad_arg(fn, 5, "backward_hooks", "an OrderedDict", args.items[5].get(), site);
  }
  if (v3) {
    const Value& d = *args.items[6];
    std::optional<DType> dt;
    if (d.kind == Kind::kGlobal && d.s.compare(0, 6, "torch.") == 0)
      dt = dtype_from_name(d.s.substr(6));
    if (!dt) bad_arg(fn, 6, "dtype", "a torch dtype", &d, site);
    t.dtype = *dt;
    meta_index = 7;
  }
  if (!v1 && args.items.size() > meta_index) {
    const Value& m = *args.items[meta_index];
    if (m.kind == Kind::kDict) {
      // torch._utils.get_tensor_metadata: the conj / neg math bits.
      for (const auto& [k, v] : m.entries) {
        if (k->kind != Kind::kStr) continue;
        if (k->s != "conj" && k->s != "neg") continue;
        if (v->kind != Kind::kBool)
          bad_arg(fn, meta_index, "metadata", "a dict of bools", v.get(), site);
        (k->s == "conj" ? t.conj : t.neg) = v->b;
      }
    } else if (m.kind != Kind::kNone) {
      bad_arg(fn, meta_index, "metadata", "a dict", &m, site);
    }
  }

  // A storage value may itself be a window into a root storage (legacy view metadata); its
  // offset is in storage elements, the tensor's in tensor elements. Messages are built only
  // on failure: this runs once per tensor.
  auto where = [&] { return fn + at(site.offset); };
  int sst = dtype_size(st.dtype), tsz = dtype_size(t.dtype);
  if (st.storage_offset < 0 || st.shape.size() != 1 || st.shape[0] < 0)
    fail(Code::kCorrupt, where() + ": malformed storage value");
  uint64_t base_bytes, extent_bytes;
  if (__builtin_mul_overflow(static_cast<uint64_t>(st.storage_offset), static_cast<uint64_t>(sst),
                             &base_bytes) ||
      __builtin_mul_overflow(static_cast<uint64_t>(st.storage_offset + st.shape[0]),
                             static_cast<uint64_t>(sst), &extent_bytes))
    fail(Code::kCorrupt, where() + ": storage extent overflows 64 bits");
  if (base_bytes % static_cast<uint64_t>(tsz) != 0)
    fail(Code::kCorrupt, where() + ": storage view offset is not a multiple of the " +
                             std::string(dtype_name(t.dtype)) + " element size");
  if (offset < 0)
    fail(Code::kCorrupt, where() + ": negative storage offset " + std::to_string(offset));
  int64_t base = static_cast<int64_t>(base_bytes / static_cast<uint64_t>(tsz));
  if (__builtin_add_overflow(base, offset, &t.storage_offset))
    fail(Code::kCorrupt, where() + ": storage offset overflows 64 bits");

  if (!tensor_view_fits(t, extent_bytes)) {
    StorageInfo extent;
    extent.key = "#" + std::to_string(st.storage);
    extent.dtype = st.dtype;
    extent.nbytes = extent_bytes;
    TensorMeta check = t;
    check.storage = 0;
    Status s = check_tensor_view(check, {extent}, where());
    if (!s.ok()) fail(s.code(), s.message());
  }
  t.storage = st.storage;
  return Value::make_tensor(std::move(t));
}

ValuePtr rebuild_parameter(const std::string& fn, const Value& args, const CallSite& site) {
  bool with_state = fn == kParamState;
  expect_arity(fn, args, with_state ? 4 : 3, with_state ? 4 : 3, site);
  const Value& data = *args.items[0];
  if (data.kind != Kind::kTensor || data.tensor.is_storage)
    bad_arg(fn, 0, "data", "a tensor", &data, site);
  bool rg = bool_arg(fn, args, 1, "requires_grad", site);
  if (args.items[2]->kind != Kind::kDict)
    bad_arg(fn, 2, "backward_hooks", "an OrderedDict", args.items[2].get(), site);
  // with_state: Python attributes of a Parameter (subclass); no place in the tree, and the
  // tensor data does not depend on them.
  ValuePtr p = Value::make_tensor(data.tensor);
  p->tensor.is_parameter = true;
  p->tensor.requires_grad = rg;
  return p;
}

}  // namespace

bool is_tensor_rebuild_function(const std::string& name) {
  return name == kV1 || name == kV2 || name == kV3 || name == kParam || name == kParamState ||
         unsupported().count(name);
}

ValuePtr rebuild_tensor_call(const std::string& fn, const Value& args, const CallSite& site) {
  if (fn == kV1 || fn == kV2 || fn == kV3) return rebuild_tensor(fn, args, site);
  if (fn == kParam || fn == kParamState) return rebuild_parameter(fn, args, site);
  if (unsupported().count(fn)) unsupported_tensor(fn, args, site);
  return nullptr;
}

bool is_tensor_type_class(const std::string& dotted) {
  // torch._tensor_classes: the legacy per-dtype tensor types, dense (with Bool) and sparse,
  // for the CPU and for CUDA. The classes are values like dtypes; calling one is refused.
  static const std::unordered_set<std::string> k = [] {
    std::unordered_set<std::string> s;
    for (const char* module : {"torch.", "torch.cuda.", "torch.sparse.", "torch.cuda.sparse."})
      for (const char* type :
           {"Double", "Float", "Half", "BFloat16", "Byte", "Char", "Short", "Int", "Long", "Bool"})
        if (std::string_view(type) != "Bool" ||
            std::string_view(module).find("sparse") == std::string_view::npos)
          s.insert(std::string(module) + type + "Tensor");
    return s;
  }();
  return k.count(dotted) > 0;
}

void refuse_tensor_constructor(const std::string& fn, const CallSite& site) {
  const char* what = nullptr;
  if (fn == "torch.Tensor")
    what =
        "torch.Tensor(...) and Tensor.__new__ with a set_() state (the legacy unpickling "
        "path) build a tensor without a storage record";
  else if (is_tensor_type_class(fn))
    what =
        "a legacy tensor constructor builds a tensor from Python values or sizes, not from "
        "a storage record";
  else if (fn.find("Storage") != std::string::npos)
    what =
        "a storage constructor builds a storage from Python values or a size, not from a "
        "storage record";
  if (!what) return;
  fail(Code::kUnsupported, "calling '" + fn + "' is not supported: " + what + at(site.offset));
}

const char* refused_torch_global_reason(const std::string& dotted) {
  // torch registers these with add_safe_globals when it is imported, so torch.load accepts
  // them by default; ckptio has no representation for what they build.
  auto starts = [&](std::string_view prefix) {
    return dotted.compare(0, prefix.size(), prefix) == 0;
  };
  if (starts("torch.nested._internal.nested_tensor.") ||
      dotted == "torch._dynamo.decorators._DimRange")
    return "nested jagged tensors (torch.jagged layout) are not supported: their values and "
           "offsets are separate tensors under a Python wrapper, and ckptio's tensors are "
           "dense views of one storage";
  if (starts("torch.distributed."))
    return "distributed tensors and device meshes (DTensor, DeviceMesh, placements) are not "
           "supported: they describe shards across processes, not data in this file";
  return nullptr;
}

}  // namespace pickle_detail
}  // namespace ckptio
