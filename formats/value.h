// The value tree: the one data model every format decodes to and encodes from.
//
// A Value is a node; containers hold shared pointers to their children, so a sub-object that
// the file references twice (a pickle memo hit) is one node referenced twice: the tree is a
// DAG and is never expanded. Tensors do not own bytes: they are views (dtype, shape, strides,
// offset) onto an entry of Tree::storages, and tensors that shared a storage in Python refer
// to the same index. Who owns the bytes depends on the layer: formats/ only records where they
// are in the file; the host allocates, maps or fills them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

// Relative includes: the installed copy (<ckptio/formats/>) needs no extra include path.
#include "dtype.h"
#include "export.h"
#include "status.h"

namespace ckptio {

enum class Kind : uint8_t {
  kNone,
  kBool,
  kInt,     // fits int64
  kBigInt,  // Python int outside int64; `s` holds its exact decimal text ("-123...")
  kFloat,
  kStr,     // UTF-8 in `s`
  kBytes,   // raw bytes in `s`
  kList,
  kTuple,
  kDict,    // ordered pairs in `entries`; keys may be any value
  kTensor,  // `tensor`
  kGlobal,  // a reference to an allow-listed global, e.g. "torch.float32" (a dtype value)
  kObject,  // an instance of class `s` built from `args` (REDUCE/NEWOBJ) and `state` (BUILD):
            // allow-listed value types (torch.device, torch.Size, builtins.set, complex, ...)
            // and, only when the caller opts in, opaque instances of unknown classes
};

CKPTIO_API const char* kind_name(Kind kind);

struct CKPTIO_API TensorMeta {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements
  int64_t storage_offset = 0;    // in elements of `dtype`
  uint32_t storage = 0;          // index into Tree::storages
  bool requires_grad = false;
  bool is_parameter = false;     // pickled through torch._utils._rebuild_parameter
  bool is_storage = false;       // a bare storage object (1-D view of `shape[0]` elements)
  bool conj = false;             // 2.x math bits from the rebuild metadata dict
  bool neg = false;

  int64_t numel() const;  // product of shape; 1 for 0-dim
};

struct Value;
using ValuePtr = std::shared_ptr<Value>;

// The deepest value tree ckptio builds, walks or writes (containers inside containers), the
// one limit every recursive walk and the tree builder share: deeper is refused with one
// error (kLimit, or kInvalidArgument for a tree handed to a writer) instead of exhausting a
// thread's stack, sanitizer builds' larger frames included. The pickle reader's own nesting
// limit (PickleLimits::max_depth) has the same default. Real checkpoints nest a few dozen
// levels at most.
constexpr size_t kMaxTreeDepth = 1000;

struct CKPTIO_API Value {
  Kind kind = Kind::kNone;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;  // kStr, kBytes, kBigInt (decimal), kGlobal and kObject (dotted name)
  std::vector<ValuePtr> items;                          // kList, kTuple
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;   // kDict
  bool ordered = false;   // kDict: collections.OrderedDict rather than dict
  ValuePtr attrs;         // kDict: instance __dict__ set by BUILD (a state_dict's _metadata)
  ValuePtr args;          // kObject: constructor arguments (a tuple), may be null
  ValuePtr state;         // kObject: BUILD state, may be null
  TensorMeta tensor;      // kTensor

  static ValuePtr none();
  static ValuePtr boolean(bool v);
  static ValuePtr integer(int64_t v);
  static ValuePtr big_integer(std::string decimal);
  static ValuePtr floating(double v);
  static ValuePtr str(std::string v);
  static ValuePtr bytes(std::string v);
  static ValuePtr list(std::vector<ValuePtr> items = {});
  static ValuePtr tuple(std::vector<ValuePtr> items = {});
  static ValuePtr dict(bool ordered = false);
  static ValuePtr global(std::string dotted_name);
  static ValuePtr object(std::string class_name, ValuePtr args, ValuePtr state = nullptr);
  static ValuePtr make_tensor(TensorMeta meta);

  bool is_str(const char* text) const { return kind == Kind::kStr && s == text; }
  // Looks a string key up in a dict; null when absent or not a dict.
  ValuePtr get(const std::string& key) const;
};

// A storage as the file describes it. Bytes are not here (see the layer's docs).
struct StorageInfo {
  std::string key;               // name in the file: zip record data/<key>, legacy key
  DType dtype = DType::kUInt8;   // element type the file declares (uint8 for UntypedStorage)
  uint64_t nbytes = 0;
  std::string device = "cpu";    // saved location tag: "cpu", "cuda:1", "mps", ...
};

struct Tree {
  ValuePtr root;
  std::vector<StorageInfo> storages;
};

// Checks that a tensor view stays inside its storage, with overflow-safe arithmetic:
// offset >= 0, sizes >= 0, strides >= 0, and the last element addressed fits in the bytes.
// `where` names the tensor for the message (e.g. "key 'fc1.weight'").
CKPTIO_API Status check_tensor_view(const TensorMeta& t, const std::vector<StorageInfo>& storages,
                         const std::string& where);
// True exactly when check_tensor_view would accept the view (of `storage_nbytes` bytes, or of
// storages[t.storage]): loops over many tensors test this first and build the `where` text
// only for the one that fails.
CKPTIO_API bool tensor_view_fits(const TensorMeta& t, uint64_t storage_nbytes);
CKPTIO_API bool tensor_view_fits(const TensorMeta& t, const std::vector<StorageInfo>& storages);

// Calls fn(tensor_value, path) for every tensor reachable from root, each node once, in
// depth-first order. `path` is a human-readable location ("['model']['fc1.weight']").
template <class Fn>
void for_each_tensor(const ValuePtr& root, Fn&& fn);

}  // namespace ckptio

#include "value_walk.h"
