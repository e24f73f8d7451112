// The DCP `.metadata` decoder (dcp_metadata.h). Three passes over one unpickled tree:
//  1. unpickle with allow_objects: every global the repository's allow-list does not know
//     becomes an opaque kObject / kGlobal node, never executed;
//  2. walk the whole tree (each shared node once) and refuse, by name, every class or global
//     outside DCP's own allow-list below, and any tensor;
//  3. decode the fixed schema of Metadata and validate it (chunks, storage entries, paths).
//
// Before pass 1 resolves a global, UnpickleOptions::check_global refuses every name outside
// the allow-list and the few value globals DCP's fields hold (torch.Size, dtypes, layouts,
// OrderedDict): even the globals the unpickler would turn into plain values (_codecs.encode ->
// bytes, numpy scalars -> numbers, torch.jit._pickle.*), which leave no trace for pass 2.
#include "formats/dcp/dcp_metadata.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "formats/message_text.h"
#include "formats/pickle/unpickler.h"
#include "formats/value.h"

namespace ckptio::dcp {
namespace {

// ---------------------------------------------------------------------------------------
// The allow-list: DCP's metadata classes in every module they have lived in.

enum class Role {
  kMetadata,
  kTensorStorage,
  kBytesStorage,
  kChunk,
  kIndex,
  kProperties,
  kMemFormatEnum,
  kStorageInfo,
  kStorageMeta,
  kPath,
  kSet,
  kGetattr,
};

const std::unordered_map<std::string, Role>& classes() {
  static const std::unordered_map<std::string, Role> k = {
      // 2.0+: torch/distributed/checkpoint/metadata.py (2.13: lines 23-185); 1.13:
      // torch/distributed/_shard/checkpoint/metadata.py (lines 10-67).
      {"torch.distributed.checkpoint.metadata.Metadata", Role::kMetadata},
      {"torch.distributed._shard.checkpoint.metadata.Metadata", Role::kMetadata},
      {"torch.distributed.checkpoint.metadata.TensorStorageMetadata", Role::kTensorStorage},
      {"torch.distributed._shard.checkpoint.metadata.TensorStorageMetadata", Role::kTensorStorage},
      {"torch.distributed.checkpoint.metadata.BytesStorageMetadata", Role::kBytesStorage},
      {"torch.distributed._shard.checkpoint.metadata.BytesStorageMetadata", Role::kBytesStorage},
      {"torch.distributed.checkpoint.metadata.ChunkStorageMetadata", Role::kChunk},
      {"torch.distributed._shard.checkpoint.metadata.ChunkStorageMetadata", Role::kChunk},
      {"torch.distributed.checkpoint.metadata.MetadataIndex", Role::kIndex},
      {"torch.distributed._shard.checkpoint.metadata.MetadataIndex", Role::kIndex},
      // 2.4+ only (2.13 metadata.py line 130).
      {"torch.distributed.checkpoint.metadata.StorageMeta", Role::kStorageMeta},
      // TensorProperties and its memory-format enum: 1.13-2.2 in _shard.sharded_tensor.metadata
      // (1.13 lines 8-59; the class is still there in 2.13), 2.3+ in checkpoint.metadata (2.13
      // lines 34-100).
      {"torch.distributed._shard.sharded_tensor.metadata.TensorProperties", Role::kProperties},
      {"torch.distributed.checkpoint.metadata.TensorProperties", Role::kProperties},
      {"torch.distributed._shard.sharded_tensor.metadata.MEM_FORMAT_ENCODING",
       Role::kMemFormatEnum},
      {"torch.distributed.checkpoint.metadata._MEM_FORMAT_ENCODING", Role::kMemFormatEnum},
      // _StorageInfo: 2.13 checkpoint/filesystem.py line 75; 1.13 _shard/checkpoint/filesystem.py
      // line 38.
      {"torch.distributed.checkpoint.filesystem._StorageInfo", Role::kStorageInfo},
      {"torch.distributed._shard.checkpoint.filesystem._StorageInfo", Role::kStorageInfo},
      // StorageMeta.checkpoint_id is FileSystemWriter's path: a pathlib.Path, whose module is
      // pathlib._local on Python 3.13.
      {"pathlib.PosixPath", Role::kPath},
      {"pathlib.PurePosixPath", Role::kPath},
      {"pathlib._local.PosixPath", Role::kPath},
      {"pathlib._local.PurePosixPath", Role::kPath},
      {"builtins.set", Role::kSet},
      {"builtins.frozenset", Role::kSet},
      // Python 3.11.2 (Debian's, /usr/lib/python3.11/enum.py:1233) pickles an Enum member as
      // getattr(cls, name); 3.11.7 (the venv's enum.py:1233) as cls(value). getattr is accepted
      // only with a memory-format enum class and one of its three member names.
      {"builtins.getattr", Role::kGetattr},
  };
  return k;
}

const Role* role_of(const std::string& dotted) {
  auto it = classes().find(dotted);
  return it == classes().end() ? nullptr : &it->second;
}

// torch.serialization._get_layout names (the unpickler checks the same list).
bool is_layout(const std::string& s) {
  static const std::unordered_set<std::string> k = {
      "torch.strided",    "torch.sparse_coo", "torch.sparse_csr", "torch.sparse_csc",
      "torch.sparse_bsr", "torch.sparse_bsc", "torch._mkldnn",    "torch.jagged"};
  return k.count(s) != 0;
}

std::optional<DType> dtype_global(const std::string& s) {
  if (s.compare(0, 6, "torch.") != 0) return std::nullopt;
  std::string rest = s.substr(6);
  if (rest.find('.') != std::string::npos) return std::nullopt;
  return dtype_from_name(rest);
}

constexpr size_t kMaxStateFields = 32;
// Sizes and offsets: far more dims than real tensors have; bounds the copies of a shared Size.
constexpr size_t kMaxRank = 64;

constexpr const char* kMemFormatNames[] = {"TORCH_CONTIGUOUS_FORMAT", "TORCH_CHANNELS_LAST",
                                           "TORCH_PRESERVE_FORMAT"};

// ---------------------------------------------------------------------------------------
// Messages.

struct Failure {
  Code code;
  std::string message;
};

[[noreturn]] void fail(Code code, std::string message) { throw Failure{code, std::move(message)}; }

std::string describe(const Value* v) {
  if (!v) return "missing";
  switch (v->kind) {
    case Kind::kGlobal:
      return "the global " + v->s;
    case Kind::kObject:
      return "a " + v->s;
    case Kind::kStr:
      return "the str " + quoted_text(v->s);
    case Kind::kInt:
      return "the int " + std::to_string(v->i);
    case Kind::kBigInt:
      return "the int " + v->s.substr(0, 40);
    case Kind::kNone:
      return "None";
    default:
      return std::string("a ") + kind_name(v->kind);
  }
}

// ---------------------------------------------------------------------------------------
// Pass 2: every node once; the path of the offending node in the message.

const Value* child_at(const Value& v, size_t i) {
  switch (v.kind) {
    case Kind::kList:
    case Kind::kTuple:
      return i < v.items.size() ? v.items[i].get() : nullptr;
    case Kind::kDict: {
      const size_t n = v.entries.size();
      if (i < 2 * n) return (i % 2 ? v.entries[i / 2].second : v.entries[i / 2].first).get();
      return i == 2 * n ? v.attrs.get() : nullptr;
    }
    case Kind::kObject:
      return i == 0 ? v.args.get() : i == 1 ? v.state.get() : nullptr;
    default:
      return nullptr;
  }
}

size_t child_count(const Value& v) {
  switch (v.kind) {
    case Kind::kList:
    case Kind::kTuple:
      return v.items.size();
    case Kind::kDict:
      return 2 * v.entries.size() + 1;
    case Kind::kObject:
      return 2;
    default:
      return 0;
  }
}

const Value* state_field(const Value& obj, const char* name);

std::string key_text(const Value& k) {
  if (k.kind == Kind::kStr) return quoted_text(k.s);
  if (k.kind == Kind::kInt) return std::to_string(k.i);
  if (k.kind == Kind::kObject) {
    const Value* fqn = state_field(k, "fqn");
    if (fqn && fqn->kind == Kind::kStr) return "MetadataIndex(" + quoted_text(fqn->s) + ")";
    return k.s;
  }
  return kind_name(k.kind);
}

std::string child_label(const Value& parent, size_t i, bool parent_is_state) {
  switch (parent.kind) {
    case Kind::kList:
    case Kind::kTuple:
      return "[" + std::to_string(i) + "]";
    case Kind::kDict: {
      const size_t n = parent.entries.size();
      if (i >= 2 * n) return ".__dict__";
      const std::string k = key_text(*parent.entries[i / 2].first);
      if (i % 2 == 0) return " key " + k;
      if (parent_is_state && parent.entries[i / 2].first->kind == Kind::kStr)
        return "." + parent.entries[i / 2].first->s;
      return "[" + k + "]";
    }
    case Kind::kObject:
      return i == 0 ? "(args)" : "";
    default:
      return "";
  }
}

struct Frame {
  const Value* v;
  size_t next = 0;
};

std::string path_of(const std::vector<Frame>& stack) {
  if (stack.size() <= 1) return "the pickle's root";
  std::string p = "metadata";
  for (size_t f = 0; f + 1 < stack.size(); ++f) {
    const Value& parent = *stack[f].v;
    const bool is_state =
        f > 0 && stack[f - 1].v->kind == Kind::kObject && stack[f - 1].v->state.get() == &parent;
    p += child_label(parent, stack[f].next - 1, is_state);
  }
  return p;
}

void check_node(const Value& v, const std::vector<Frame>& stack, const std::string& file) {
  switch (v.kind) {
    case Kind::kTensor:
      fail(Code::kCorrupt, file + ": " + path_of(stack) +
                               " is a tensor; DCP metadata holds none (not a DCP .metadata?)");
    case Kind::kGlobal:
      if (dtype_global(v.s) || is_layout(v.s) || role_of(v.s)) return;
      fail(Code::kForbidden, file + ": pickle global " + quoted_text(v.s) +
                                 " is not a DCP metadata class (at " + path_of(stack) + ")");
    case Kind::kObject: {
      const Role* r = role_of(v.s);
      if (!r)
        fail(Code::kForbidden, file + ": pickle global " + quoted_text(v.s) +
                                   " is not a DCP metadata class (at " + path_of(stack) + ")");
      // The dataclasses have at most five fields. A bigger state, shared through the memo by
      // many objects, would make every field lookup of pass 3 a long scan.
      const Value* st = v.state.get();
      const size_t fields = !st                        ? 0
                            : st->kind == Kind::kDict  ? st->entries.size()
                            : st->kind == Kind::kTuple ? st->items.size()
                                                       : 0;
      if (fields > kMaxStateFields)
        fail(Code::kCorrupt, file + ": " + path_of(stack) + " is a " + v.s + " whose state has " +
                                 std::to_string(fields) +
                                 " entries; DCP's classes have at most five");
      if (*r == Role::kGetattr) {
        const Value* a = v.args.get();
        bool ok = a && a->kind == Kind::kTuple && a->items.size() == 2 &&
                  a->items[0]->kind == Kind::kGlobal && role_of(a->items[0]->s) &&
                  *role_of(a->items[0]->s) == Role::kMemFormatEnum &&
                  a->items[1]->kind == Kind::kStr && !v.state;
        if (ok) {
          ok = false;
          for (const char* m : kMemFormatNames) ok = ok || a->items[1]->s == m;
        }
        if (!ok)
          fail(Code::kForbidden, file +
                                     ": pickle global 'builtins.getattr' is accepted only as "
                                     "getattr(<memory-format enum>, '<member>') (at " +
                                     path_of(stack) + ")");
      }
      return;
    }
    default:
      return;
  }
}

// UnpickleOptions::check_global: the globals a DCP .metadata may name at all.
Status vet_global(const std::string& dotted) {
  if (role_of(dotted) || dtype_global(dotted) || dotted == "torch.Size" ||
      dotted == "collections.OrderedDict" || dotted == "torch.serialization._get_layout")
    return Status::Ok();
  return Status(Code::kForbidden, "pickle global '" + dotted + "' is not a DCP metadata class");
}

void check_globals(const Value& root, const std::string& file) {
  std::unordered_set<const Value*> seen;
  std::vector<Frame> stack;
  check_node(root, {{&root, 0}}, file);
  seen.insert(&root);
  stack.push_back({&root, 0});
  while (!stack.empty()) {
    Frame& top = stack.back();
    const size_t count = child_count(*top.v);
    if (top.next >= count) {
      stack.pop_back();
      continue;
    }
    const Value* c = child_at(*top.v, top.next++);
    if (!c) continue;
    stack.push_back({c, 0});
    check_node(*c, stack, file);
    if (child_count(*c) == 0 || !seen.insert(c).second) stack.pop_back();
  }
}

// ---------------------------------------------------------------------------------------
// Pass 3: the schema.

const Value* state_field(const Value& obj, const char* name) {
  // BUILD with a dict updates __dict__ (the last duplicate wins); (dict, slotstate) likewise.
  const Value* st = obj.state.get();
  if (!st) return nullptr;
  const Value* found = nullptr;
  auto scan = [&](const Value* d) {
    if (!d || d->kind != Kind::kDict) return;
    for (const auto& e : d->entries)
      if (e.first->kind == Kind::kStr && e.first->s == name) found = e.second.get();
  };
  if (st->kind == Kind::kTuple && st->items.size() == 2) {
    scan(st->items[0].get());
    scan(st->items[1].get());
  } else {
    scan(st);
  }
  return found;
}

bool is_none(const Value* v) { return !v || v->kind == Kind::kNone; }

class Decoder {
 public:
  // `n`: the file's size, which bounds the work (see charge()).
  Decoder(const std::string& file, size_t n)
      : file_(file),
        elements_left_(4 * static_cast<uint64_t>(n) + 4096),
        check_work_left_(kMaxChunkCheckWork + 16 * static_cast<uint64_t>(n)) {}

