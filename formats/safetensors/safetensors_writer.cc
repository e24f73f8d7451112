// write_safetensors: the tree flattened to name -> tensor, checked, and written as the
// reference writer lays a file out (safetensors.h).
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_set>
#include <vector>

#include "formats/safetensors/safetensors.h"
#include "formats/safetensors/safetensors_dedup.h"
#include "formats/safetensors/safetensors_dtype.h"

namespace ckptio {
namespace {

using json = nlohmann::ordered_json;
using safetensors::STDType;
using safetensors::TensorSpan;

constexpr uint64_t kChunk = 1 << 20;

struct OutTensor {
  std::string name;
  const STDType* st;
  TensorMeta meta;
  uint64_t nbytes = 0;
};

// Forwards only bytes [begin, begin + n) of what is written to it: a contiguous slice of a
// storage streams through without a copy of the whole storage.
class RangeSink final : public ByteSink {
 public:
  RangeSink(ByteSink& out, uint64_t begin, uint64_t n)
      : out_(out), begin_(begin), end_(begin + n) {}
  Status write(const void* data, uint64_t n) override {
    const uint64_t lo = std::max(pos_, begin_), hi = std::min(pos_ + n, end_);
    Status st;
    if (lo < hi) st = out_.write(static_cast<const uint8_t*>(data) + (lo - pos_), hi - lo);
    pos_ += n;
    return st;
  }

 private:
  ByteSink& out_;
  uint64_t begin_, end_, pos_ = 0;
};

// "an int", "a dict", "None" for messages.
std::string a_kind(Kind kind) {
  const std::string name = kind_name(kind);
  if (kind == Kind::kNone) return name;
  return (std::string("aeiou").find(name[0]) != std::string::npos ? "an " : "a ") + name;
}

class Writer {
 public:
  Writer(ByteSink& out, const Tree& tree, const StorageWriter& bytes,
         const SafetensorsWriteOptions& o)
      : out_(out), tree_(tree), bytes_(bytes), o_(o), file_(o.context) {}

  Status run() {
    if (!tree_.root || tree_.root->kind != Kind::kDict)
      return refuse(std::string("the checkpoint's root is ") +
                    (tree_.root ? a_kind(tree_.root->kind) : "missing") +
                    ", not a dict; safetensors holds a dict of name -> tensor");
    metadata_["format"] = "pt";
    CKPTIO_RETURN_IF_ERROR(collect(*tree_.root, "", 0));
    for (const auto& [k, v] : o_.metadata) metadata_[k] = v;
    CKPTIO_RETURN_IF_ERROR(check_sharing());
    // The reference writer's order: dtype rank descending, then name.
    std::sort(tensors_.begin(), tensors_.end(), [](const OutTensor& a, const OutTensor& b) {
      return a.st->rank != b.st->rank ? a.st->rank > b.st->rank : a.name < b.name;
    });
    CKPTIO_RETURN_IF_ERROR(write_header());
    for (const OutTensor& t : tensors_) CKPTIO_RETURN_IF_ERROR(write_tensor(t));
    return Status::Ok();
  }

 private:
  Status refuse(const std::string& why) { return Status(Code::kUnsupported, file_ + ": " + why); }

  Status collect(const Value& dict, const std::string& prefix, size_t depth) {
    if (depth > kMaxTreeDepth) return refuse("'" + prefix + "' is nested too deeply");
    // A state_dict's _metadata (dict attributes) has no place in safetensors: dropped.
    for (const auto& [k, v] : dict.entries) {
      if (!k || k->kind != Kind::kStr)
        return refuse("a key of " +
                      (prefix.empty() ? std::string("the root dict")
                                      : "'" + prefix.substr(0, prefix.size() - 1) + "'") +
                      " is " + (k ? a_kind(k->kind) : "missing") +
                      "; safetensors names are strings");
      const std::string name = prefix + k->s;
      if (!v) return refuse("'" + name + "' has no value");
      if (v->kind == Kind::kTensor) {
        CKPTIO_RETURN_IF_ERROR(add_tensor(name, *v));
      } else if (v->kind == Kind::kDict && prefix.empty() && name == "__metadata__") {
        CKPTIO_RETURN_IF_ERROR(add_metadata(*v));
      } else if (v->kind == Kind::kDict) {
        CKPTIO_RETURN_IF_ERROR(collect(*v, name + ".", depth + 1));
      } else {
        return refuse("'" + name + "' is " + a_kind(v->kind) +
                      ", not a tensor; safetensors holds only tensors (save a state_dict)");
      }
    }
    return Status::Ok();
  }

