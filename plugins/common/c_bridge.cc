#include "plugins/common/c_bridge.h"

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "ckptio/plugin.hpp"

namespace ckptio::plugin {

// The ABI's dtype codes are formats/dtype.h's DType values, so that a code crosses the
// boundary as a plain cast (here and in the host's tree builder).
#define CKPTIO_PIN_DTYPE(ours, abi) static_assert(int32_t(DType::ours) == abi, #ours)
CKPTIO_PIN_DTYPE(kUInt8, CKPTIO_DTYPE_UINT8);
CKPTIO_PIN_DTYPE(kInt8, CKPTIO_DTYPE_INT8);
CKPTIO_PIN_DTYPE(kInt16, CKPTIO_DTYPE_INT16);
CKPTIO_PIN_DTYPE(kInt32, CKPTIO_DTYPE_INT32);
CKPTIO_PIN_DTYPE(kInt64, CKPTIO_DTYPE_INT64);
CKPTIO_PIN_DTYPE(kFloat16, CKPTIO_DTYPE_FLOAT16);
CKPTIO_PIN_DTYPE(kFloat32, CKPTIO_DTYPE_FLOAT32);
CKPTIO_PIN_DTYPE(kFloat64, CKPTIO_DTYPE_FLOAT64);
CKPTIO_PIN_DTYPE(kComplex32, CKPTIO_DTYPE_COMPLEX32);
CKPTIO_PIN_DTYPE(kComplex64, CKPTIO_DTYPE_COMPLEX64);
CKPTIO_PIN_DTYPE(kComplex128, CKPTIO_DTYPE_COMPLEX128);
CKPTIO_PIN_DTYPE(kBool, CKPTIO_DTYPE_BOOL);
CKPTIO_PIN_DTYPE(kQInt8, CKPTIO_DTYPE_QINT8);
CKPTIO_PIN_DTYPE(kQUInt8, CKPTIO_DTYPE_QUINT8);
CKPTIO_PIN_DTYPE(kQInt32, CKPTIO_DTYPE_QINT32);
CKPTIO_PIN_DTYPE(kBFloat16, CKPTIO_DTYPE_BFLOAT16);
CKPTIO_PIN_DTYPE(kQUInt4x2, CKPTIO_DTYPE_QUINT4X2);
CKPTIO_PIN_DTYPE(kQUInt2x4, CKPTIO_DTYPE_QUINT2X4);
CKPTIO_PIN_DTYPE(kBits1x8, CKPTIO_DTYPE_BITS1X8);
CKPTIO_PIN_DTYPE(kBits2x4, CKPTIO_DTYPE_BITS2X4);
CKPTIO_PIN_DTYPE(kBits4x2, CKPTIO_DTYPE_BITS4X2);
CKPTIO_PIN_DTYPE(kBits8, CKPTIO_DTYPE_BITS8);
CKPTIO_PIN_DTYPE(kBits16, CKPTIO_DTYPE_BITS16);
CKPTIO_PIN_DTYPE(kFloat8_e5m2, CKPTIO_DTYPE_FLOAT8_E5M2);
CKPTIO_PIN_DTYPE(kFloat8_e4m3fn, CKPTIO_DTYPE_FLOAT8_E4M3FN);
CKPTIO_PIN_DTYPE(kFloat8_e5m2fnuz, CKPTIO_DTYPE_FLOAT8_E5M2FNUZ);
CKPTIO_PIN_DTYPE(kFloat8_e4m3fnuz, CKPTIO_DTYPE_FLOAT8_E4M3FNUZ);
CKPTIO_PIN_DTYPE(kUInt16, CKPTIO_DTYPE_UINT16);
CKPTIO_PIN_DTYPE(kUInt32, CKPTIO_DTYPE_UINT32);
CKPTIO_PIN_DTYPE(kUInt64, CKPTIO_DTYPE_UINT64);
CKPTIO_PIN_DTYPE(kUInt1, CKPTIO_DTYPE_UINT1);
CKPTIO_PIN_DTYPE(kUInt2, CKPTIO_DTYPE_UINT2);
CKPTIO_PIN_DTYPE(kUInt3, CKPTIO_DTYPE_UINT3);
CKPTIO_PIN_DTYPE(kUInt4, CKPTIO_DTYPE_UINT4);
CKPTIO_PIN_DTYPE(kUInt5, CKPTIO_DTYPE_UINT5);
CKPTIO_PIN_DTYPE(kUInt6, CKPTIO_DTYPE_UINT6);
CKPTIO_PIN_DTYPE(kUInt7, CKPTIO_DTYPE_UINT7);
CKPTIO_PIN_DTYPE(kInt1, CKPTIO_DTYPE_INT1);
CKPTIO_PIN_DTYPE(kInt2, CKPTIO_DTYPE_INT2);
CKPTIO_PIN_DTYPE(kInt3, CKPTIO_DTYPE_INT3);
CKPTIO_PIN_DTYPE(kInt4, CKPTIO_DTYPE_INT4);
CKPTIO_PIN_DTYPE(kInt5, CKPTIO_DTYPE_INT5);
CKPTIO_PIN_DTYPE(kInt6, CKPTIO_DTYPE_INT6);
CKPTIO_PIN_DTYPE(kInt7, CKPTIO_DTYPE_INT7);
CKPTIO_PIN_DTYPE(kFloat8_e8m0fnu, CKPTIO_DTYPE_FLOAT8_E8M0FNU);
CKPTIO_PIN_DTYPE(kFloat4_e2m1fn_x2, CKPTIO_DTYPE_FLOAT4_E2M1FN_X2);
static_assert(kMaxDTypeCode == CKPTIO_DTYPE_FLOAT4_E2M1FN_X2, "a dtype without an ABI code");
#undef CKPTIO_PIN_DTYPE

Status from_c(const ckptio_host_api* host, ckptio_status st) {
  if (!st) return Status::Ok();
  Status out(static_cast<Code>(host->status_code(st)), host->status_message(st));
  host->release_status(st);
  return out;
}

ckptio_status to_c(const ckptio_host_api* host, const Status& st) {
  if (st.ok()) return nullptr;
  return host->make_status(static_cast<int32_t>(st.code()), st.message().c_str());
}

Status CSource::read_at(uint64_t offset, void* dst, uint64_t n) const {
  if (offset > src_->size || n > src_->size - offset)
    return Status(Code::kCorrupt, name_ + ": truncated: wanted " + std::to_string(n) +
                                      " bytes at offset " + std::to_string(offset) +
                                      ", file has " + std::to_string(src_->size));
  if (src_->data) {
    if (n) std::memcpy(dst, src_->data + offset, n);
    return Status::Ok();
  }
  return from_c(host_, src_->read_at(src_->ctx, offset, dst, n));
}

void send_verify_report(const ckptio_verify_report* report,
                        const std::vector<std::string>& problems, uint64_t checksums) {
  if (!report || !CKPTIO_HAS_FIELD(report, ckptio_verify_report, checksums)) return;
  for (const std::string& p : problems)
    if (report->problem) report->problem(report->ctx, p.c_str());
  if (report->checksums) report->checksums(report->ctx, checksums);
}

// option_infos.h's kDecodedReadOptions states these defaults.
static_assert(PickleLimits{}.max_depth == 1000 && PickleLimits{}.max_memo == 4194304 &&
              PickleLimits{}.max_string == 2147483648ull);

PickleLimits limits_from_options(const ckptio_options* options) {
  PickleLimits l;
  l.max_depth = sdk::option_uint(options, "max_depth", l.max_depth);
  l.max_memo = sdk::option_uint(options, "max_memo", l.max_memo);
  l.max_string = sdk::option_uint(options, "max_string", l.max_string);
  return l;
}

namespace {

class Emitter {
 public:
  Emitter(const ckptio_host_api* host, const ckptio_builder* b) : host_(host), b_(b) {}

