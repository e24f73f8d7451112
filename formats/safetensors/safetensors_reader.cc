// read_safetensors: the header parsed strictly (safetensors.h), every tensor located.
#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_set>
#include <vector>

#include "formats/safetensors/safetensors.h"
#include "formats/safetensors/safetensors_dtype.h"

namespace ckptio {
namespace {

using json = nlohmann::ordered_json;  // keeps the header's order (ties, metadata)
using safetensors::STDType;

constexpr size_t kMaxDims = 64;  // the host's limit on a tensor's rank

struct Entry {
  std::string name;
  const STDType* st;
  std::vector<int64_t> shape;  // ckptio's (F4: last dimension halved)
  uint64_t begin = 0, end = 0;
};

struct Header {
  std::vector<Entry> tensors;
  bool has_metadata = false;
  std::vector<std::pair<std::string, std::string>> metadata;
};

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

std::string quoted_char(char c) {
  if (c >= 0x20 && c < 0x7f) return std::string("'") + c + "'";
  static const char kHex[] = "0123456789abcdef";
  return std::string("byte 0x") + kHex[uint8_t(c) >> 4] + kHex[uint8_t(c) & 15];
}

std::string range_text(const Entry& e) {
  return "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
}

// Parses one header; every error is a Status naming `file` (and the tensor).
class HeaderParser {
 public:
  explicit HeaderParser(const std::string& file) : file_(file) {}

  Result<Header> parse(const char* text, size_t n, uint64_t data_size) {
    // The reference reads any JSON object, blanks before it included (the spec's "starts
    // with '{'" is its writer's); anything but an object is refused before parsing it.
    size_t first = 0;
    while (first < n && std::strchr(" \t\r\n", text[first]) && text[first]) ++first;
    if (first == n || text[first] != '{')
      return corrupt("safetensors header is not a JSON object" +
                     (first == n ? std::string(" (it is blank)")
                                 : " (it starts with " + quoted_char(text[first]) + ")"));
    json root;
    std::string duplicate;
    if (!parse_json(text, n, &root, &duplicate)) return status_;
    if (!duplicate.empty()) return corrupt("safetensors header names '" + duplicate + "' twice");
    if (!root.is_object()) return corrupt("safetensors header is not a JSON object");
    Header h;
    for (const auto& [name, info] : root.items()) {
      if (name == "__metadata__") {
        if (!metadata(info, &h)) return status_;
        continue;
      }
      Entry e;
      e.name = name;
      if (!tensor(info, &e)) return status_;
      h.tensors.push_back(std::move(e));
    }
    if (!tile(&h.tensors, data_size)) return status_;
    return h;
  }

 private:
  bool parse_json(const char* text, size_t n, json* root, std::string* duplicate) {
    // nlohmann keeps one of two equal keys silently. A tensor name, or a field of a
    // tensor, given twice is ambiguous and the reference refuses it; so are they here. In
    // "__metadata__" (a string map) the reference keeps the last value, and so does this.
    struct Keys {
      std::unordered_set<std::string> seen;
      bool check;
    };
    std::vector<Keys> keys;
    std::string root_key;  // the root's key whose value is being parsed
    json::parser_callback_t cb = [&](int, json::parse_event_t ev, json& parsed) {
      if (ev == json::parse_event_t::object_start) {
        keys.push_back({{}, !(keys.size() == 1 && root_key == "__metadata__")});
      } else if (ev == json::parse_event_t::object_end) {
        keys.pop_back();
      } else if (ev == json::parse_event_t::key && !keys.empty()) {
        const std::string& k = parsed.get_ref<const std::string&>();
        if (keys.size() == 1) root_key = k;
        if (keys.back().check && !keys.back().seen.insert(k).second && duplicate->empty())
          *duplicate = k;
      }
      return true;
    };
    try {
      *root = json::parse(text, text + n, cb);
    } catch (const json::exception& e) {
      return fail("safetensors header is not valid JSON: " + one_line(e.what()));
    }
    return true;
  }

