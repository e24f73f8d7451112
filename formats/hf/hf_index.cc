// The Hugging Face index codec (hf_index.h): a strict SAX reader, a head probe that needs no
// whole file, and the writer that matches transformers' json.dumps byte for byte.
#include "formats/hf/hf_index.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_set>
#include <vector>

#include "formats/message_text.h"

namespace ckptio::hf {
namespace {

using json = nlohmann::ordered_json;  // as safetensors_reader.cc; only its types are used here

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

// Why `name` cannot be a shard file, or nullptr. huggingface_hub's rule (PureWindowsPath:
// no drive, no root, no ".." part) plus the bytes no file name on the host may hold.
const char* shard_name_problem(const std::string& name) {
  if (name.empty()) return "is empty";
  if (name.find('\0') != std::string::npos) return "holds a NUL byte";
  if (name.find('\\') != std::string::npos) return "holds a backslash";
  if (name[0] == '/') return "is absolute";
  // ntpath.splitdrive: any first character followed by ':' is a drive ("C:x", "1:x").
  const unsigned char lead = static_cast<unsigned char>(name[0]);
  const size_t first = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  if (name.size() > first && name[first] == ':') return "starts with a drive";
  for (size_t begin = 0; begin <= name.size();) {
    size_t end = name.find('/', begin);
    if (end == std::string::npos) end = name.size();
    if (end - begin == 2 && name.compare(begin, 2, "..") == 0) return "has a '..' component";
    begin = end + 1;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------
// parse_index: nlohmann's SAX parser, so that nesting is bounded here, every object's keys
// are checked for repeats, numbers keep their text, and ignored parts build no tree.

enum class Role { kRoot, kWeightMap, kMetadata, kMetaValue, kOther };

struct Frame {
  bool object = false;
  Role role = Role::kOther;
  std::string where;  // names the object in a duplicate-key message
  std::unordered_set<std::string> keys;
  std::string key;    // the key whose value comes next (objects)
  bool first = true;  // kMetaValue: nothing written inside it yet
};

// A scalar as the SAX parser reports it: its kind and its text.
enum class Scalar { kString, kNumber, kBool, kNull };

class IndexSax final : public nlohmann::json_sax<json> {
 public:
  IndexSax(const std::string& file, Index* out) : file_(file), out_(out) {}

  const Status& status() const { return status_; }
  bool saw_weight_map() const { return saw_weight_map_; }

  bool null() override { return scalar(Scalar::kNull, "null"); }
  bool boolean(bool v) override { return scalar(Scalar::kBool, v ? "true" : "false"); }
  bool number_integer(number_integer_t v) override {
    return scalar(Scalar::kNumber, std::to_string(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    number_is_u64_ = true;
    u64_ = v;
    const bool ok = scalar(Scalar::kNumber, std::to_string(v));
    number_is_u64_ = false;
    return ok;
  }
  bool number_float(number_float_t, const string_t& text) override {
    return scalar(Scalar::kNumber, text);  // also integers past 64 bits: the file's digits
  }
  bool string(string_t& v) override { return scalar(Scalar::kString, v); }
  bool binary(binary_t&) override { return fail(Code::kCorrupt, "holds binary data"); }

  bool start_object(std::size_t) override { return open(true); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool key(string_t& k) override {
    Frame& f = stack_.back();
    if (!f.keys.insert(k).second)
      return fail(Code::kCorrupt, "key " + quoted_text(k) + " appears twice in " + f.where);
    f.key = k;
    if (f.role == Role::kMetaValue) {
      if (!f.first) meta_text_ += ',';
      f.first = false;
      meta_text_ += json(k).dump() + ':';
    }
    return true;
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    if (status_.ok())
      status_ = Status(Code::kCorrupt, file_ + ": is not valid JSON: " + one_line(e.what()));
    return false;
  }

 private:
  bool fail(Code code, const std::string& what) {
    if (status_.ok()) status_ = Status(code, file_ + ": " + what);
    return false;
  }

  static std::string describe(Scalar kind, const std::string& text) {
    return kind == Scalar::kString ? "the string " + quoted_text(text) : text;
  }

  // Writes a value's start into the compact text of a nested metadata value.
  void meta_separator() {
    Frame& f = stack_.back();
    if (!f.object) {
      if (!f.first) meta_text_ += ',';
      f.first = false;
    }
  }

  bool scalar(Scalar kind, const std::string& text) {
    if (stack_.empty()) return fail(Code::kCorrupt, "is not a JSON object");
    Frame& f = stack_.back();
    switch (f.role) {
      case Role::kRoot:
        if (f.key == "weight_map" || f.key == "metadata")
          return fail(Code::kCorrupt, f.key + " is " + describe(kind, text) + ", not an object");
        return true;
      case Role::kWeightMap: {
        if (kind != Scalar::kString)
          return fail(Code::kCorrupt, "weight_map[" + quoted_text(f.key) + "] is " + text +
                                          ", not a shard file name");
        if (checked_.count(text) == 0) {
          if (const char* why = shard_name_problem(text))
            return fail(Code::kCorrupt, "weight_map[" + quoted_text(f.key) + "] names shard file " +
                                            quoted_text(text) + ", which " + why);
          checked_.insert(text);
        }
        out_->weight_map.emplace_back(f.key, text);
        return true;
      }
      case Role::kMetadata:
        out_->metadata.emplace_back(f.key, text);
        if (f.key == "total_size" && number_is_u64_) out_->total_size = u64_;
        return true;
      case Role::kMetaValue:
        meta_separator();
        meta_text_ += kind == Scalar::kString ? json(text).dump() : text;
        return true;
      case Role::kOther:
        return true;
    }
    return true;
  }

  bool open(bool object) {
    if (stack_.size() >= kMaxIndexDepth)
      return fail(Code::kLimit,
                  "JSON nested deeper than " + std::to_string(kMaxIndexDepth) + " levels");
    Frame next;
    next.object = object;
    const char* kind = object ? "an object" : "an array";
    if (stack_.empty()) {
      if (!object) return fail(Code::kCorrupt, "is not a JSON object (it is an array)");
      next.role = Role::kRoot;
      next.where = "the index object";
    } else {
      Frame& f = stack_.back();
      next.where = f.object ? "the object under " + quoted_text(f.key) : "an object in an array";
      switch (f.role) {
        case Role::kRoot:
          if (f.key == "weight_map") {
            if (!object) return fail(Code::kCorrupt, "weight_map is an array, not an object");
            next.role = Role::kWeightMap;
            next.where = "weight_map";
            saw_weight_map_ = true;
          } else if (f.key == "metadata") {
            if (!object) return fail(Code::kCorrupt, "metadata is an array, not an object");
            next.role = Role::kMetadata;
            next.where = "metadata";
          }
          break;
        case Role::kWeightMap:
          return fail(Code::kCorrupt, "weight_map[" + quoted_text(f.key) + "] is " + kind +
                                          ", not a shard file name");
        case Role::kMetadata:
          next.role = Role::kMetaValue;
          meta_key_ = f.key;
          meta_text_ = object ? "{" : "[";
          break;
        case Role::kMetaValue:
          next.role = Role::kMetaValue;
          meta_separator();
          meta_text_ += object ? '{' : '[';
          break;
        case Role::kOther:
          break;
      }
    }
    stack_.push_back(std::move(next));
    return true;
  }

  bool close() {
    const Frame f = std::move(stack_.back());
    stack_.pop_back();
    if (f.role == Role::kMetaValue) {
      meta_text_ += f.object ? '}' : ']';
      if (!stack_.empty() && stack_.back().role == Role::kMetadata)
        out_->metadata.emplace_back(meta_key_, meta_text_);
    }
    return true;
  }

  const std::string& file_;
  Index* out_;
  Status status_;
  std::vector<Frame> stack_;
  std::unordered_set<std::string> checked_;  // shard names already found good
  bool saw_weight_map_ = false;
  bool number_is_u64_ = false;
  uint64_t u64_ = 0;
  std::string meta_key_, meta_text_;  // the nested metadata value being written
};

// ---------------------------------------------------------------------------------------
// probe_index_head: a forward-only scanner over a head that may end anywhere. Every method
// returns false when the bytes are not JSON or when the head ends first.

class HeadScanner {
 public:
  HeadScanner(const uint8_t* p, size_t n) : p_(p), n_(n) {}

  void blanks() {
    while (i_ < n_ && (p_[i_] == ' ' || p_[i_] == '\t' || p_[i_] == '\n' || p_[i_] == '\r')) ++i_;
  }
  bool peek(uint8_t* c) const {
    if (i_ >= n_) return false;
    *c = p_[i_];
    return true;
  }
  bool take(uint8_t want) {
    if (i_ >= n_ || p_[i_] != want) return false;
    ++i_;
    return true;
  }

  // A JSON string, decoded into *out (which may be null to skip it).
  bool string(std::string* out) {
    if (!take('"')) return false;
    while (i_ < n_) {
      const uint8_t c = p_[i_++];
      if (c == '"') return true;
      if (c < 0x20) return false;  // JSON allows no raw control byte in a string
      if (c != '\\') {
        if (out) out->push_back(static_cast<char>(c));
        continue;
      }
      if (i_ >= n_) return false;
      const uint8_t e = p_[i_++];
      const char* simple = std::strchr("\"\\/bfnrt", e);
      if (e != 0 && simple) {
        static const char kDecoded[] = "\"\\/\b\f\n\r\t";
        if (out) out->push_back(kDecoded[simple - "\"\\/bfnrt"]);
        continue;
      }
      if (e != 'u') return false;
      uint32_t cp = 0;
      if (!hex4(&cp)) return false;
      if (cp >= 0xdc00 && cp <= 0xdfff) return false;  // a lone low surrogate
      if (cp >= 0xd800 && cp <= 0xdbff) {
        uint32_t lo = 0;
        if (!take('\\') || !take('u') || !hex4(&lo) || lo < 0xdc00 || lo > 0xdfff) return false;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      }
      if (out) append_utf8(out, cp);
    }
    return false;
  }

  // Any JSON value, not checked beyond what finding its end needs.
  bool skip_value() {
    std::vector<uint8_t> open;  // the brackets still open
    do {
      blanks();
      uint8_t c = 0;
      if (!peek(&c)) return false;
      if (c == '"') {
        if (!string(nullptr)) return false;
      } else if (c == '{' || c == '[') {
        if (open.size() >= kMaxIndexDepth) return false;
        open.push_back(c == '{' ? '}' : ']');
        ++i_;
      } else if (c == '}' || c == ']') {
        if (open.empty() || open.back() != c) return false;
        open.pop_back();
        ++i_;
      } else if (!open.empty() && (c == ',' || c == ':')) {
        ++i_;
      } else {
        const size_t start = i_;
        while (i_ < n_ && scalar_byte(p_[i_])) ++i_;
        if (i_ == start) return false;
        if (i_ == n_) return false;  // a number may go on past the head
      }
    } while (!open.empty());
    return true;
  }

 private:
  bool hex4(uint32_t* out) {
    if (n_ - i_ < 4) return false;
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const uint8_t c = p_[i_++];
      const int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
      if (d < 0) return false;
      v = v * 16 + static_cast<uint32_t>(d);
    }
    *out = v;
    return true;
  }

  static bool scalar_byte(uint8_t c) {  // what numbers, true, false and null are made of
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
           c == '+' || c == '.';
  }

  static void append_utf8(std::string* out, uint32_t cp) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  const uint8_t* p_;
  size_t n_;
  size_t i_ = 0;
};

bool ends_with(const std::string& s, const char* suffix) {
  const size_t k = std::strlen(suffix);
  return s.size() >= k && s.compare(s.size() - k, k, suffix) == 0;
}

// ---------------------------------------------------------------------------------------
// write_index: Python's json.dumps with ensure_ascii (the default).

// The code point at s[i] and its length; an invalid sequence reads as U+FFFD, one byte long.
uint32_t next_code_point(const std::string& s, size_t i, size_t* len) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  *len = 1;
  if (c < 0x80) return c;
  size_t need = 0;
  uint32_t cp = 0, min = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    need = 1, cp = c & 0x1f, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    need = 2, cp = c & 0x0f, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    need = 3, cp = c & 0x07, min = 0x10000;
  } else {
    return 0xfffd;
  }
  if (s.size() - i <= need) return 0xfffd;
  for (size_t k = 1; k <= need; ++k) {
    if ((b(k) & 0xc0) != 0x80) return 0xfffd;
    cp = (cp << 6) | (b(k) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0xfffd;
  *len = need + 1;
  return cp;
}

void append_py_json_string(std::string* out, const std::string& s) {
  char buf[16];
  out->push_back('"');
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    const uint32_t cp = next_code_point(s, i, &len);
    i += len;
    switch (cp) {
      case '"':
        *out += "\\\"";
        continue;
      case '\\':
        *out += "\\\\";
        continue;
      case '\n':
        *out += "\\n";
        continue;
      case '\r':
        *out += "\\r";
        continue;
      case '\t':
        *out += "\\t";
        continue;
      case '\b':
        *out += "\\b";
        continue;
      case '\f':
        *out += "\\f";
        continue;
      default:
        break;
    }
    if (cp >= 0x20 && cp < 0x7f) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x10000) {
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
      *out += buf;
    } else {
      const uint32_t v = cp - 0x10000;
      std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", static_cast<unsigned>(0xd800 | (v >> 10)),
                    static_cast<unsigned>(0xdc00 | (v & 0x3ff)));
      *out += buf;
    }
  }
  out->push_back('"');
}

}  // namespace

const char* single_file_name(ShardKind k) {
  return k == ShardKind::kSafetensors ? "model.safetensors" : "pytorch_model.bin";
}

const char* index_file_name(ShardKind k) {
  return k == ShardKind::kSafetensors ? "model.safetensors.index.json"
                                      : "pytorch_model.bin.index.json";
}

const char* shard_extension(ShardKind k) {
  return k == ShardKind::kSafetensors ? ".safetensors" : ".bin";
}

std::string shard_file_name(ShardKind k, size_t index0, size_t count) {
  char suffix[64];
  std::snprintf(suffix, sizeof suffix, "-%05zu-of-%05zu", index0 + 1, count);
  return std::string(k == ShardKind::kSafetensors ? "model" : "pytorch_model") + suffix +
         shard_extension(k);
}

Result<Index> parse_index(const char* text, size_t n, const std::string& file) {
  if (n > kMaxIndexBytes)
    return Status(Code::kLimit, file + ": index is " + std::to_string(n) +
                                    " bytes, over the 64 MiB an index may have");
  if (n >= 3 && std::memcmp(text, "\xef\xbb\xbf", 3) == 0)
    return Status(Code::kCorrupt, file +
                                      ": starts with a UTF-8 byte-order mark, which "
                                      "Python's json refuses");
  size_t first = 0;
  while (first < n && std::strchr(" \t\r\n", text[first]) && text[first]) ++first;
  if (first == n) return Status(Code::kCorrupt, file + ": is not a JSON object (it is blank)");
  if (text[first] != '{') return Status(Code::kCorrupt, file + ": is not a JSON object");
  // nlohmann's lexer takes a NUL byte for the end of the input; JSON allows none, raw, in a
  // string or between tokens (Python's json: "Extra data" or "Invalid control character").
  if (const void* nul = std::memchr(text, 0, n))
    return Status(Code::kCorrupt, file + ": is not valid JSON: a NUL byte at offset " +
                                      std::to_string(static_cast<const char*>(nul) - text));
  Index index;
  IndexSax sax(file, &index);
  bool ok = false;
  try {
    ok = json::sax_parse(text, text + n, &sax);
  } catch (const json::exception& e) {
    return Status(Code::kCorrupt, file + ": is not valid JSON: " + one_line(e.what()));
  }
  if (!sax.status().ok()) return sax.status();
  if (!ok) return Status(Code::kCorrupt, file + ": is not valid JSON");
  if (!sax.saw_weight_map()) return Status(Code::kCorrupt, file + ": has no weight_map");
  if (index.weight_map.empty()) return Status(Code::kCorrupt, file + ": weight_map is empty");
  index.shards.reserve(index.weight_map.size());
  for (const auto& [tensor, shard] : index.weight_map) index.shards.push_back(shard);
  std::sort(index.shards.begin(), index.shards.end());
  index.shards.erase(std::unique(index.shards.begin(), index.shards.end()), index.shards.end());
  return index;
}

Status check_shard_kind(const Index& index, ShardKind kind, const std::string& file) {
  for (const auto& [tensor, shard] : index.weight_map)
    if (!ends_with(shard, shard_extension(kind)))
      return Status(Code::kCorrupt, file + ": weight_map[" + quoted_text(tensor) +
                                        "] names shard file " + quoted_text(shard) +
                                        ", which does not end in " + shard_extension(kind) +
                                        " as the index's name does");
  return Status::Ok();
}

std::optional<ShardKind> probe_index_head(const uint8_t* head, size_t n) {
  if (head == nullptr) return std::nullopt;
  HeadScanner s(head, n);
  s.blanks();
  if (!s.take('{')) return std::nullopt;
  for (;;) {
    s.blanks();
    std::string key;
    if (!s.string(&key)) return std::nullopt;  // also '}': an object without weight_map
    s.blanks();
    if (!s.take(':')) return std::nullopt;
    s.blanks();
    if (key == "weight_map") {
      if (!s.take('{')) return std::nullopt;
      s.blanks();
      if (!s.string(nullptr)) return std::nullopt;
      s.blanks();
      if (!s.take(':')) return std::nullopt;
      s.blanks();
      std::string shard;
      if (!s.string(&shard)) return std::nullopt;
      if (ends_with(shard, ".safetensors")) return ShardKind::kSafetensors;
      if (ends_with(shard, ".bin")) return ShardKind::kBin;
      return std::nullopt;
    }
    if (!s.skip_value()) return std::nullopt;
    s.blanks();
    if (!s.take(',')) return std::nullopt;
  }
}

std::string write_index(const std::vector<std::pair<std::string, std::string>>& weight_map,
                        const IndexMetadata& meta) {
  // sort_keys: code-point order, which is UTF-8's byte order. A repeated name: the last one.
  std::vector<size_t> order(weight_map.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return weight_map[a].first < weight_map[b].first; });
  std::string out = "{\n  \"metadata\": {\n";
  if (meta.total_parameters)
    out += "    \"total_parameters\": " + std::to_string(*meta.total_parameters) + ",\n";
  out += "    \"total_size\": " + std::to_string(meta.total_size) + "\n  },\n  \"weight_map\": {";
  bool any = false;
  for (size_t k = 0; k < order.size(); ++k) {
    const auto& entry = weight_map[order[k]];
    if (k + 1 < order.size() && weight_map[order[k + 1]].first == entry.first) continue;
    out += any ? ",\n    " : "\n    ";
    any = true;
    append_py_json_string(&out, entry.first);
    out += ": ";
    append_py_json_string(&out, entry.second);
  }
  out += any ? "\n  }\n}\n" : "}\n}\n";
  return out;
}

std::optional<std::string> entry_file(ShardKind kind, const std::vector<std::string>& listing) {
  for (const char* name : {index_file_name(kind), single_file_name(kind)})
    if (std::find(listing.begin(), listing.end(), name) != listing.end()) return std::string(name);
  return std::nullopt;
}

}  // namespace ckptio::hf