  // Counts how often each node is reached so that only shared nodes get ids. A node owned by
  // one pointer can be reached only through it, once: it is not counted, and most nodes of
  // a state dict (keys, tensors) are such nodes.
  void count(const ValuePtr& v) {
    std::vector<const ValuePtr*> stack;
    auto push = [&](const ValuePtr& c) {
      if (c) stack.push_back(&c);
    };
    push(v);
    while (!stack.empty()) {
      const ValuePtr& p = *stack.back();
      stack.pop_back();
      if (p.use_count() > 1 && ++refs_[p.get()] > 1) continue;
      const Value* n = p.get();
      for (const auto& c : n->items) push(c);
      for (const auto& [k, val] : n->entries) {
        push(k);
        push(val);
      }
      push(n->attrs);
      push(n->args);
      push(n->state);
    }
  }

  Status emit(const ValuePtr& v, size_t depth) {
    if (depth > kMaxTreeDepth)
      return Status(Code::kLimit, "value tree nested deeper than " + std::to_string(kMaxTreeDepth));
    const Value& n = *v;
    auto shared = v.use_count() > 1 ? refs_.find(&n) : refs_.end();
    if (shared != refs_.end() && shared->second > 1) {
      auto id = ids_.find(&n);
      if (id != ids_.end()) return c(b_->ref(b_->ctx, id->second));
      uint64_t new_id = ids_.size() + 1;
      ids_[&n] = new_id;
      CKPTIO_RETURN_IF_ERROR(c(b_->share(b_->ctx, new_id)));
    }
    switch (n.kind) {
      case Kind::kNone: return scalar(CKPTIO_NONE, 0, 0, "");
      case Kind::kBool: return scalar(CKPTIO_BOOL, n.b, 0, "");
      case Kind::kInt: return scalar(CKPTIO_INT, n.i, 0, "");
      case Kind::kBigInt: return scalar(CKPTIO_BIGINT, 0, 0, n.s);
      case Kind::kFloat: return scalar(CKPTIO_FLOAT, 0, n.f, "");
      case Kind::kStr: return scalar(CKPTIO_STR, 0, 0, n.s);
      case Kind::kBytes: return scalar(CKPTIO_BYTES, 0, 0, n.s);
      case Kind::kGlobal: return scalar(CKPTIO_GLOBAL, 0, 0, n.s);
      case Kind::kList:
      case Kind::kTuple: {
        int32_t kind = n.kind == Kind::kList ? CKPTIO_LIST : CKPTIO_TUPLE;
        CKPTIO_RETURN_IF_ERROR(c(b_->begin(b_->ctx, kind, n.items.size(), nullptr, 0, 0)));
        for (const auto& item : n.items) CKPTIO_RETURN_IF_ERROR(emit(item, depth + 1));
        return c(b_->end(b_->ctx));
      }
      case Kind::kDict: {
        uint32_t flags = (n.ordered ? CKPTIO_DICT_ORDERED : 0) |
                         (n.attrs ? CKPTIO_DICT_HAS_ATTRS : 0);
        CKPTIO_RETURN_IF_ERROR(
            c(b_->begin(b_->ctx, CKPTIO_DICT, n.entries.size(), nullptr, 0, flags)));
        for (const auto& [k, val] : n.entries) {
          CKPTIO_RETURN_IF_ERROR(emit(k, depth + 1));
          CKPTIO_RETURN_IF_ERROR(emit(val, depth + 1));
        }
        if (n.attrs) CKPTIO_RETURN_IF_ERROR(emit(n.attrs, depth + 1));
        return c(b_->end(b_->ctx));
      }
      case Kind::kObject: {
        uint32_t flags = (n.args ? CKPTIO_OBJECT_HAS_ARGS : 0) |
                         (n.state ? CKPTIO_OBJECT_HAS_STATE : 0);
        CKPTIO_RETURN_IF_ERROR(
            c(b_->begin(b_->ctx, CKPTIO_OBJECT, 0, n.s.data(), n.s.size(), flags)));
        if (n.args) CKPTIO_RETURN_IF_ERROR(emit(n.args, depth + 1));
        if (n.state) CKPTIO_RETURN_IF_ERROR(emit(n.state, depth + 1));
        return c(b_->end(b_->ctx));
      }
      case Kind::kTensor: {
        const TensorMeta& t = n.tensor;
        ckptio_tensor_desc d{};
        d.struct_size = sizeof d;
        d.dtype = static_cast<int32_t>(t.dtype);
        d.ndim = static_cast<uint32_t>(t.shape.size());
        d.storage = t.storage;
        d.shape = t.shape.data();
        d.strides = t.strides.data();
        d.storage_offset = t.storage_offset;
        d.flags = (t.requires_grad ? CKPTIO_TENSOR_REQUIRES_GRAD : 0) |
                  (t.is_parameter ? CKPTIO_TENSOR_PARAMETER : 0) |
                  (t.is_storage ? CKPTIO_TENSOR_STORAGE : 0) | (t.conj ? CKPTIO_TENSOR_CONJ : 0) |
                  (t.neg ? CKPTIO_TENSOR_NEG : 0);
        return c(b_->tensor(b_->ctx, &d));
      }
    }
    return Status(Code::kInternal, "unknown value kind");
  }