  DcpMetadata decode(const Value& root) {
    expect_object(&root, Role::kMetadata, "the pickle's root", "a Metadata");
    DcpMetadata md;
    md.package = root.s.substr(0, root.s.size() - std::strlen(".metadata.Metadata"));

    const Value* sdm = state_field(root, "state_dict_metadata");
    if (!sdm || sdm->kind != Kind::kDict)
      bad("state_dict_metadata", "is " + describe(sdm) + ", not a dict");
    for (const auto& e : sdm->entries) {
      if (e.first->kind != Kind::kStr)
        bad("state_dict_metadata", "has a key that is " + describe(e.first.get()) + ", not a str");
      const std::string& fqn = e.first->s;
      if (!fqn_index_.emplace(fqn, md.items.size()).second)
        bad(quoted_text(fqn), "appears twice in state_dict_metadata");
      md.items.push_back(item(fqn, e.second.get()));
    }
    for (const Item& it : md.items) check_chunks(it);

    const Value* pd = state_field(root, "planner_data");
    if (!is_none(pd)) md.planner_data = planner_data(*pd);

    const Value* sd = state_field(root, "storage_data");
    if (!sd || sd->kind != Kind::kDict)
      bad("storage_data", "is " + describe(sd) + ", not a dict of MetadataIndex -> _StorageInfo");
    storage_data(*sd, md);

    const Value* sm = state_field(root, "storage_meta");
    if (!is_none(sm)) md.storage_meta = storage_meta(*sm);

    const Value* ver = state_field(root, "version");
    if (!is_none(ver)) {
      if (ver->kind != Kind::kStr) bad("version", "is " + describe(ver) + ", not a str");
      md.version = ver->s;
    }
    return md;
  }