  Status add_metadata(const Value& dict) {
    for (const auto& [k, v] : dict.entries) {
      if (!k || !v || k->kind != Kind::kStr || v->kind != Kind::kStr)
        return refuse("'__metadata__' must map str to str");
      metadata_[k->s] = v->s;
    }
    return Status::Ok();
  }

  Status add_tensor(const std::string& name, const Value& v) {
    if (name == "__metadata__") return refuse("a tensor cannot be named '__metadata__'");
    if (!names_.insert(name).second)
      return refuse("two tensors flatten to the name '" + name + "'");
    const TensorMeta& m = v.tensor;
    if (m.is_storage) return refuse("'" + name + "' is a bare storage, not a tensor");
    if (m.conj || m.neg)
      return refuse("'" + name + "' is a lazily conjugated or negated view; resolve it first");
    OutTensor t;
    t.name = name;
    t.st = safetensors::dtype_by_ckptio(m.dtype);
    if (!t.st)
      return refuse("'" + name + "' is " + std::string(dtype_name(m.dtype)) +
                    ", which safetensors has no dtype for");
    if (m.dtype == DType::kFloat4_e2m1fn_x2 && m.shape.empty())
      return refuse("'" + name +
                    "' is a 0-dim float4_e2m1fn_x2 (two F4 values), which has no F4 shape");
    CKPTIO_RETURN_IF_ERROR(check_tensor_view(m, tree_.storages, file_ + ": tensor '" + name + "'"));
    t.meta = m;
    t.nbytes = uint64_t(m.numel()) * uint64_t(dtype_size(m.dtype));
    tensors_.push_back(std::move(t));
    return Status::Ok();
  }

  // Overlapping tensors in one storage: refused by name, or dropped as save_model does.
  Status check_sharing() {
    std::vector<TensorSpan> spans;
    for (const OutTensor& t : tensors_) {
      const uint64_t es = uint64_t(dtype_size(t.meta.dtype));
      TensorSpan s;
      s.name = t.name;
      s.storage = t.meta.storage;
      s.storage_nbytes = tree_.storages[t.meta.storage].nbytes;
      s.begin = s.end = uint64_t(t.meta.storage_offset) * es;
      if (t.nbytes) {
        uint64_t last = 0;  // the element furthest from the first one
        for (size_t k = 0; k < t.meta.shape.size(); ++k)
          last += uint64_t(t.meta.strides[k]) * uint64_t(t.meta.shape[k] - 1);
        s.end = s.begin + (last + 1) * es;
      }
      s.complete = s.begin == 0 && t.nbytes == s.storage_nbytes;
      spans.push_back(std::move(s));
    }
    if (!o_.dedup) {
      auto groups = safetensors::shared_groups(spans);
      if (groups.empty()) return Status::Ok();
      std::string names;
      for (const std::string& n : groups[0]) names += (names.empty() ? "'" : ", '") + n + "'";
      return refuse("tensors " + names +
                    " share memory; safetensors cannot hold shared tensors (--option dedup=1"
                    " keeps one name, as safetensors.torch.save_model does)");
    }
    CKPTIO_ASSIGN_OR_RETURN(auto drop, safetensors::names_to_drop(spans, file_));
    tensors_.erase(std::remove_if(tensors_.begin(), tensors_.end(),
                                  [&](const OutTensor& t) { return drop.count(t.name) > 0; }),
                   tensors_.end());
    for (const auto& [dropped, kept] : drop) metadata_.emplace(dropped, kept);  // user's win
    return Status::Ok();
  }