 private:
  Status c(ckptio_status st) { return from_c(host_, st); }
  Status scalar(int32_t kind, int64_t i, double f, const std::string& text) {
    return c(b_->scalar(b_->ctx, kind, i, f, text.data(), text.size()));
  }

  const ckptio_host_api* host_;
  const ckptio_builder* b_;
  std::unordered_map<const Value*, uint32_t> refs_;
  std::unordered_map<const Value*, uint64_t> ids_;
};

}  // namespace

Status emit_tree(const ckptio_host_api* host, const DecodedFile& file,
                 const ckptio_builder* builder) {
  for (size_t i = 0; i < file.tree.storages.size(); ++i) {
    const StorageInfo& s = file.tree.storages[i];
    const StorageExtent& e = file.extents[i];
    ckptio_storage_desc d{};
    d.struct_size = sizeof d;
    d.dtype = static_cast<int32_t>(s.dtype);
    d.key = s.key.c_str();
    d.device = s.device.c_str();
    d.nbytes = s.nbytes;
    d.file_offset = e.plain ? e.offset : CKPTIO_NOT_PLAIN;
    d.member = e.member;
    CKPTIO_RETURN_IF_ERROR(from_c(host, builder->add_storage(builder->ctx, &d)));
  }
  Emitter emitter(host, builder);
  emitter.count(file.tree.root);
  return emitter.emit(file.tree.root, 0);
}

namespace {

class Importer {
 public:
  explicit Importer(const ckptio_tree* t) : t_(t) {}