 private:
  [[noreturn]] void bad(const std::string& where, const std::string& what,
                        Code code = Code::kCorrupt) const {
    fail(code, file_ + ": " + where + " " + what);
  }

  void expect_object(const Value* v, Role role, const std::string& where, const char* what) const {
    const Role* r = v && v->kind == Kind::kObject ? role_of(v->s) : nullptr;
    if (!r || *r != role) bad(where, "is " + describe(v) + ", not " + what);
    // copyreg.__newobj__(cls) of a dataclass: NEWOBJ with no arguments.
    if (v->args && !v->args->items.empty())
      bad(where, "is a " + v->s + " built with constructor arguments, which DCP never writes");
  }

  int64_t int_of(const Value* v, const std::string& where, const char* field) const {
    if (!v || v->kind != Kind::kInt)
      bad(where, std::string(field) + " is " + describe(v) + ", not an int");
    return v->i;
  }

  std::vector<int64_t> int_seq(const Value* v, const std::string& where, const char* field) {
    if (!v || (v->kind != Kind::kTuple && v->kind != Kind::kList))
      bad(where, std::string(field) + " is " + describe(v) + ", not a torch.Size");
    if (v->items.size() > kMaxRank)
      bad(where, std::string(field) + " has " + std::to_string(v->items.size()) +
                     " dims, more than the " + std::to_string(kMaxRank) + " ckptio reads");
    charge(v->items.size() + 1);
    std::vector<int64_t> out;
    out.reserve(v->items.size());  // nodes that exist
    for (const auto& x : v->items) {
      if (x->kind != Kind::kInt)
        bad(where, std::string(field) + " holds " + describe(x.get()) + ", not an int");
      out.push_back(x->i);
    }
    return out;
  }