  bool metadata(const json& info, Header* h) {
    if (info.is_null()) return true;  // the reference reads null as no metadata
    if (!info.is_object()) return fail("__metadata__ is not an object of strings");
    h->has_metadata = true;
    for (const auto& [k, v] : info.items()) {
      if (!v.is_string()) return fail("__metadata__ '" + k + "' is not a string");
      h->metadata.emplace_back(k, v.get<std::string>());
    }
    return true;
  }

  bool uint_of(const std::string& name, const char* field, const json& v, uint64_t* out) {
    if (v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)) {
      *out = v.get<uint64_t>();
      return true;
    }
    return fail("tensor '" + name + "': " + field + " holds " + one_line(v.dump()) +
                ", not a non-negative integer");
  }

  bool tensor(const json& info, Entry* e) {
    const std::string& name = e->name;
    if (!info.is_object()) return fail("tensor '" + name + "' is not a JSON object");
    const json *dt = nullptr, *shape = nullptr, *off = nullptr;
    const std::pair<const char*, const json**> fields[] = {
        {"dtype", &dt}, {"shape", &shape}, {"data_offsets", &off}};
    for (const auto& [key, p] : fields) {
      auto it = info.find(key);
      if (it == info.end()) return fail("tensor '" + name + "' has no " + key);
      *p = &*it;
    }
    if (!dt->is_string()) return fail("tensor '" + name + "': dtype is not a string");
    const std::string& dname = dt->get_ref<const std::string&>();
    e->st = safetensors::dtype_by_name(dname);
    if (!e->st) return fail("tensor '" + name + "': unknown dtype '" + one_line(dname) + "'");
    if (!e->st->dtype)
      return fail("tensor '" + name + "': dtype " + dname +
                      " (6-bit floats) has no torch or ckptio equivalent",
                  Code::kUnsupported);
    if (!shape->is_array()) return fail("tensor '" + name + "': shape is not an array");
    if (shape->size() > kMaxDims)
      return fail("tensor '" + name + "' has " + std::to_string(shape->size()) +
                      " dimensions (limit " + std::to_string(kMaxDims) + ")",
                  Code::kLimit);
    unsigned __int128 numel = 1;
    bool overflow = false;
    for (const json& d : *shape) {
      uint64_t n = 0;
      if (!uint_of(name, "shape", d, &n)) return false;
      overflow |= n > uint64_t(INT64_MAX);
      numel *= n;
      overflow |= numel > (unsigned __int128)(UINT64_MAX);
      e->shape.push_back(static_cast<int64_t>(n));
    }
    if (!off->is_array() || off->size() != 2)
      return fail("tensor '" + name + "': data_offsets is not [begin, end]");
    if (!uint_of(name, "data_offsets", (*off)[0], &e->begin) ||
        !uint_of(name, "data_offsets", (*off)[1], &e->end))
      return false;
    if (e->end < e->begin)
      return fail("tensor '" + name + "': " + range_text(*e) + " end before they begin");
    const std::string shape_text = one_line(shape->dump());
    if (overflow)
      return fail("tensor '" + name + "': shape " + shape_text + " overflows", Code::kLimit);
    const unsigned __int128 bits = numel * unsigned(e->st->bits);
    if (bits % 8)
      return fail("tensor '" + name + "': shape " + shape_text + " of " + dname +
                  " is not a whole number of bytes");
    if (bits / 8 != e->end - e->begin)
      return fail("tensor '" + name + "': shape " + shape_text + " of " + dname + " needs " +
                  std::to_string(uint64_t(bits / 8)) + " bytes but " + range_text(*e) + " span " +
                  std::to_string(e->end - e->begin));
    if (e->st->bits == 4) {
      // torch's float4_e2m1fn_x2 holds two F4 elements: the last dimension halves.
      if (e->shape.empty() || e->shape.back() % 2)
        return fail("tensor '" + name + "': F4 of shape " + shape_text +
                        " has no float4_e2m1fn_x2 shape (the last dimension must be even)",
                    Code::kUnsupported);
      e->shape.back() /= 2;
    }
    return true;
  }