  Result<ValuePtr> node(ckptio_node n, size_t depth) {
    if (depth > kMaxTreeDepth)
      return Status(Code::kLimit, "value tree nested deeper than " + std::to_string(kMaxTreeDepth));
    auto it = memo_.find(n);
    if (it != memo_.end()) return it->second;
    void* ctx = t_->ctx;
    int32_t kind = t_->kind(ctx, n);
    ValuePtr v;
    auto text = [&] {
      size_t len = 0;
      const char* p = t_->text(ctx, n, &len);
      return std::string(p ? p : "", p ? len : 0);
    };
    switch (kind) {
      case CKPTIO_NONE: v = Value::none(); break;
      case CKPTIO_BOOL: v = Value::boolean(t_->flags(ctx, n) != 0); break;
      case CKPTIO_INT: v = Value::integer(t_->int_value(ctx, n)); break;
      case CKPTIO_BIGINT: v = Value::big_integer(text()); break;
      case CKPTIO_FLOAT: v = Value::floating(t_->float_value(ctx, n)); break;
      case CKPTIO_STR: v = Value::str(text()); break;
      case CKPTIO_BYTES: v = Value::bytes(text()); break;
      case CKPTIO_GLOBAL: v = Value::global(text()); break;
      case CKPTIO_LIST:
      case CKPTIO_TUPLE: {
        v = kind == CKPTIO_LIST ? Value::list() : Value::tuple();
        size_t count = t_->child_count(ctx, n);
        v->items.reserve(count);
        for (size_t i = 0; i < count; ++i) {
          CKPTIO_ASSIGN_OR_RETURN(ValuePtr c, node(t_->child(ctx, n, i), depth + 1));
          v->items.push_back(std::move(c));
        }
        break;
      }
      case CKPTIO_DICT: {
        uint32_t flags = t_->flags(ctx, n);
        v = Value::dict(flags & CKPTIO_DICT_ORDERED);
        size_t count = t_->child_count(ctx, n);
        size_t pairs = (flags & CKPTIO_DICT_HAS_ATTRS) ? (count - 1) / 2 : count / 2;
        v->entries.reserve(pairs);
        for (size_t i = 0; i < pairs; ++i) {
          CKPTIO_ASSIGN_OR_RETURN(ValuePtr k, node(t_->child(ctx, n, 2 * i), depth + 1));
          CKPTIO_ASSIGN_OR_RETURN(ValuePtr val, node(t_->child(ctx, n, 2 * i + 1), depth + 1));
          v->entries.emplace_back(std::move(k), std::move(val));
        }
        if (flags & CKPTIO_DICT_HAS_ATTRS) {
          CKPTIO_ASSIGN_OR_RETURN(v->attrs, node(t_->child(ctx, n, 2 * pairs), depth + 1));
        }
        break;
      }
      case CKPTIO_OBJECT: {
        uint32_t flags = t_->flags(ctx, n);
        v = Value::object(text(), nullptr);
        size_t next = 0;
        if (flags & CKPTIO_OBJECT_HAS_ARGS) {
          CKPTIO_ASSIGN_OR_RETURN(v->args, node(t_->child(ctx, n, next++), depth + 1));
        }
        if (flags & CKPTIO_OBJECT_HAS_STATE) {
          CKPTIO_ASSIGN_OR_RETURN(v->state, node(t_->child(ctx, n, next), depth + 1));
        }
        break;
      }
      case CKPTIO_TENSOR: {
        ckptio_tensor_desc d{};
        d.struct_size = sizeof d;
        t_->tensor(ctx, n, &d);
        auto dtype = dtype_from_code(d.dtype);
        if (!dtype) return Status(Code::kInvalidArgument, "tensor with unknown dtype code " +
                                                              std::to_string(d.dtype));
        TensorMeta m;
        m.dtype = *dtype;
        m.shape.assign(d.shape, d.shape + d.ndim);
        m.strides.assign(d.strides, d.strides + d.ndim);
        m.storage_offset = d.storage_offset;
        m.storage = d.storage;
        m.requires_grad = d.flags & CKPTIO_TENSOR_REQUIRES_GRAD;
        m.is_parameter = d.flags & CKPTIO_TENSOR_PARAMETER;
        m.is_storage = d.flags & CKPTIO_TENSOR_STORAGE;
        m.conj = d.flags & CKPTIO_TENSOR_CONJ;
        m.neg = d.flags & CKPTIO_TENSOR_NEG;
        v = Value::make_tensor(std::move(m));
        break;
      }
      default:
        return Status(Code::kInvalidArgument, "unknown value kind " + std::to_string(kind));
    }
    memo_[n] = v;
    return v;
  }