  bool bool_of(const Value* v, const std::string& where, const char* field) const {
    if (v && v->kind == Kind::kBool) return v->b;
    if (v && v->kind == Kind::kInt && (v->i == 0 || v->i == 1)) return v->i == 1;
    bad(where, std::string(field) + " is " + describe(v) + ", not a bool");
  }

  std::vector<std::string> str_seq(const Value* v, const std::string& where, const char* field) {
    const Value* seq = v;
    if (v && v->kind == Kind::kObject && role_of(v->s) && *role_of(v->s) == Role::kSet && v->args &&
        v->args->items.size() == 1)
      seq = v->args->items[0].get();  // set(...) -> (list,)
    if (!seq || (seq->kind != Kind::kList && seq->kind != Kind::kTuple))
      bad(where, std::string(field) + " is " + describe(v) + ", not a list of str");
    charge(seq->items.size() + 1);
    std::vector<std::string> out;
    out.reserve(seq->items.size());
    for (const auto& x : seq->items) {
      if (x->kind != Kind::kStr)
        bad(where, std::string(field) + " holds " + describe(x.get()) + ", not a str");
      out.push_back(x->s);
    }
    return out;
  }

  Item item(const std::string& fqn, const Value* v) {
    const std::string where = quoted_text(fqn);
    Item it;
    it.fqn = fqn;
    const Role* r = v && v->kind == Kind::kObject ? role_of(v->s) : nullptr;
    if (r && *r == Role::kBytesStorage) {
      expect_object(v, Role::kBytesStorage, where, "a BytesStorageMetadata");
      it.kind = Item::Kind::kBytes;
      return it;
    }
    expect_object(v, Role::kTensorStorage, where,
                  "a TensorStorageMetadata or BytesStorageMetadata");
    it.kind = Item::Kind::kTensor;
    it.properties = properties(state_field(*v, "properties"), where);
    it.size = int_seq(state_field(*v, "size"), where, "size");
    for (size_t d = 0; d < it.size.size(); ++d)
      if (it.size[d] < 0)
        bad(where, "has size " + ints_text(it.size, 16) + ", negative in dim " + std::to_string(d));
    const Value* chunks = state_field(*v, "chunks");
    if (!chunks || (chunks->kind != Kind::kList && chunks->kind != Kind::kTuple))
      bad(where, "chunks is " + describe(chunks) + ", not a list of ChunkStorageMetadata");
    charge(chunks->items.size() + 1);
    it.chunks.reserve(chunks->items.size());
    for (size_t k = 0; k < chunks->items.size(); ++k) {
      const std::string cw = where + " chunk " + std::to_string(k);
      const Value* c = chunks->items[k].get();
      expect_object(c, Role::kChunk, cw, "a ChunkStorageMetadata");
      Chunk ch;
      ch.offsets = int_seq(state_field(*c, "offsets"), cw, "offsets");
      ch.sizes = int_seq(state_field(*c, "sizes"), cw, "sizes");
      it.chunks.push_back(std::move(ch));
    }
    return it;
  }

