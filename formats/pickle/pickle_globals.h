// Private to formats/pickle: what the allow-listed pickle globals mean. The VM (unpickler.cc)
// handles opcodes; this layer resolves GLOBAL names and implements REDUCE, NEWOBJ and BUILD
// for the globals torch checkpoints use, in C++, without ever calling Python code.
#pragma once

#include <cstddef>
#include <string>

#include "formats/value.h"

namespace ckptio {
namespace pickle_detail {

struct NumpyContext;  // pickle_numpy.h

struct CallSite {
  size_t offset = 0;              // the opcode's byte offset, for messages
  bool allow_objects = false;     // unknown globals become opaque kObject nodes
  NumpyContext* numpy = nullptr;  // the run's numpy state (array storages); null: no arrays
};

// Python 3's view of a pickle global (fix_imports: __builtin__ -> builtins, ...), joined.
std::string normalize_global_name(const std::string& module, const std::string& name);

// GLOBAL / STACK_GLOBAL / INST: returns a kGlobal holding the canonical dotted name (dtype
// aliases become "torch.float32"), or throws kForbidden unless site.allow_objects.
ValuePtr resolve_global(const std::string& module, const std::string& name, const CallSite& site);
bool is_allow_listed(const std::string& dotted);

// REDUCE: callable(*args). `args` must be a tuple.
ValuePtr reduce(const ValuePtr& callable, const ValuePtr& args, const CallSite& site);
// NEWOBJ / NEWOBJ_EX: cls.__new__(cls, *args).
ValuePtr new_object(const ValuePtr& cls, const ValuePtr& args, const CallSite& site);
// BUILD: applies `state` to `obj` in place.
void build(const ValuePtr& obj, const ValuePtr& state, const CallSite& site);

// The torch._utils tensor rebuild functions (pickle_tensor_rebuild.cc). Returns null when
// `name` is not one of them.
ValuePtr rebuild_tensor_call(const std::string& name, const Value& args, const CallSite& site);
bool is_tensor_rebuild_function(const std::string& name);
// torch.FloatTensor, torch.cuda.sparse.LongTensor, ...: allow-listed as values.
bool is_tensor_type_class(const std::string& dotted);
// REDUCE / NEWOBJ of torch.Tensor, a tensor type class or a storage class: throws
// kUnsupported saying why; returns when `fn` is none of them.
void refuse_tensor_constructor(const std::string& fn, const CallSite& site);
// Why a global that torch itself registers as safe (nested jagged tensors, DTensor) is
// refused, or null for any other global.
const char* refused_torch_global_reason(const std::string& dotted);

// Argument checks shared by the call implementations; they throw kCorrupt naming `fn`.
void expect_arity(const std::string& fn, const Value& args, size_t min, size_t max,
                  const CallSite& site);
int64_t int_arg(const std::string& fn, const Value& args, size_t i, const char* what,
                const CallSite& site);
bool bool_arg(const std::string& fn, const Value& args, size_t i, const char* what,
              const CallSite& site);
const std::string& str_arg(const std::string& fn, const Value& args, size_t i, const char* what,
                           const CallSite& site);
// A tuple or list of ints (torch.Size arrives as a tuple).
std::vector<int64_t> int_seq_arg(const std::string& fn, const Value& args, size_t i,
                                 const char* what, const CallSite& site);
[[noreturn]] void bad_arg(const std::string& fn, size_t i, const char* what, const char* expected,
                          const Value* got, const CallSite& site);

}  // namespace pickle_detail
}  // namespace ckptio
