// Private to libckptio_torch: one torch::optim class's side of optim.cc's conversion.
//
// Each class ckptio converts is one Codec in its own file (optim/sgd.cc, adam.cc, ...) that
// holds all that class needs: the param_group keys and their order as PyTorch 1.13 writes
// them, its per-parameter state keys, and how to read both back. optim.cc keeps what every
// optimizer shares (numbering parameters across groups, matching groups and parameters,
// staging a load so that a failed one changes nothing) and finds the codec in its table.
// A new optimizer is a new file, a line in that table and one in CMakeLists.txt.
#pragma once

#include <torch/optim/optimizer.h>

#include <cstdint>
#include <memory>
#include <string>

#include "ckptio/optim.h"

namespace ckptio::optim_codec {

namespace optim = torch::optim;

[[noreturn]] void fail(Code code, const std::string& msg);
std::string keys_text(const Value& dict);
// d[key], or an error naming `where` and listing the keys d has.
ValuePtr required(const ValuePtr& d, const char* key, const std::string& where);

// Where a message points, in the one path syntax (docs/cpp-api.md, "Paths"): the
// optimizer state_dict's name, then Python subscripts, optimizer_state_dict['state'][0]['step'].
// Keys here are the optimizers' own identifiers, so they need no escaping.
inline std::string key_path(const std::string& where, const char* key) {
  return where + "['" + key + "']";
}
inline std::string index_path(const std::string& where, int64_t i) {
  return where + "[" + std::to_string(i) + "]";
}

inline void put(const ValuePtr& d, const char* key, ValuePtr v) {
  d->entries.emplace_back(Value::str(key), std::move(v));
}
inline ValuePtr num(double v) { return Value::floating(v); }

template <class Class>
bool is_a(const optim::Optimizer& opt) {
  return dynamic_cast<const Class*>(&opt) != nullptr;
}

// Python values read as LibTorch wants them; `where` names the key in messages.
struct ValueReader {
  const TensorAccessor& tensor_of;

  double number(const ValuePtr& v, const std::string& where) const;
  int64_t step(const ValuePtr& v, const std::string& where) const;
  bool boolean(const ValuePtr& v, const std::string& where) const;
  // The state tensor for `param`: shape checked, copied to its device (and dtype, when both
  // are floating point).
  torch::Tensor like_param(const ValuePtr& v, const torch::Tensor& param,
                           const std::string& where) const;
};

// One Python param_group. Keys absent in the file leave the setter uncalled, so the
// optimizer's own value stays.
struct GroupReader {
  const ValuePtr& group;
  const ValueReader& r;
  const std::string& where;

  std::string key(const char* k) const { return key_path(where, k); }
  template <class Setter>
  void number(const char* k, Setter&& set) const {
    if (ValuePtr v = group->get(k)) set(r.number(v, key(k)));
  }
  template <class Setter>
  void boolean(const char* k, Setter&& set) const {
    if (ValuePtr v = group->get(k)) set(r.boolean(v, key(k)));
  }
};

// One parameter's Python state dict.
struct StateReader {
  const ValuePtr& state;
  const torch::Tensor& param;
  const ValueReader& r;
  const std::string& where;

  torch::Tensor tensor(const char* k) const;
  // Undefined when the key is absent or None.
  torch::Tensor optional_tensor(const char* k) const;
  int64_t step() const;
};

// One parameter's state as Python writes it, tensors added to the checkpoint being built.
struct StateWriter {
  const ValuePtr& state;
  CheckpointBuilder& b;

  ValuePtr tensor_value(const torch::Tensor& t) const;
  void tensor(const char* k, const torch::Tensor& t) const { put(state, k, tensor_value(t)); }
  // Python leaves out the buffers an option did not ask for (amsgrad, momentum, centered).
  void optional_tensor(const char* k, const torch::Tensor& t) const {
    if (t.defined()) tensor(k, t);
  }
  // Python 1.12+ keeps Adam/AdamW/Adagrad 'step' as a 0-dim float32 CPU tensor.
  void step_tensor(int64_t step) const;
};

struct Codec {
  const char* name;  // the class in messages, as torch::optim names it
  // The param_group key only this class writes: catches e.g. Adam state loaded into SGD.
  const char* signature;
  bool (*matches)(const optim::Optimizer&);

  // Saving: the group's keys in the 1.13 class's order ('params' is added after them).
  void (*write_group)(const optim::OptimizerOptions&, const ValuePtr& group);
  void (*write_state)(const optim::OptimizerParamState&, const StateWriter&);

  // Loading; throwing is fine, nothing has changed yet. read_group sets a clone of the
  // optimizer's options from the file.
  void (*read_group)(optim::OptimizerOptions&, const GroupReader&);
  // Null when the file has nothing the optimizer keeps, so it starts that parameter afresh.
  std::unique_ptr<optim::OptimizerParamState> (*read_state)(const optim::OptimizerOptions&,
                                                            const StateReader&);
  // For a class that needs state for every parameter (Adagrad): what its constructor would
  // make for one the file has none for. Null for the others.
  std::unique_ptr<optim::OptimizerParamState> (*fresh_state)(const optim::OptimizerOptions&,
                                                             const torch::Tensor& param);
};

extern const Codec kSGD;
extern const Codec kAdam;
extern const Codec kAdamW;
extern const Codec kRMSprop;
extern const Codec kAdagrad;

}  // namespace ckptio::optim_codec