 private:
  const ckptio_tree* t_;
  std::unordered_map<ckptio_node, ValuePtr> memo_;
};

}  // namespace

Result<Tree> import_tree(const ckptio_tree* view) {
  Tree tree;
  tree.storages.resize(view->storage_count);
  for (uint32_t i = 0; i < view->storage_count; ++i) {
    ckptio_storage_desc d{};
    d.struct_size = sizeof d;
    view->storage(view->ctx, i, &d);
    auto dtype = dtype_from_code(d.dtype);
    if (!dtype)
      return Status(Code::kInvalidArgument, "storage with unknown dtype code " +
                                                std::to_string(d.dtype));
    tree.storages[i] = StorageInfo{d.key ? d.key : std::to_string(i), *dtype, d.nbytes,
                                   d.device ? d.device : "cpu"};
  }
  Importer importer(view);
  CKPTIO_ASSIGN_OR_RETURN(tree.root, importer.node(view->root, 0));
  std::string where;
  Status bad;
  for_each_tensor(tree.root, [&](const ValuePtr& t, const std::string& path) {
    if (bad.ok() && !tensor_view_fits(t->tensor, tree.storages))
      bad = check_tensor_view(t->tensor, tree.storages, "tensor at " + path);
  });
  CKPTIO_RETURN_IF_ERROR(bad);
  return tree;
}

StorageWriter storage_writer(const ckptio_host_api* host, const ckptio_tree* view) {
  return [host, view](uint32_t index, ByteSink& out) -> Status {
    ckptio_storage_desc d{};
    d.struct_size = sizeof d;
    view->storage(view->ctx, index, &d);
    if (const void* p = view->storage_data(view->ctx, index)) return out.write(p, d.nbytes);
    constexpr uint64_t kChunk = 8u << 20;
    std::vector<uint8_t> buf(std::min<uint64_t>(kChunk, d.nbytes));
    for (uint64_t off = 0; off < d.nbytes; off += buf.size()) {
      uint64_t n = std::min<uint64_t>(buf.size(), d.nbytes - off);
      CKPTIO_RETURN_IF_ERROR(from_c(host, view->read_storage(view->ctx, index, off, buf.data(), n)));
      CKPTIO_RETURN_IF_ERROR(out.write(buf.data(), n));
    }
    return Status::Ok();
  };
}

}  // namespace ckptio::plugin