  // Sorted by range, the tensors must cover the data buffer exactly.
  bool tile(std::vector<Entry>* tensors, uint64_t data_size) {
    std::stable_sort(tensors->begin(), tensors->end(), [](const Entry& a, const Entry& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    uint64_t expected = 0;
    const Entry* prev = nullptr;
    for (const Entry& e : *tensors) {
      if (e.end > data_size)
        return fail("tensor '" + e.name + "': " + range_text(e) +
                    " run past the end of the file (" + std::to_string(data_size) + " data bytes)");
      if (e.begin < expected)
        return fail("tensor '" + e.name + "': " + range_text(e) + " overlap tensor '" + prev->name +
                    "'");
      if (e.begin > expected)
        return fail("tensor '" + e.name + "': " + range_text(e) + " leave a gap: bytes [" +
                    std::to_string(expected) + ", " + std::to_string(e.begin) +
                    ") of the data belong to no tensor");
      expected = e.end;
      prev = &e;
    }
    if (expected != data_size)
      return fail(std::to_string(data_size - expected) +
                  " trailing bytes after the last tensor's data belong to no tensor");
    return true;
  }

  Status corrupt(const std::string& what) {
    status_ = Status(Code::kCorrupt, file_ + ": " + what);
    return status_;
  }
  bool fail(const std::string& what, Code code = Code::kCorrupt) {
    status_ = Status(code, file_ + ": " + what);
    return false;
  }

  const std::string& file_;
  Status status_;
};

uint64_t le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

DecodedFile to_decoded(Header h, uint64_t data_start) {
  DecodedFile f;
  f.tree.root = Value::dict();
  for (Entry& e : h.tensors) {
    TensorMeta m;
    m.dtype = *e.st->dtype;
    m.shape = e.shape;
    m.strides.resize(m.shape.size());
    int64_t s = 1;
    for (size_t k = m.shape.size(); k-- > 0;) {
      m.strides[k] = s;
      s *= std::max<int64_t>(m.shape[k], 1);
    }
    m.storage = static_cast<uint32_t>(f.tree.storages.size());
    StorageInfo info;
    info.key = e.name;
    info.dtype = m.dtype;
    info.nbytes = e.end - e.begin;
    f.tree.storages.push_back(std::move(info));
    StorageExtent x;
    x.offset = data_start + e.begin;
    x.length = e.end - e.begin;
    f.extents.push_back(std::move(x));
    f.tree.root->entries.emplace_back(Value::str(std::move(e.name)), Value::make_tensor(m));
  }
  if (h.has_metadata) {
    ValuePtr meta = Value::dict();
    for (auto& [k, v] : h.metadata)
      meta->entries.emplace_back(Value::str(std::move(k)), Value::str(std::move(v)));
    f.tree.root->entries.emplace_back(Value::str("__metadata__"), std::move(meta));
  }
  return f;
}

}  // namespace

Result<DecodedFile> read_safetensors(const ByteSource& src) {
  const std::string& file = src.name();
  if (src.size() < 8)
    return Status(Code::kCorrupt, file + ": file of " + std::to_string(src.size()) +
                                      " bytes is too short for a safetensors header");
  uint8_t len[8];
  CKPTIO_RETURN_IF_ERROR(src.read_at(0, len, 8));
  const uint64_t n = le64(len);
  if (n > kSafetensorsMaxHeader)
    return Status(Code::kLimit, file + ": safetensors header length " + std::to_string(n) +
                                    " exceeds the limit of " +
                                    std::to_string(kSafetensorsMaxHeader) + " bytes");
  if (n > src.size() - 8)
    return Status(Code::kCorrupt, file + ": safetensors header length " + std::to_string(n) +
                                      " runs past the end of the file (" +
                                      std::to_string(src.size()) + " bytes)");
  // n is bounded by the limit and by the file: the copy (when the file is not mapped) is too.
  std::string copy;
  const char* text = nullptr;
  if (src.data()) {
    text = reinterpret_cast<const char*>(src.data()) + 8;
  } else {
    copy.resize(n);
    CKPTIO_RETURN_IF_ERROR(src.read_at(8, copy.data(), n));
    text = copy.data();
  }
  CKPTIO_ASSIGN_OR_RETURN(Header h, HeaderParser(file).parse(text, n, src.size() - 8 - n));
  return to_decoded(std::move(h), 8 + n);
}

}  // namespace ckptio