  TensorProperties properties(const Value* v, const std::string& where) {
    const std::string pw = where + " properties";
    expect_object(v, Role::kProperties, pw, "a TensorProperties");
    // TensorProperties.__getstate__: (dtype, layout, requires_grad, memory format, pin_memory);
    // __setstate__ unpacks exactly five.
    const Value* st = v->state.get();
    if (!st || st->kind != Kind::kTuple || st->items.size() != 5)
      bad(pw,
          "state is " + describe(st) + ", not the 5-tuple TensorProperties.__getstate__ returns");
    TensorProperties p;
    const Value& dt = *st->items[0];
    std::optional<DType> d = dt.kind == Kind::kGlobal ? dtype_global(dt.s) : std::nullopt;
    if (!d)
      bad(pw, "dtype is " + describe(&dt) + ", not a torch dtype ckptio knows", Code::kUnsupported);
    p.dtype = *d;
    const Value& lay = *st->items[1];
    if (lay.kind != Kind::kGlobal || !is_layout(lay.s))
      bad(pw, "layout is " + describe(&lay) + ", not a torch layout");
    p.layout = lay.s;
    p.requires_grad = bool_of(st->items[2].get(), pw, "requires_grad");
    p.memory_format = memory_format(*st->items[3], pw);
    p.pin_memory = bool_of(st->items[4].get(), pw, "pin_memory");
    return p;
  }

  MemoryFormat memory_format(const Value& v, const std::string& pw) const {
    const Role* r = v.kind == Kind::kObject ? role_of(v.s) : nullptr;
    // ENUM(value): REDUCE of the enum class with (0|1|2,).
    if (r && *r == Role::kMemFormatEnum && v.args && v.args->items.size() == 1 &&
        v.args->items[0]->kind == Kind::kInt && v.args->items[0]->i >= 0 &&
        v.args->items[0]->i <= 2)
      return static_cast<MemoryFormat>(v.args->items[0]->i);
    // getattr(ENUM, 'NAME') (checked in pass 2).
    if (r && *r == Role::kGetattr)
      for (int i = 0; i < 3; ++i)
        if (v.args->items[1]->s == kMemFormatNames[i]) return static_cast<MemoryFormat>(i);
    bad(pw, "memory format is " + describe(&v) + ", not a member of the memory-format enum");
  }

  // In bounds, disjoint, covering: _validate_global_plan's rules, with names.
  void check_chunks(const Item& it) {
    if (it.kind != Item::Kind::kTensor) return;
    const std::string where = quoted_text(it.fqn);
    const size_t nd = it.size.size();
    // Checked products; a zero dim makes the tensor (and a chunk) empty whatever the others.
    auto volume = [](const std::vector<int64_t>& dims, int64_t* out) {
      int64_t v = 1;
      if (std::find(dims.begin(), dims.end(), 0) != dims.end()) v = 0;
      for (int64_t s : dims) {
        if (v == 0) break;
        if (s > std::numeric_limits<int64_t>::max() / v) return false;
        v *= s;
      }
      *out = v;
      return true;
    };
    int64_t numel = 0;
    if (!volume(it.size, &numel))
      bad(where, "has size " + ints_text(it.size, 16) + ", more than 2^63 - 1 elements");
    uint64_t total = 0;  // saturates: past numel already means an overlap
    std::map<std::vector<int64_t>, size_t> by_offsets;
    for (size_t k = 0; k < it.chunks.size(); ++k) {
      const Chunk& c = it.chunks[k];
      const std::string cw = where + " chunk " + std::to_string(k) + " (offsets " +
                             ints_text(c.offsets, 16) + ", sizes " + ints_text(c.sizes, 16) + ")";
      if (c.offsets.size() != nd || c.sizes.size() != nd)
        bad(cw, "has offsets of rank " + std::to_string(c.offsets.size()) + " and sizes of rank " +
                    std::to_string(c.sizes.size()) + "; the tensor of size " +
                    ints_text(it.size, 16) + " has rank " + std::to_string(nd));
      for (size_t d = 0; d < nd; ++d) {
        if (c.offsets[d] < 0 || c.sizes[d] < 0 || c.sizes[d] > it.size[d] ||
            c.offsets[d] > it.size[d] - c.sizes[d])
          bad(cw, "is out of bounds of size " + ints_text(it.size, 16) + " in dim " +
                      std::to_string(d));
      }
      int64_t vol = 0;
      volume(c.sizes, &vol);  // in bounds: at most numel
      total = total > UINT64_MAX - static_cast<uint64_t>(vol) ? UINT64_MAX : total + vol;
      auto ins = by_offsets.emplace(c.offsets, k);
      if (!ins.second) bad(cw, "has the offsets of chunk " + std::to_string(ins.first->second));
    }
    find_overlap_or_gap(it, numel, total);
  }

  static bool overlaps(const Chunk& a, const Chunk& b) {
    for (size_t d = 0; d < a.offsets.size(); ++d)
      if (std::max(a.offsets[d], b.offsets[d]) >=
          std::min(a.offsets[d] + a.sizes[d], b.offsets[d] + b.sizes[d]))
        return false;
    return true;
  }

  [[noreturn]] void overlap(const Item& it, size_t i, size_t j) const {
    if (i > j) std::swap(i, j);
    const Chunk& a = it.chunks[i];
    const Chunk& b = it.chunks[j];
    bad(quoted_text(it.fqn) + " chunk " + std::to_string(j) + " (offsets " +
            ints_text(b.offsets, 16) + ", sizes " + ints_text(b.sizes, 16) + ")",
        "overlaps chunk " + std::to_string(i) + " (offsets " + ints_text(a.offsets, 16) +
            ", sizes " + ints_text(a.sizes, 16) + ")");
  }

