// Protocol-2 pickler mirroring Python's pickle.Pickler as torch.save drives it: the same
// opcodes for the same Python objects, a memo so that shared nodes are written once and
// re-referenced with BINGET, and persistent ids for storages. Byte-for-byte equality with
// Python is not a goal; torch.load reading back the same structure is.
#include "formats/pickle/pickler.h"

#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "formats/dtype.h"
#include "formats/pickle/pickle_error.h"
#include "formats/pickle/pickle_opcodes.h"
#include "formats/pickle/pickle_text.h"

namespace ckptio {
namespace {

using pickle_detail::fail;
using pickle_detail::Op;
using pickle_detail::PickleError;

constexpr size_t kBatch = 1000;     // Python's _BATCHSIZE for APPENDS / SETITEMS

// The tuple opcode for n <= 3 items, as Python's save_tuple picks it.
constexpr Op kSmallTuple[] = {Op::EMPTY_TUPLE, Op::TUPLE1, Op::TUPLE2, Op::TUPLE3};

class Writer {
 public:
  Writer(const Tree* tree, const TorchPickleOptions* options,
         const std::vector<std::string>* newobj_classes = nullptr)
      : tree_(tree), opt_(options) {
    if (newobj_classes) newobj_.insert(newobj_classes->begin(), newobj_classes->end());
  }

  std::string run(const Value& root) {
    op(Op::PROTO);
    u8(2);
    save(root, 0);
    op(Op::STOP);
    return std::move(out_);
  }
  TorchPickled& result() { return result_; }

