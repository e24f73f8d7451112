#include "host/render/json_encode.h"

#include "host/render/sha256.h"


#include <cmath>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <tuple>
#include <unordered_map>

namespace ckptio::host {
namespace {

using json = nlohmann::ordered_json;

std::string base64(const std::string& in) {
  static const char* kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

class Encoder {
 public:
  explicit Encoder(const Checkpoint& ckpt) : ckpt_(ckpt) {
    for (const auto& s : ckpt.storages) hash_budget_ += s.size;
    hash_budget_ = hash_budget_ * 16 + (1ull << 30);
  }

  // Refuses, before building anything, a tree whose shared sub-objects would expand past
  // the node budget (a small file can describe 2^40 nodes: [x, x] nested 40 times). Sizes
  // are counted once per distinct node and saturate, so this is linear in the file.
  void check_expansion(const ValuePtr& root) {
    std::unordered_map<const Value*, uint64_t> size;
    // Post-order without recursion: a node's size is 1 + its children's sizes.
    std::vector<std::pair<const Value*, bool>> stack{{root.get(), false}};
    auto children = [](const Value& n, auto&& fn) {
      for (const auto& c : n.items) fn(c.get());
      for (const auto& [k, v] : n.entries) fn(k.get()), fn(v.get());
      if (n.args) fn(n.args.get());
      if (n.state) fn(n.state.get());
    };
    while (!stack.empty()) {
      auto [n, done] = stack.back();
      stack.pop_back();
      if (!n || (!done && size.count(n))) continue;
      if (!done) {
        size[n] = 0;  // in progress; the unpickler refuses cycles, so it is never read
        stack.push_back({n, true});
        children(*n, [&](const Value* c) { if (c && !size.count(c)) stack.push_back({c, false}); });
        continue;
      }
      uint64_t total = 1;
      children(*n, [&](const Value* c) { total = std::min<uint64_t>(total + size[c], kMaxNodes + 1); });
      size[n] = total;
    }
    if (size[root.get()] > kMaxNodes)
      throw Error(Code::kLimit, ckpt_.path +
                                    ": value tree expands to more than 10,000,000 JSON nodes "
                                    "(shared sub-objects referenced many times); refusing to "
                                    "print it as JSON (plain `ckptio inspect` shows the "
                                    "references)");
  }

  json encode(const ValuePtr& v, size_t depth) {
    // Shared nodes are expanded; this budget stops a small file from unfolding into an
    // exponentially large document.
    if (++emitted_ > kMaxNodes)
      throw Error(Code::kLimit, ckpt_.path +
                                    ": value tree expands to more than 10,000,000 JSON nodes "
                                    "(shared sub-objects); refusing to print it");
    if (depth > kMaxTreeDepth)
      throw Error(Code::kLimit, ckpt_.path + ": value tree nested deeper than " +
                                    std::to_string(kMaxTreeDepth));
    const Value& n = *v;
    switch (n.kind) {
      case Kind::kNone: return nullptr;
      case Kind::kBool: return n.b;
      case Kind::kInt: return n.i;
      case Kind::kBigInt: return json{{"int", n.s}};
      case Kind::kFloat:
        if (std::isnan(n.f)) return json{{"float", "nan"}};
        if (std::isinf(n.f)) return json{{"float", n.f > 0 ? "inf" : "-inf"}};
        return n.f;
      case Kind::kStr: return n.s;
      case Kind::kBytes: return json{{"bytes", base64(n.s)}};
      case Kind::kList: {
        json a = json::array();
        for (const auto& item : n.items) a.push_back(encode(item, depth + 1));
        return a;
      }
      case Kind::kTuple: {
        json a = json::array();
        for (const auto& item : n.items) a.push_back(encode(item, depth + 1));
        return json{{"tuple", a}};
      }
      case Kind::kDict: {
        json pairs = json::array();
        for (const auto& [k, val] : n.entries)
          pairs.push_back(json::array({encode(k, depth + 1), encode(val, depth + 1)}));
        return json{{"dict", pairs}};
      }
      case Kind::kGlobal: return json{{"global", n.s}};
      case Kind::kObject: {
        json o = {{"object", n.s}};
        if (n.args) o["args"] = encode(n.args, depth + 1);
        if (n.state) o["state"] = encode(n.state, depth + 1);
        return o;
      }
      case Kind::kTensor: return json{{"tensor", tensor(n.tensor)}};
    }
    return nullptr;
  }

 private:
  static constexpr size_t kMaxNodes = 10'000'000;

  json tensor(const TensorMeta& t) {
    const StorageInfo& s = ckpt_.tree.storages.at(t.storage);
    json o;
    o["dtype"] = std::string(dtype_name(t.dtype));
    o["shape"] = t.shape;
    o["device"] = s.device;
    // The same view (a shared tensor, or tensors the file made identical) is hashed once,
    // and all hashing is bounded relative to the bytes the file holds: a small file may
    // reference one big storage through millions of distinct views.
    auto key = std::make_tuple(t.storage, t.dtype, t.storage_offset, t.shape, t.strides);
    auto cached = sha_cache_.find(key);
    std::string sha;
    if (cached != sha_cache_.end()) {
      sha = cached->second;
    } else {
      const uint64_t n = uint64_t(std::max<int64_t>(t.numel(), 0)) * dtype_size(t.dtype);
      if (n > hash_budget_)
        throw Error(Code::kLimit, ckpt_.path +
                                      ": tensor views cover far more bytes than the file holds "
                                      "(many overlapping views of the same storage); refusing "
                                      "to hash them all");
      hash_budget_ -= n;
      sha = tensor_sha256(ckpt_, t);
      sha_cache_.emplace(std::move(key), sha);
    }
    if (!sha.empty()) o["sha256"] = sha;
    o["strides"] = t.strides;
    o["storage_offset"] = t.storage_offset;
    o["storage"] = s.key;
    if (t.requires_grad) o["requires_grad"] = true;
    if (t.is_parameter) o["parameter"] = true;
    if (t.is_storage) o["is_storage"] = true;
    if (t.conj) o["conj"] = true;
    if (t.neg) o["neg"] = true;
    return o;
  }

  const Checkpoint& ckpt_;
  size_t emitted_ = 0;
  uint64_t hash_budget_ = 0;
  std::map<std::tuple<uint32_t, DType, int64_t, std::vector<int64_t>, std::vector<int64_t>>,
           std::string>
      sha_cache_;
};

}  // namespace

std::string tensor_sha256(const Checkpoint& ckpt, const TensorMeta& t) {
  if (t.storage >= ckpt.storages.size() || !ckpt.storages[t.storage].data) return "";
  const uint8_t* base = ckpt.storages[t.storage].data;
  const size_t elem = static_cast<size_t>(dtype_size(t.dtype));
  Sha256 sha;
  int64_t numel = t.numel();
  if (numel > 0) {
    // Contiguous tensors hash in one call; others walk the index space, gathering elements
    // into a buffer.
    bool contiguous = true;
    int64_t expect = 1;
    for (size_t d = t.shape.size(); d-- > 0;) {
      if (t.shape[d] != 1 && t.strides[d] != expect) contiguous = false;
      expect *= t.shape[d];
    }
    if (contiguous) {
      sha.update(base + t.storage_offset * elem, numel * elem);
    } else {
      std::vector<int64_t> idx(t.shape.size(), 0);
      std::vector<uint8_t> buf;
      buf.reserve(1 << 16);
      for (int64_t k = 0; k < numel; ++k) {
        int64_t off = t.storage_offset;
        for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * t.strides[d];
        const uint8_t* p = base + off * elem;
        buf.insert(buf.end(), p, p + elem);
        if (buf.size() >= (1 << 16)) {
          sha.update(buf.data(), buf.size());
          buf.clear();
        }
        for (size_t d = idx.size(); d-- > 0;) {
          if (++idx[d] < t.shape[d]) break;
          idx[d] = 0;
        }
      }
      sha.update(buf.data(), buf.size());
    }
  }
  return to_hex(sha.finish());
}

std::string inspect_json(const Checkpoint& ckpt, bool pretty) {
  Encoder enc(ckpt);
  enc.check_expansion(ckpt.tree.root);
  json doc;
  doc["format"] = ckpt.format;
  doc["plugin"] = ckpt.plugin_path;
  doc["path"] = ckpt.path;
  doc["storages"] = ckpt.tree.storages.size();
  doc["root"] = enc.encode(ckpt.tree.root, 0);
  return doc.dump(pretty ? 2 : -1, ' ', false, json::error_handler_t::replace);
}

}  // namespace ckptio::host