  // Either on the grid of distinct chunk boundaries (each cell lies wholly inside or outside
  // each chunk: a bitmap finds an overlap and names the first uncovered element), or pair by
  // pair (few chunks on a large irregular grid); whichever is cheaper, each bounded.
  void find_overlap_or_gap(const Item& it, int64_t numel, uint64_t total) {
    const size_t nd = it.size.size();
    const size_t n = it.chunks.size();
    const uint64_t pairs = n < 2 ? 0 : static_cast<uint64_t>(n) * (n - 1) / 2;
    std::vector<std::vector<int64_t>> bounds(nd);
    uint64_t cells = 1;
    bool grid = true;
    for (size_t d = 0; d < nd && grid; ++d) {
      auto& b = bounds[d];
      b.reserve(2 * n + 2);
      b.push_back(0);
      b.push_back(it.size[d]);
      for (const Chunk& c : it.chunks) {
        b.push_back(c.offsets[d]);
        b.push_back(c.offsets[d] + c.sizes[d]);
      }
      std::sort(b.begin(), b.end());
      b.erase(std::unique(b.begin(), b.end()), b.end());
      const uint64_t m = b.size() - 1;  // 0 when the dim is 0
      if (m != 0 && cells > kMaxChunkCheckWork / m) grid = false;
      cells *= m;
    }
    // Small grids always (they name the gap); larger ones only when no dearer than the pairs.
    grid = grid && (cells <= (uint64_t{1} << 16) || cells <= pairs);
    const uint64_t cost = grid ? cells : pairs;
    if (!grid && pairs > kMaxChunkCheckWork)
      bad(quoted_text(it.fqn),
          "has " + std::to_string(n) + " irregular chunks, too many to check for overlap",
          Code::kLimit);
    if (cost > check_work_left_)
      bad(quoted_text(it.fqn),
          "is one tensor too many: checking all chunks for overlap needs more work "
          "than the file's size allows",
          Code::kLimit);
    check_work_left_ -= cost;
    if (grid) {
      std::vector<uint64_t> stride(nd, 1);
      for (size_t d = nd; d-- > 1;) stride[d - 1] = stride[d] * (bounds[d].size() - 1);
      std::vector<bool> covered(cells, false);
      std::vector<size_t> lo(nd), hi(nd), idx(nd);
      for (size_t k = 0; k < n && cells != 0; ++k) {
        const Chunk& c = it.chunks[k];
        bool empty = false;
        for (size_t d = 0; d < nd; ++d) {
          const auto& b = bounds[d];
          lo[d] = std::lower_bound(b.begin(), b.end(), c.offsets[d]) - b.begin();
          hi[d] = std::lower_bound(b.begin(), b.end(), c.offsets[d] + c.sizes[d]) - b.begin();
          empty = empty || lo[d] == hi[d];
        }
        if (empty) continue;  // an empty box overlaps nothing
        idx = lo;
        for (;;) {
          uint64_t cell = 0;
          for (size_t d = 0; d < nd; ++d) cell += idx[d] * stride[d];
          if (covered[cell]) {  // an earlier chunk holds this cell: find which
            for (size_t j = 0; j < k; ++j)
              if (overlaps(it.chunks[j], c)) overlap(it, j, k);
          }
          covered[cell] = true;
          bool done = true;  // the next cell of the chunk, last dim fastest
          for (size_t d = nd; d-- > 0;) {
            if (++idx[d] < hi[d]) {
              done = false;
              break;
            }
            idx[d] = lo[d];
          }
          if (done) break;
        }
      }
      if (total == static_cast<uint64_t>(numel)) return;
      for (uint64_t cell = 0; cell < cells; ++cell) {
        if (covered[cell]) continue;
        std::vector<int64_t> at(nd);
        uint64_t rest = cell;
        for (size_t d = 0; d < nd; ++d) {
          at[d] = bounds[d][rest / stride[d]];
          rest %= stride[d];
        }
        bad(quoted_text(it.fqn), "chunks do not cover the tensor of size " +
                                     ints_text(it.size, 16) + ": element " + ints_text(at, 16) +
                                     " is in no chunk");
      }
      bad(quoted_text(it.fqn), "chunks do not cover the tensor of size " + ints_text(it.size, 16));
    }
    for (size_t i = 0; i < n; ++i)
      for (size_t j = i + 1; j < n; ++j)
        if (overlaps(it.chunks[i], it.chunks[j])) overlap(it, i, j);
    if (total != static_cast<uint64_t>(numel))
      bad(quoted_text(it.fqn), "chunks do not cover the tensor of size " + ints_text(it.size, 16) +
                                   ": they hold " + std::to_string(total) + " of its " +
                                   std::to_string(numel) + " elements");
  }