 private:
  // ---- primitives ----------------------------------------------------------------------
  void op(Op o) { u8(pickle_detail::op_byte(o)); }
  void u8(uint8_t b) { out_.push_back(static_cast<char>(b)); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>(v >> (8 * i)));
  }
  uint32_t put() {
    uint32_t id = next_memo_++;
    if (id < 256) {
      op(Op::BINPUT);
      u8(static_cast<uint8_t>(id));
    } else {
      op(Op::LONG_BINPUT);
      u32(id);
    }
    return id;
  }
  void get(uint32_t id) {
    if (id < 256) {
      op(Op::BINGET);
      u8(static_cast<uint8_t>(id));
    } else {
      op(Op::LONG_BINGET);
      u32(id);
    }
  }
  void write_none() { op(Op::NONE); }
  void write_bool(bool b) { op(b ? Op::NEWTRUE : Op::NEWFALSE); }
  void write_int(int64_t v) {
    if (v >= 0 && v < 256) {
      op(Op::BININT1);
      u8(static_cast<uint8_t>(v));
    } else if (v >= 0 && v < 65536) {
      op(Op::BININT2);
      u8(static_cast<uint8_t>(v));
      u8(static_cast<uint8_t>(v >> 8));
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      op(Op::BININT);
      u32(static_cast<uint32_t>(static_cast<int32_t>(v)));
    } else {
      write_long(pickle_detail::int64_to_twos_complement(v));
    }
  }
  void write_long(const std::string& b) {
    if (b.size() < 256) {
      op(Op::LONG1);
      u8(static_cast<uint8_t>(b.size()));
    } else {
      op(Op::LONG4);
      u32(static_cast<uint32_t>(b.size()));
    }
    out_ += b;
  }
  void write_float(double d) {
    uint64_t u;
    std::memcpy(&u, &d, 8);
    op(Op::BINFLOAT);
    for (int i = 7; i >= 0; --i) u8(static_cast<uint8_t>(u >> (8 * i)));  // big-endian
  }
  // Strings are immutable in Python, so equal texts may share one memo entry.
  void write_str(const std::string& s) {
    auto it = str_memo_.find(s);
    if (it != str_memo_.end()) return get(it->second);
    if (s.size() > UINT32_MAX) fail(Code::kInvalidArgument, "string longer than 4 GiB");
    op(Op::BINUNICODE);
    u32(static_cast<uint32_t>(s.size()));
    out_ += s;
    str_memo_.emplace(s, put());
  }
  // GLOBAL with Python 2 module names, as protocol 2 with fix_imports writes them.
  void write_global(const std::string& dotted) {
    auto it = global_memo_.find(dotted);
    if (it != global_memo_.end()) return get(it->second);
    size_t dot = dotted.rfind('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == dotted.size())
      fail(Code::kInvalidArgument, "global '" + dotted + "' is not a dotted module.name");
    std::string module = dotted.substr(0, dot), name = dotted.substr(dot + 1);
    if (module == "builtins") module = "__builtin__";
    if (module == "copyreg") module = "copy_reg";
    for (const std::string& part : {module, name})
      if (part.find('\n') != std::string::npos)
        fail(Code::kInvalidArgument, "global '" + dotted + "' contains a newline");
    op(Op::GLOBAL);
    out_ += module + "\n" + name + "\n";
    global_memo_.emplace(dotted, put());
  }
  void write_empty_ordered_dict() {
    write_global("collections.OrderedDict");
    op(Op::EMPTY_TUPLE);
    op(Op::REDUCE);
    put();
  }

  // ---- containers ----------------------------------------------------------------------
  template <class Fn>
  void batched(size_t n, Op one, Op many, Fn&& item) {
    for (size_t start = 0; start < n; start += kBatch) {
      size_t end = std::min(n, start + kBatch);
      if (end - start == 1) {
        item(start);
        op(one);
        continue;
      }
      op(Op::MARK);
      for (size_t i = start; i < end; ++i) item(i);
      op(many);
    }
  }
  void save_items(const Value& v, size_t depth) {
    batched(v.items.size(), Op::APPEND, Op::APPENDS,
            [&](size_t i) { save_child(v.items[i], depth); });
  }
  void save_entries(const Value& v, size_t depth) {
    batched(v.entries.size(), Op::SETITEM, Op::SETITEMS, [&](size_t i) {
      save_child(v.entries[i].first, depth);
      save_child(v.entries[i].second, depth);
    });
  }
  void save_child(const ValuePtr& c, size_t depth) {
    if (!c) fail(Code::kInvalidArgument, "null value in the tree");
    save(*c, depth + 1);
  }
  void memoize(const Value& v) { memo_[&v] = put(); }

  void save_tuple(const Value& v, size_t depth) {
    size_t n = v.items.size();
    if (n == 0) {
      op(Op::EMPTY_TUPLE);  // Python does not memoize the empty tuple
      return;
    }
    if (n <= 3) {
      for (const auto& c : v.items) save_child(c, depth);
      op(kSmallTuple[n]);
    } else {
      op(Op::MARK);
      for (const auto& c : v.items) save_child(c, depth);
      op(Op::TUPLE);
    }
    memoize(v);
  }

  void save(const Value& v, size_t depth) {
    if (depth > kMaxTreeDepth)
      fail(Code::kInvalidArgument, "value nested deeper than " + std::to_string(kMaxTreeDepth));
    auto m = memo_.find(&v);
    if (m != memo_.end()) return get(m->second);
    switch (v.kind) {
      case Kind::kNone:
        return write_none();
      case Kind::kBool:
        return write_bool(v.b);
      case Kind::kInt:
        return write_int(v.i);
      case Kind::kBigInt: {
        auto b = pickle_detail::decimal_to_twos_complement(v.s);
        if (!b) fail(Code::kInvalidArgument, "big int '" + v.s + "' is not a decimal");
        return write_long(*b);
      }
      case Kind::kFloat:
        return write_float(v.f);
      case Kind::kStr:
        return write_str(v.s);
      case Kind::kGlobal:
        return write_global(v.s);
      default:
        break;
    }
    if (!in_progress_.insert(&v).second)
      fail(Code::kInvalidArgument, std::string("a ") + kind_name(v.kind) +
                                       " contains itself through its constructor arguments; "
                                       "pickle cannot express that");
    switch (v.kind) {
      case Kind::kBytes:
        if (v.s.empty()) {
          write_global("builtins.bytes");
          op(Op::EMPTY_TUPLE);
        } else {
          // Python 3 at protocol < 3: codecs.encode(bytes.decode('latin1'), 'latin1').
          write_global("_codecs.encode");
          write_str(pickle_detail::latin1_to_utf8(v.s));
          write_str("latin1");
          op(Op::TUPLE2);
          put();
        }
        op(Op::REDUCE);
        memoize(v);
        break;
      case Kind::kTuple:
        save_tuple(v, depth);
        break;
      case Kind::kList:
        op(Op::EMPTY_LIST);
        memoize(v);
        save_items(v, depth);
        break;
      case Kind::kDict:
        if (v.ordered) {
          write_empty_ordered_dict();
          memo_[&v] = next_memo_ - 1;
        } else {
          op(Op::EMPTY_DICT);
          memoize(v);
        }
        save_entries(v, depth);
        if (v.attrs) {
          if (!v.ordered || v.attrs->kind != Kind::kDict)
            fail(Code::kInvalidArgument,
                 "dict attributes need an OrderedDict with a dict of attributes");
          save_child(v.attrs, depth);
          op(Op::BUILD);
        }
        break;
      case Kind::kObject:
        write_global(v.s);
        if (!v.args) {
          op(Op::EMPTY_TUPLE);
        } else if (v.args->kind != Kind::kTuple) {
          fail(Code::kInvalidArgument, "object '" + v.s + "' has non-tuple arguments");
        } else {
          save_child(v.args, depth);
        }
        op(newobj_.count(v.s) ? Op::NEWOBJ : Op::REDUCE);
        memoize(v);
        save_items(v, depth);
        save_entries(v, depth);
        if (v.state) {
          save_child(v.state, depth);
          op(Op::BUILD);
        }
        break;
      case Kind::kTensor:
        save_tensor(v);
        break;
      default:
        fail(Code::kInternal, "unhandled value kind");
    }
    in_progress_.erase(&v);
  }

  // ---- tensors -------------------------------------------------------------------------
  void save_tensor(const Value& v) {
    if (!tree_) fail(Code::kInvalidArgument, "pickle_plain cannot write tensors");
    const TensorMeta& t = v.tensor;
    if (t.storage >= tree_->storages.size())
      fail(Code::kInvalidArgument, "tensor refers to storage #" + std::to_string(t.storage) +
                                       " but the tree has " +
                                       std::to_string(tree_->storages.size()));
    const StorageInfo& s = tree_->storages[t.storage];
    if (t.is_storage) {
      // Persistent ids are not memoized by Python's pickler: a repeat writes it again.
      if (t.storage_offset != 0 || t.shape.size() != 1 ||
          static_cast<uint64_t>(t.shape[0]) * dtype_size(t.dtype) != s.nbytes)
        fail(Code::kInvalidArgument, "storage '" + s.key +
                                         "': a window into a storage (legacy view metadata) "
                                         "cannot be written");
      write_pid(t.storage, t.dtype);
      return;
    }
    if (!tensor_view_fits(t, tree_->storages)) {
      Status st = check_tensor_view(t, tree_->storages, "tensor on storage '" + s.key + "'");
      if (!st.ok()) fail(Code::kInvalidArgument, st.message());
    }
    if (t.is_parameter) {
      // torch.nn.Parameter.__reduce_ex__: (_rebuild_parameter, (data, requires_grad,
      // OrderedDict())).
      write_global("torch._utils._rebuild_parameter");
      save_rebuild_tensor(t, false);
      write_bool(t.requires_grad);
      write_empty_ordered_dict();
      op(Op::TUPLE3);
      put();
      op(Op::REDUCE);
    } else {
      save_rebuild_tensor(t, t.requires_grad);
    }
    memoize(v);
  }

  // torch.Tensor._reduce_ex_internal for a dense strided tensor.
  void save_rebuild_tensor(const TensorMeta& t, bool requires_grad) {
    bool v3 = legacy_storage_class(t.dtype).empty();
    write_global(v3 ? "torch._utils._rebuild_tensor_v3" : "torch._utils._rebuild_tensor_v2");
    op(Op::MARK);
    write_pid(t.storage, t.dtype);
    write_int(t.storage_offset);
    write_int_tuple(t.shape);
    write_int_tuple(t.strides);
    write_bool(requires_grad);
    write_empty_ordered_dict();
    if (v3) write_global("torch." + std::string(dtype_name(t.dtype)));
    if (t.conj || t.neg) {
      op(Op::EMPTY_DICT);
      put();
      op(Op::MARK);
      if (t.conj) {
        write_str("conj");
        write_bool(true);
      }
      if (t.neg) {
        write_str("neg");
        write_bool(true);
      }
      op(Op::SETITEMS);
    }
    op(Op::TUPLE);
    put();
    op(Op::REDUCE);
    put();
  }
  void write_int_tuple(const std::vector<int64_t>& xs) {
    if (xs.empty()) {
      op(Op::EMPTY_TUPLE);
      return;
    }
    if (xs.size() > 3) op(Op::MARK);
    for (int64_t x : xs) write_int(x);
    op(xs.size() > 3 ? Op::TUPLE : kSmallTuple[xs.size()]);
    put();
  }

  // ('storage', <class>, key, location, numel[, None]) BINPERSID for a storage viewed as
  // `dtype`. A dtype without a legacy storage class (the 2.x ones) is pickled over
  // torch.storage.UntypedStorage, counted in bytes. torch's legacy-format loader reads
  // `storage_type.dtype`, which that class does not have: torch.save writes such legacy files
  // but no torch.load reads them back, so in legacy mode they are refused rather than written.
  void write_pid(uint32_t index, DType dtype) {
    const StorageInfo& s = tree_->storages[index];
    const bool untyped = legacy_storage_class(dtype).empty();
    const DType declared = untyped ? DType::kUInt8 : dtype;
    if (untyped && opt_ && opt_->legacy_ids)
      fail(Code::kUnsupported,
           "storage '" + s.key + "' holds " + std::string(dtype_name(dtype)) +
               ", which torch.load cannot read from the torch-legacy format (its legacy loader "
               "has no UntypedStorage); write torch-zip instead");
    auto it = slot_.find(index);
    size_t slot;
    if (it == slot_.end()) {
      slot = result_.storage_order.size();
      slot_.emplace(index, slot);
      result_.storage_order.push_back(index);
      result_.storage_dtype.push_back(declared);
    } else {
      slot = it->second;
      if (result_.storage_dtype[slot] != declared)
        fail(Code::kInvalidArgument,
             "Cannot save multiple tensors or storages that view the same data as different "
             "types (storage '" +
                 s.key + "' as " + std::string(dtype_name(result_.storage_dtype[slot])) + " and " +
                 std::string(dtype_name(declared)) + ")");
    }
    uint64_t size = static_cast<uint64_t>(dtype_size(declared));
    if (s.nbytes % size != 0)
      fail(Code::kInvalidArgument, "storage '" + s.key + "' has " + std::to_string(s.nbytes) +
                                       " bytes, not a whole number of " +
                                       std::string(dtype_name(declared)) + " elements");
    uint64_t numel = s.nbytes / size;
    if (numel > static_cast<uint64_t>(INT64_MAX))
      fail(Code::kInvalidArgument, "storage '" + s.key + "' is too large");
    op(Op::MARK);
    write_str("storage");
    write_global(untyped ? "torch.storage.UntypedStorage"
                         : "torch." + std::string(legacy_storage_class(declared)));
    write_str(std::to_string(slot));
    write_str(s.device);
    write_int(static_cast<int64_t>(numel));
    if (opt_ && opt_->legacy_ids) write_none();
    op(Op::TUPLE);
    put();
    op(Op::BINPERSID);
  }

  const Tree* tree_;
  const TorchPickleOptions* opt_;
  std::string out_;
  uint32_t next_memo_ = 0;
  std::unordered_map<const Value*, uint32_t> memo_;
  std::unordered_map<std::string, uint32_t> str_memo_;
  std::unordered_map<std::string, uint32_t> global_memo_;
  std::unordered_set<const Value*> in_progress_;
  std::unordered_set<std::string> newobj_;
  std::unordered_map<uint32_t, size_t> slot_;
  TorchPickled result_;
};

}  // namespace

Result<TorchPickled> pickle_torch(const Tree& tree, const TorchPickleOptions& options) {
  std::string prefix = options.context.empty() ? "" : options.context + ": ";
  if (!tree.root) return Status(Code::kInvalidArgument, prefix + "the tree has no root");
  try {
    Writer w(&tree, &options);
    std::string bytes = w.run(*tree.root);
    TorchPickled r = std::move(w.result());
    r.bytes = std::move(bytes);
    return r;
  } catch (const PickleError& e) {
    return Status(e.code, prefix + e.message);
  }
}

Result<std::string> pickle_plain(const Value& value,
                                 const std::vector<std::string>& newobj_classes) {
  try {
    Writer w(nullptr, nullptr, &newobj_classes);
    return w.run(value);
  } catch (const PickleError& e) {
    return Status(e.code, e.message);
  }
}

}  // namespace ckptio
