// The readers and writers every optimizer codec uses (see optimizer_codec.h).
#include "optimizer_codec.h"

#include <cmath>

namespace ckptio::optim_codec {
namespace {

std::string shape_text(c10::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

void fail(Code code, const std::string& msg) { throw Error(code, msg); }

std::string keys_text(const Value& d) {
  std::string out;
  for (const auto& [k, v] : d.entries) {
    if (!out.empty()) out += ", ";
    out += k->kind == Kind::kStr ? k->s : k->kind == Kind::kInt ? std::to_string(k->i) : "?";
  }
  return out;
}

ValuePtr required(const ValuePtr& d, const char* key, const std::string& where) {
  ValuePtr v = d->get(key);
  if (!v) fail(Code::kInvalidArgument, where + ": no '" + key + "' (keys: " + keys_text(*d) + ")");
  return v;
}

double ValueReader::number(const ValuePtr& v, const std::string& where) const {
  if (v->kind == Kind::kFloat) return v->f;
  if (v->kind == Kind::kInt) return static_cast<double>(v->i);
  if (v->kind == Kind::kTensor) {  // 2.x may keep lr (and step) as a tensor
    torch::Tensor t = tensor_of(v);
    if (t.numel() == 1) return t.detach().to(torch::kCPU).to(torch::kDouble).item<double>();
    fail(Code::kInvalidArgument,
         where + ": a tensor of shape " + shape_text(t.sizes()) + ", expected a number");
  }
  fail(Code::kInvalidArgument, where + ": " + kind_name(v->kind) + ", expected a number");
}

int64_t ValueReader::step(const ValuePtr& v, const std::string& where) const {
  double d = number(v, where);
  if (!(d >= 0) || d > 9.0e15 || d != std::floor(d))
    fail(Code::kInvalidArgument, where + ": " + std::to_string(d) + " is not a step count");
  return static_cast<int64_t>(d);
}

bool ValueReader::boolean(const ValuePtr& v, const std::string& where) const {
  if (v->kind == Kind::kBool) return v->b;
  if (v->kind == Kind::kInt && (v->i == 0 || v->i == 1)) return v->i == 1;
  fail(Code::kInvalidArgument, where + ": " + kind_name(v->kind) + ", expected a bool");
}

torch::Tensor ValueReader::like_param(const ValuePtr& v, const torch::Tensor& param,
                                      const std::string& where) const {
  if (v->kind != Kind::kTensor)
    fail(Code::kInvalidArgument, where + ": " + kind_name(v->kind) + ", expected a tensor");
  torch::Tensor t = tensor_of(v);
  if (t.sizes() != param.sizes())
    fail(Code::kInvalidArgument, where + ": shape " + shape_text(t.sizes()) +
                                     ", the parameter has " + shape_text(param.sizes()));
  auto options = t.options().device(param.device());
  if (c10::isFloatingType(t.scalar_type()) && c10::isFloatingType(param.scalar_type()))
    options = options.dtype(param.scalar_type());
  return t.detach().to(options, /*non_blocking=*/false, /*copy=*/true);
}

torch::Tensor StateReader::tensor(const char* k) const {
  return r.like_param(required(state, k, where), param, key_path(where, k));
}

torch::Tensor StateReader::optional_tensor(const char* k) const {
  ValuePtr v = state->get(k);
  return v && v->kind != Kind::kNone ? r.like_param(v, param, key_path(where, k)) : torch::Tensor();
}

int64_t StateReader::step() const {
  return r.step(required(state, "step", where), key_path(where, "step"));
}

ValuePtr StateWriter::tensor_value(const torch::Tensor& t) const { return b.tensor(t.detach()); }

void StateWriter::step_tensor(int64_t step) const {
  put(state, "step", b.tensor(torch::scalar_tensor(static_cast<double>(step), torch::kFloat32)));
}

}  // namespace ckptio::optim_codec