  std::vector<PlannerEntry> planner_data(const Value& v) {
    if (v.kind != Kind::kDict)
      bad("planner_data",
          "is " + describe(&v) +
              ", not DefaultSavePlanner's dict of fqn -> path (a custom planner?)",
          Code::kUnsupported);
    std::vector<PlannerEntry> out;
    out.reserve(v.entries.size());
    for (const auto& e : v.entries) {
      if (e.first->kind != Kind::kStr)
        bad("planner_data", "has a key that is " + describe(e.first.get()) + ", not a str");
      const std::string where = "planner_data[" + quoted_text(e.first->s) + "]";
      const Value& p = *e.second;
      if (p.kind != Kind::kTuple && p.kind != Kind::kList)
        bad(where, "is " + describe(&p) + ", not a tuple of path items");
      charge(p.items.size() + 1);
      PlannerEntry pe;
      pe.fqn = e.first->s;
      pe.path.reserve(p.items.size());
      for (size_t i = 0; i < p.items.size(); ++i) {
        const Value& x = *p.items[i];
        if (x.kind == Kind::kStr)
          pe.path.emplace_back(x.s);
        else if (x.kind == Kind::kInt)
          pe.path.emplace_back(x.i);
        else
          bad(where, "item " + std::to_string(i) + " is " + describe(&x) + ", not a str or int");
      }
      out.push_back(std::move(pe));
    }
    return out;
  }

  // Why `p` cannot name a file inside the checkpoint directory, or null.
  static const char* path_problem(const std::string& p) {
    if (p.empty()) return "is empty";
    if (p.find('\0') != std::string::npos) return "holds a NUL byte";
    if (p.find('\\') != std::string::npos) return "holds a backslash";
    if (p[0] == '/') return "is absolute";
    for (size_t begin = 0; begin <= p.size();) {
      size_t end = p.find('/', begin);
      if (end == std::string::npos) end = p.size();
      if (end - begin == 2 && p.compare(begin, 2, "..") == 0) return "has a '..' component";
      begin = end + 1;
    }
    return nullptr;
  }

  void storage_data(const Value& sd, DcpMetadata& md) {
    // Which chunk of which item each entry stores, to refuse repeats and find what is missing.
    std::vector<std::map<std::vector<int64_t>, size_t>> chunk_of(md.items.size());
    std::vector<std::vector<bool>> stored(md.items.size());
    for (size_t i = 0; i < md.items.size(); ++i) {
      for (size_t k = 0; k < md.items[i].chunks.size(); ++k)
        chunk_of[i].emplace(md.items[i].chunks[k].offsets, k);
      stored[i].assign(md.items[i].kind == Item::Kind::kTensor ? md.items[i].chunks.size() : 1,
                       false);
    }
    md.storage_data.reserve(sd.entries.size());
    for (const auto& e : sd.entries) {
      const Value* key = e.first.get();
      expect_object(key, Role::kIndex, "storage_data key", "a MetadataIndex");
      StorageEntry se;
      const Value* fqn = state_field(*key, "fqn");
      if (!fqn || fqn->kind != Kind::kStr)
        bad("storage_data", "has a MetadataIndex whose fqn is " + describe(fqn) + ", not a str");
      se.index.fqn = fqn->s;
      const Value* off = state_field(*key, "offset");
      std::string where = "storage_data[" + quoted_text(se.index.fqn);
      if (!is_none(off)) {
        se.index.offset = int_seq(off, where + "]", "offset");
        where += " offset " + ints_text(*se.index.offset, 16);
      }
      where += "]";
      const Value* hint = state_field(*key, "index");
      if (!is_none(hint)) {
        se.index.index = int_of(hint, where, "index");
        if (*se.index.index < 0) bad(where, "index is negative");
      }

      auto fi = fqn_index_.find(se.index.fqn);
      if (fi == fqn_index_.end()) bad(where, "names an fqn that is not in state_dict_metadata");
      const Item& it = md.items[fi->second];
      size_t slot = 0;
      if (it.kind == Item::Kind::kTensor) {
        if (!se.index.offset)
          bad(where, "has no offset, but " + quoted_text(it.fqn) + " is a tensor");
        auto ci = chunk_of[fi->second].find(*se.index.offset);
        if (ci == chunk_of[fi->second].end())
          bad(where, "offset is no chunk of " + quoted_text(it.fqn));
        slot = ci->second;
      } else if (se.index.offset) {
        bad(where, "has an offset, but " + quoted_text(it.fqn) + " is a bytes item");
      }
      if (stored[fi->second][slot]) bad(where, "appears twice in storage_data");
      stored[fi->second][slot] = true;

      const Value* info = e.second.get();
      expect_object(info, Role::kStorageInfo, where, "a _StorageInfo");
      const Value* rp = state_field(*info, "relative_path");
      if (!rp || rp->kind != Kind::kStr)
        bad(where, "relative_path is " + describe(rp) + ", not a str");
      if (const char* why = path_problem(rp->s))
        bad(where, "relative_path " + quoted_text(rp->s) + " " + why);
      se.info.relative_path = rp->s;
      se.info.offset = int_of(state_field(*info, "offset"), where, "offset");
      se.info.length = int_of(state_field(*info, "length"), where, "length");
      if (se.info.offset < 0)
        bad(where, "offset " + std::to_string(se.info.offset) + " is negative");
      if (se.info.length < 0)
        bad(where, "length " + std::to_string(se.info.length) + " is negative");
      if (se.info.offset > std::numeric_limits<int64_t>::max() - se.info.length)
        bad(where, "offset + length is past 2^63 - 1");
      const Value* td = state_field(*info, "transform_descriptors");
      if (!is_none(td)) se.info.transform_descriptors = str_seq(td, where, "transform_descriptors");
      md.storage_data.push_back(std::move(se));
    }
    for (size_t i = 0; i < md.items.size(); ++i) {
      const Item& it = md.items[i];
      for (size_t k = 0; k < stored[i].size(); ++k) {
        if (stored[i][k]) continue;
        if (it.kind == Item::Kind::kBytes) bad(quoted_text(it.fqn), "has no storage_data entry");
        bad(quoted_text(it.fqn) + " chunk " + std::to_string(k) + " (offsets " +
                ints_text(it.chunks[k].offsets, 16) + ")",
            "has no storage_data entry");
      }
    }
  }