  Status write_header() {
    json header = json::object();
    json& meta = header["__metadata__"] = json::object();
    for (const auto& [k, v] : metadata_) meta[k] = v;
    uint64_t pos = 0;
    for (const OutTensor& t : tensors_) {
      std::vector<int64_t> shape = t.meta.shape;
      if (t.st->bits == 4) shape.back() *= 2;  // float4_e2m1fn_x2 holds two F4 elements
      json& e = header[t.name] = json::object();
      e["dtype"] = t.st->name;
      e["shape"] = shape;
      e["data_offsets"] = {pos, pos + t.nbytes};
      pos += t.nbytes;
    }
    std::string text;
    try {
      text = header.dump();
    } catch (const json::exception&) {
      return Status(Code::kInvalidArgument,
                    file_ + ": a tensor name or metadata string is not valid UTF-8");
    }
    if (text.size() > kSafetensorsMaxHeader)
      return Status(Code::kLimit, file_ + ": the safetensors header would be " +
                                      std::to_string(text.size()) + " bytes, over the limit of " +
                                      std::to_string(kSafetensorsMaxHeader));
    text.append((8 - text.size() % 8) % 8, ' ');  // the data start 8-aligned, as the reference
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
    CKPTIO_RETURN_IF_ERROR(out_.write(len, 8));
    return out_.write(text.data(), text.size());
  }

  static bool contiguous(const TensorMeta& m) {
    int64_t expect = 1;
    for (size_t k = m.shape.size(); k-- > 0;) {
      if (m.shape[k] != 1 && m.strides[k] != expect) return false;
      expect *= m.shape[k];
    }
    return true;
  }

  Status write_tensor(const OutTensor& t) {
    if (t.nbytes == 0) return Status::Ok();
    const uint64_t es = uint64_t(dtype_size(t.meta.dtype));
    const uint64_t storage_nbytes = tree_.storages[t.meta.storage].nbytes;
    if (contiguous(t.meta)) {
      const uint64_t begin = uint64_t(t.meta.storage_offset) * es;
      if (begin == 0 && t.nbytes == storage_nbytes) return bytes_(t.meta.storage, out_);
      RangeSink slice(out_, begin, t.nbytes);
      return bytes_(t.meta.storage, slice);
    }
    // A strided view: gathered row-major from the storage's bytes, one element at a time.
    if (cached_ != t.meta.storage) {
      StringSink whole;
      CKPTIO_RETURN_IF_ERROR(bytes_(t.meta.storage, whole));
      if (whole.out.size() != storage_nbytes)
        return Status(Code::kInternal, file_ + ": storage of '" + t.name + "' came short");
      cache_ = std::move(whole.out);
      cached_ = t.meta.storage;
    }
    const TensorMeta& m = t.meta;
    const size_t nd = m.shape.size();
    std::vector<int64_t> idx(nd, 0);
    std::string buf;
    buf.reserve(kChunk);
    for (uint64_t i = 0, n = t.nbytes / es; i < n; ++i) {
      int64_t off = m.storage_offset;
      for (size_t k = 0; k < nd; ++k) off += idx[k] * m.strides[k];
      buf.append(cache_.data() + uint64_t(off) * es, es);
      if (buf.size() >= kChunk) {
        CKPTIO_RETURN_IF_ERROR(out_.write(buf.data(), buf.size()));
        buf.clear();
      }
      for (size_t k = nd; k-- > 0;) {
        if (++idx[k] < m.shape[k]) break;
        idx[k] = 0;
      }
    }
    return out_.write(buf.data(), buf.size());
  }

  ByteSink& out_;
  const Tree& tree_;
  const StorageWriter& bytes_;
  const SafetensorsWriteOptions& o_;
  const std::string& file_;
  std::vector<OutTensor> tensors_;
  std::unordered_set<std::string> names_;
  std::map<std::string, std::string> metadata_;  // sorted: deterministic
  std::string cache_;
  uint32_t cached_ = UINT32_MAX;
};

}  // namespace

Status write_safetensors(ByteSink& out, const Tree& tree, const StorageWriter& storage_bytes,
                         const SafetensorsWriteOptions& options) {
  return Writer(out, tree, storage_bytes, options).run();
}

}  // namespace ckptio