  StorageMeta storage_meta(const Value& v) {
    expect_object(&v, Role::kStorageMeta, "storage_meta", "a StorageMeta");
    StorageMeta sm;
    const Value* id = state_field(v, "checkpoint_id");
    if (!is_none(id)) {
      if (id->kind == Kind::kStr) {
        sm.checkpoint_id = id->s;
      } else if (id->kind == Kind::kObject && role_of(id->s) && *role_of(id->s) == Role::kPath) {
        // PurePath.__reduce__: (cls, parts); PurePosixPath(*parts) joins them.
        std::string p;
        const Value* parts = id->args.get();
        if (!parts || parts->kind != Kind::kTuple)
          bad("storage_meta.checkpoint_id", "is a " + id->s + " without its parts");
        for (const auto& x : parts->items) {
          if (x->kind != Kind::kStr)
            bad("storage_meta.checkpoint_id",
                "has a part that is " + describe(x.get()) + ", not a str");
          if (x->s.empty()) continue;
          if (x->s[0] == '/' || p.empty())
            p = x->s;
          else
            p += (p.back() == '/' ? "" : "/") + x->s;
        }
        sm.checkpoint_id = p.empty() ? "." : p;
      } else {
        bad("storage_meta.checkpoint_id", "is " + describe(id) + ", not a str or pathlib path");
      }
    }
    auto opt_str = [&](const char* name) -> std::optional<std::string> {
      const Value* s = state_field(v, name);
      if (is_none(s)) return std::nullopt;
      if (s->kind != Kind::kStr)
        bad(std::string("storage_meta.") + name, "is " + describe(s) + ", not a str");
      return s->s;
    };
    sm.save_id = opt_str("save_id");
    sm.load_id = opt_str("load_id");
    const Value* mods = state_field(v, "modules");
    if (!is_none(mods)) sm.modules = str_seq(mods, "storage_meta", "modules");
    return sm;
  }

  // Every value decoded costs at least one byte of the file unless the memo shares it. DCP
  // writers share nothing the schema copies (each chunk has its own Size objects), so a file
  // whose decoding copies more than a few values per byte is a memo bomb: refused before the
  // copies exhaust memory or time.
  void charge(uint64_t units) {
    if (units > elements_left_)
      bad("the metadata",
          "reuses shared objects far more often than DCP writes them (a memo bomb?)", Code::kLimit);
    elements_left_ -= units;
  }

  const std::string& file_;
  std::unordered_map<std::string, size_t> fqn_index_;
  uint64_t elements_left_;
  uint64_t check_work_left_;  // the chunk checks of all tensors together
};

}  // namespace

const Item* DcpMetadata::find(const std::string& fqn) const {
  for (const Item& it : items)
    if (it.fqn == fqn) return &it;
  return nullptr;
}

const StorageEntry* DcpMetadata::find_storage(const std::string& fqn,
                                              const std::vector<int64_t>* offsets) const {
  for (const StorageEntry& e : storage_data) {
    if (e.index.fqn != fqn || e.index.offset.has_value() != (offsets != nullptr)) continue;
    if (!offsets || *e.index.offset == *offsets) return &e;
  }
  return nullptr;
}

Result<DcpMetadata> parse_dcp_metadata(const uint8_t* data, size_t n, const std::string& file) {
  // pickle.dump without a protocol: DEFAULT_PROTOCOL, 4 (Python 3.8-3.13) or 5 (3.14+).
  if (n < 2 || data[0] != 0x80 || data[1] < 2 || data[1] > 5)
    return Status(Code::kCorrupt, file +
                                      ": not a pickle of protocol 2-5 (a DCP .metadata starts "
                                      "with PROTO 4 or 5)");
  UnpickleOptions opt;
  opt.context = file;
  opt.allow_objects = true;  // unknown classes become inert nodes; check_globals refuses them
  opt.check_global = vet_global;
  // Each memo entry costs one opcode byte: the input bounds the memo, so a large checkpoint's
  // metadata (millions of chunk entries) is not cut at the default.
  opt.limits.max_memo = std::max<size_t>(opt.limits.max_memo, n);
  Result<Unpickled> u = unpickle(data, n, opt);
  if (!u.ok()) return u.status();
  if (u->consumed != n)
    return Status(Code::kCorrupt, file + ": " + std::to_string(n - u->consumed) +
                                      " bytes after the pickle's STOP (a damaged .metadata?)");
  try {
    check_globals(*u->value, file);
    return Decoder(file, n).decode(*u->value);
  } catch (const Failure& f) {
    return Status(f.code, f.message);
  } catch (const std::bad_alloc&) {
    return Status(Code::kLimit, file + ": out of memory while decoding the DCP metadata");
  }
}

}  // namespace ckptio::dcp
