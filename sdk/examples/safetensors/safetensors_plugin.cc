// safetensors for ckptio: a complete third-party format plugin written only against the
// installed SDK (ckptio/plugin.h + ckptio/plugin.hpp) and nlohmann-json.
//
// ckptio now bundles its own safetensors plugin (plugins/safetensors, format `safetensors`);
// this one stays as the teaching sample and is named `safetensors-example` (plugin, format
// and ckptio-safetensors-example.so) so that both can be installed side by side: a format
// name already provided is not replaced, and a file of the same name in the plugin
// directory would be. Its probe answers 80, below the bundled plugin's 90, so detection
// picks the bundled reader; `--format` / `--input-format safetensors-example` pick this one.
//
// The format (https://github.com/huggingface/safetensors, "Format"):
//   u64 little-endian N | N bytes of UTF-8 JSON | data buffer
// The JSON is an object: name -> {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}
// (offsets relative to the data buffer) plus an optional "__metadata__": {str: str}. The
// tensors' byte ranges cover the buffer exactly: no gap, no overlap, nothing after the last.
//
// Mapping to ckptio's value tree (documented in README.md beside this file):
//  - reading: the root is a plain dict name -> tensor in data-offset order (the file order,
//    which is also the header order for files written by this plugin and the reference
//    implementation). Each tensor has its own storage whose bytes sit plainly at
//    8 + N + begin, so the host maps or reads them without calling read_storage().
//    "__metadata__" is validated and dropped unless the read option metadata=1 asks for it
//    as a last entry "__metadata__" -> dict of str -> str.
//  - writing: the root must be a dict with str keys whose values are tensors or dicts of the
//    same (flattened with '.': {"model": {"w": t}} -> "model.w"); any other value is refused
//    with its key. Every tensor is written as its own contiguous copy (views are gathered,
//    tied tensors are written twice: safetensors has no sharing). A root entry
//    "__metadata__" (dict of str -> str) and options meta.KEY=VALUE become __metadata__,
//    which holds "format": "pt" unless overridden. The header is padded with spaces to a
//    multiple of 8 bytes, as the reference writer does.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckptio/plugin.hpp"

using ckptio::sdk::PluginError;
using json = nlohmann::ordered_json;  // keeps the header's key order

namespace {

const ckptio_host_api* g_host = nullptr;

constexpr uint64_t kMaxHeader = 100'000'000;  // the reference reader's limit
constexpr size_t kMaxDims = 64;               // the host's limit
constexpr uint64_t kChunk = 1 << 20;

struct DType {
  const char* name;  // safetensors name
  int32_t code;      // CKPTIO_DTYPE_*
  uint32_t size;
};
constexpr DType kDTypes[] = {
    {"F64", CKPTIO_DTYPE_FLOAT64, 8},        {"F32", CKPTIO_DTYPE_FLOAT32, 4},
    {"F16", CKPTIO_DTYPE_FLOAT16, 2},        {"BF16", CKPTIO_DTYPE_BFLOAT16, 2},
    {"I64", CKPTIO_DTYPE_INT64, 8},          {"I32", CKPTIO_DTYPE_INT32, 4},
    {"I16", CKPTIO_DTYPE_INT16, 2},          {"I8", CKPTIO_DTYPE_INT8, 1},
    {"U64", CKPTIO_DTYPE_UINT64, 8},         {"U32", CKPTIO_DTYPE_UINT32, 4},
    {"U16", CKPTIO_DTYPE_UINT16, 2},         {"U8", CKPTIO_DTYPE_UINT8, 1},
    {"BOOL", CKPTIO_DTYPE_BOOL, 1},          {"F8_E5M2", CKPTIO_DTYPE_FLOAT8_E5M2, 1},
    {"F8_E4M3", CKPTIO_DTYPE_FLOAT8_E4M3FN, 1}, {"F8_E8M0", CKPTIO_DTYPE_FLOAT8_E8M0FNU, 1},
    {"C64", CKPTIO_DTYPE_COMPLEX64, 8},
};

const DType* dtype_by_name(const std::string& name) {
  for (const DType& d : kDTypes)
    if (name == d.name) return &d;
  return nullptr;
}
const DType* dtype_by_code(int32_t code) {
  for (const DType& d : kDTypes)
    if (code == d.code) return &d;
  return nullptr;
}

uint64_t le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

[[noreturn]] void corrupt(const std::string& file, const std::string& what) {
  throw PluginError(CKPTIO_CORRUPT, file + ": " + what);
}

// Passes a status from a host callback back to the host unchanged.
#define ST_CHECK(expr)                       \
  do {                                       \
    if (ckptio_status st_ = (expr)) return st_; \
  } while (0)

// ---------------------------------------------------------------------------------------
// Reading

struct Entry {
  std::string name;
  const DType* dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

struct Header {
  std::vector<Entry> tensors;  // in data-offset order
  bool has_metadata = false;
  std::vector<std::pair<std::string, std::string>> metadata;
};

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

uint64_t as_uint(const std::string& file, const std::string& name, const char* field,
                 const json& v) {
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    corrupt(file, "tensor '" + name + "': " + field + " holds " + one_line(v.dump()) +
                      ", not a non-negative integer");
  return v.get<uint64_t>();
}

Header parse_header(const std::string& file, const std::string& text, uint64_t data_size) {
  if (text.empty() || text[0] != '{') corrupt(file, "safetensors header does not start with '{'");
  // Duplicate names are ambiguous; nlohmann would silently keep one of them.
  std::unordered_set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t on_key = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::key && depth == 1 && duplicate.empty()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!seen.insert(k).second) duplicate = k;
    }
    return true;
  };
  json root;
  try {
    root = json::parse(text, on_key);
  } catch (const json::exception& e) {
    corrupt(file, "safetensors header is not valid JSON: " + one_line(e.what()));
  }
  if (!duplicate.empty()) corrupt(file, "safetensors header names '" + duplicate + "' twice");
  if (!root.is_object()) corrupt(file, "safetensors header is not a JSON object");

  Header h;
  for (const auto& [name, info] : root.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) corrupt(file, "__metadata__ is not an object of strings");
      h.has_metadata = true;
      for (const auto& [k, v] : info.items()) {
        if (!v.is_string()) corrupt(file, "__metadata__ '" + k + "' is not a string");
        h.metadata.emplace_back(k, v.get<std::string>());
      }
      continue;
    }
    if (!info.is_object()) corrupt(file, "tensor '" + name + "' is not a JSON object");
    auto field = [&](const char* key) -> const json& {
      auto it = info.find(key);
      if (it == info.end()) corrupt(file, "tensor '" + name + "' has no " + key);
      return *it;
    };
    Entry e;
    e.name = name;
    const json& dt = field("dtype");
    if (!dt.is_string()) corrupt(file, "tensor '" + name + "': dtype is not a string");
    e.dtype = dtype_by_name(dt.get<std::string>());
    if (!e.dtype) {
      std::string n = dt.get<std::string>();
      if (n == "F4" || n == "F6_E2M3" || n == "F6_E3M2")
        throw PluginError(CKPTIO_UNSUPPORTED, file + ": tensor '" + name + "': dtype " + n +
                                                  " (sub-byte) has no ckptio equivalent");
      corrupt(file, "tensor '" + name + "': unknown dtype '" + n + "'");
    }
    const json& shape = field("shape");
    if (!shape.is_array()) corrupt(file, "tensor '" + name + "': shape is not an array");
    if (shape.size() > kMaxDims)
      throw PluginError(CKPTIO_LIMIT, file + ": tensor '" + name + "' has " +
                                          std::to_string(shape.size()) + " dimensions");
    uint64_t numel = 1;
    bool overflow = false;
    for (const json& d : shape) {
      uint64_t n = as_uint(file, name, "shape", d);
      if (n > uint64_t(INT64_MAX)) overflow = true;
      overflow |= __builtin_mul_overflow(numel, n, &numel);
      e.shape.push_back(static_cast<int64_t>(n));
    }
    const json& off = field("data_offsets");
    if (!off.is_array() || off.size() != 2)
      corrupt(file, "tensor '" + name + "': data_offsets is not [begin, end]");
    e.begin = as_uint(file, name, "data_offsets", off[0]);
    e.end = as_uint(file, name, "data_offsets", off[1]);
    if (e.end < e.begin)
      corrupt(file, "tensor '" + name + "': data_offsets [" + std::to_string(e.begin) + ", " +
                        std::to_string(e.end) + "] end before they begin");
    uint64_t nbytes = 0;
    overflow |= __builtin_mul_overflow(numel, uint64_t(e.dtype->size), &nbytes);
    if (overflow || nbytes != e.end - e.begin)
      corrupt(file, "tensor '" + name + "': shape " + one_line(shape.dump()) + " of " +
                        e.dtype->name + (overflow ? " overflows" :
                        " needs " + std::to_string(nbytes) + " bytes") +
                        " but data_offsets span " + std::to_string(e.end - e.begin));
    h.tensors.push_back(std::move(e));
  }
  // The ranges must tile the data buffer: sorted by offset, each starts where the last
  // ended, and the last ends at the end of the file.
  std::stable_sort(h.tensors.begin(), h.tensors.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : h.tensors) {
    std::string range =
        "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
    if (e.end > data_size)
      corrupt(file, "tensor '" + e.name + "': " + range + " run past the end of the file (" +
                        std::to_string(data_size) + " data bytes)");
    if (e.begin < expected)
      corrupt(file, "tensor '" + e.name + "': " + range + " overlap tensor '" + prev->name +
                        "'");
    if (e.begin > expected)
      corrupt(file, "tensor '" + e.name + "': " + range + " leave a gap: bytes [" +
                        std::to_string(expected) + ", " + std::to_string(e.begin) +
                        ") of the data belong to no tensor");
    expected = e.end;
    prev = &e;
  }
  if (expected != data_size)
    corrupt(file, std::to_string(data_size - expected) +
                      " bytes after the last tensor's data belong to no tensor");
  return h;
}

}  // namespace

// The plugin's reader: where each storage's bytes are, and the host's source to read them.
struct ckptio_reader_s {
  ckptio_source source;
  uint64_t data_start;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // (begin, size) per storage
};

namespace {

void read_exact(const ckptio_source* src, uint64_t off, void* dst, uint64_t n) {
  if (src->data) {
    std::memcpy(dst, src->data + off, n);
    return;
  }
  if (ckptio_status st = src->read_at(src->ctx, off, dst, n)) {
    std::string msg = g_host->status_message(st);
    int32_t code = g_host->status_code(st);
    g_host->release_status(st);
    throw PluginError(code, msg);
  }
}

int32_t st_probe(uint32_t, const uint8_t* head, size_t n, uint64_t file_size) {
  if (n < 10 || file_size < 10) return 0;  // length + "{}"
  uint64_t len = le64(head);
  if (len < 2 || len > kMaxHeader || len > file_size - 8 || head[8] != '{') return 0;
  for (size_t i = 9; i < n && i < 8 + len; ++i) {
    uint8_t c = head[i];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    return c == '"' || c == '}' ? 80 : 0;  // a key, or an empty header (below the bundled 90)
  }
  return 50;  // only blanks in the head: plausible, not certain
}

ckptio_status st_open(uint32_t, const ckptio_source* src, const ckptio_options* options,
                      const ckptio_builder* b, ckptio_reader** out) {
  return ckptio::sdk::guard(g_host, "safetensors: open", [&]() -> ckptio_status {
    std::string file = src->name ? src->name : "<source>";
    if (src->size < 8)
      corrupt(file, "file of " + std::to_string(src->size) +
                        " bytes is too short for a safetensors header");
    uint8_t lenbuf[8];
    read_exact(src, 0, lenbuf, 8);
    uint64_t n = le64(lenbuf);
    if (n > kMaxHeader)
      throw PluginError(CKPTIO_LIMIT, file + ": safetensors header length " +
                                          std::to_string(n) + " exceeds the limit of " +
                                          std::to_string(kMaxHeader) + " bytes");
    if (n > src->size - 8)
      corrupt(file, "safetensors header length " + std::to_string(n) +
                        " runs past the end of the file (" + std::to_string(src->size) +
                        " bytes)");
    std::string text(n, '\0');
    read_exact(src, 8, text.data(), n);
    Header h = parse_header(file, text, src->size - 8 - n);
    bool with_metadata = ckptio::sdk::option_flag(options, "metadata") && h.has_metadata;

    auto reader = std::make_unique<ckptio_reader_s>();
    reader->source = *src;
    reader->data_start = 8 + n;
    for (const Entry& e : h.tensors) {
      ckptio_storage_desc d{};
      d.struct_size = sizeof d;
      d.dtype = e.dtype->code;
      d.key = e.name.c_str();
      d.device = "cpu";
      d.nbytes = e.end - e.begin;
      d.file_offset = 8 + n + e.begin;
      ST_CHECK(b->add_storage(b->ctx, &d));
      reader->ranges.emplace_back(e.begin, e.end - e.begin);
    }
    ST_CHECK(b->begin(b->ctx, CKPTIO_DICT, h.tensors.size() + (with_metadata ? 1 : 0), nullptr,
                      0, 0));
    for (uint32_t i = 0; i < h.tensors.size(); ++i) {
      const Entry& e = h.tensors[i];
      ST_CHECK(b->scalar(b->ctx, CKPTIO_STR, 0, 0, e.name.data(), e.name.size()));
      std::vector<int64_t> strides(e.shape.size());
      int64_t s = 1;
      for (size_t k = e.shape.size(); k-- > 0;) {
        strides[k] = s;
        s *= std::max<int64_t>(e.shape[k], 1);
      }
      ckptio_tensor_desc t{};
      t.struct_size = sizeof t;
      t.dtype = e.dtype->code;
      t.ndim = static_cast<uint32_t>(e.shape.size());
      t.storage = i;
      t.shape = e.shape.data();
      t.strides = strides.data();
      ST_CHECK(b->tensor(b->ctx, &t));
    }
    if (with_metadata) {
      static const char kKey[] = "__metadata__";
      ST_CHECK(b->scalar(b->ctx, CKPTIO_STR, 0, 0, kKey, sizeof kKey - 1));
      ST_CHECK(b->begin(b->ctx, CKPTIO_DICT, h.metadata.size(), nullptr, 0, 0));
      for (const auto& [k, v] : h.metadata) {
        ST_CHECK(b->scalar(b->ctx, CKPTIO_STR, 0, 0, k.data(), k.size()));
        ST_CHECK(b->scalar(b->ctx, CKPTIO_STR, 0, 0, v.data(), v.size()));
      }
      ST_CHECK(b->end(b->ctx));
    }
    ST_CHECK(b->end(b->ctx));
    *out = reader.release();
    return nullptr;
  });
}

// Only needed when the host cannot use file_offset (it always can for this format); may run
// concurrently for different storages: it touches no shared mutable state.
ckptio_status st_read_storage(ckptio_reader* r, uint32_t index, uint64_t offset, void* dst,
                              uint64_t n) {
  return ckptio::sdk::guard(g_host, "safetensors: read", [&]() -> ckptio_status {
    if (index >= r->ranges.size() || offset > r->ranges[index].second ||
        n > r->ranges[index].second - offset)
      throw PluginError(CKPTIO_INVALID_ARGUMENT, std::string(r->source.name) +
                                                     ": read_storage out of range");
    read_exact(&r->source, r->data_start + r->ranges[index].first + offset, dst, n);
    return nullptr;
  });
}

void st_close(ckptio_reader* r) { delete r; }

// ---------------------------------------------------------------------------------------
// Writing

struct OutTensor {
  std::string name;
  const DType* dtype;
  uint32_t storage;
  std::vector<int64_t> shape, strides;
  int64_t offset;
  uint64_t nbytes;
};

// "an int", "a dict", ... for messages.
const char* a_kind(int32_t kind) {
  static const char* const names[] = {"None",    "a bool",   "an int",   "an int",  "a float",
                                      "a str",   "bytes",    "a list",   "a tuple", "a dict",
                                      "a tensor", "a global", "an object"};
  return kind >= 0 && kind <= CKPTIO_OBJECT ? names[kind] : "an unknown value";
}

class Writer {
 public:
  Writer(const ckptio_tree* t, const ckptio_sink* sink)
      : t_(t), sink_(sink), file_(sink->name ? sink->name : "<sink>") {}

  ckptio_status run(const ckptio_options* options) {
    ckptio_node root = t_->root;
    if (t_->kind(t_->ctx, root) != CKPTIO_DICT)
      refuse("the checkpoint's root is " + std::string(a_kind(t_->kind(t_->ctx, root))) +
             "; safetensors holds a dict of name -> tensor");
    metadata_.emplace_back("format", "pt");
    collect(root, "");
    if (options)
      for (size_t i = 0; i < options->count; ++i) {
        std::string k = options->items[i].key;
        if (k.rfind("meta.", 0) == 0) set_metadata(k.substr(5), options->items[i].value);
        else
          throw PluginError(CKPTIO_INVALID_ARGUMENT,
                            file_ + ": unknown safetensors option '" + k +
                                "' (options: meta.KEY=VALUE)");
      }

    json header = json::object();
    json& meta = header["__metadata__"] = json::object();
    for (const auto& [k, v] : metadata_) meta[k] = v;
    uint64_t pos = 0;
    for (const OutTensor& o : tensors_) {
      header[o.name] = {{"dtype", o.dtype->name},
                        {"shape", o.shape},
                        {"data_offsets", {pos, pos + o.nbytes}}};
      pos += o.nbytes;
    }
    std::string text;
    try {
      text = header.dump();
    } catch (const json::exception& e) {
      throw PluginError(CKPTIO_INVALID_ARGUMENT,
                        file_ + ": a tensor name or metadata is not valid UTF-8");
    }
    text.append((8 - text.size() % 8) % 8, ' ');
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
    ST_CHECK(sink_->write(sink_->ctx, len, 8));
    ST_CHECK(sink_->write(sink_->ctx, text.data(), text.size()));
    for (const OutTensor& o : tensors_) ST_CHECK(write_tensor(o));
    return nullptr;
  }

 private:
  [[noreturn]] void refuse(const std::string& why) {
    throw PluginError(CKPTIO_UNSUPPORTED, file_ + ": " + why);
  }

  void set_metadata(const std::string& k, const std::string& v) {
    for (auto& kv : metadata_)
      if (kv.first == k) {
        kv.second = v;
        return;
      }
    metadata_.emplace_back(k, v);
  }

  std::string text(ckptio_node n) {
    size_t len = 0;
    const char* s = t_->text(t_->ctx, n, &len);
    return std::string(s, len);
  }

  void collect(ckptio_node dict, const std::string& prefix) {
    size_t children = t_->child_count(t_->ctx, dict);
    // A HAS_ATTRS dict ends with an attributes dict (a state_dict's _metadata): safetensors
    // cannot hold it; it is dropped.
    if (t_->flags(t_->ctx, dict) & CKPTIO_DICT_HAS_ATTRS) --children;
    for (size_t i = 0; i + 1 < children; i += 2) {
      ckptio_node k = t_->child(t_->ctx, dict, i);
      ckptio_node v = t_->child(t_->ctx, dict, i + 1);
      if (t_->kind(t_->ctx, k) != CKPTIO_STR)
        refuse("a key of " + (prefix.empty() ? std::string("the root dict") : "'" + prefix + "'") +
               " is " + a_kind(t_->kind(t_->ctx, k)) + "; safetensors names are strings");
      std::string name = prefix + text(k);
      int32_t kind = t_->kind(t_->ctx, v);
      if (kind == CKPTIO_TENSOR) {
        add_tensor(name, v);
      } else if (kind == CKPTIO_DICT && prefix.empty() && name == "__metadata__") {
        add_metadata(v);
      } else if (kind == CKPTIO_DICT) {
        collect(v, name + ".");
      } else {
        refuse("'" + name + "' is " + a_kind(kind) +
               ", not a tensor; safetensors holds only tensors (save a state_dict)");
      }
    }
  }

  void add_metadata(ckptio_node dict) {
    size_t children = t_->child_count(t_->ctx, dict);
    if (t_->flags(t_->ctx, dict) & CKPTIO_DICT_HAS_ATTRS) --children;
    for (size_t i = 0; i + 1 < children; i += 2) {
      ckptio_node k = t_->child(t_->ctx, dict, i), v = t_->child(t_->ctx, dict, i + 1);
      if (t_->kind(t_->ctx, k) != CKPTIO_STR || t_->kind(t_->ctx, v) != CKPTIO_STR)
        refuse("'__metadata__' must map str to str");
      set_metadata(text(k), text(v));
    }
  }

  void add_tensor(const std::string& name, ckptio_node node) {
    if (!names_.insert(name).second)
      refuse("two tensors flatten to the name '" + name + "'");
    if (name == "__metadata__") refuse("a tensor cannot be named '__metadata__' in safetensors");
    ckptio_tensor_desc d{};
    d.struct_size = sizeof d;
    t_->tensor(t_->ctx, node, &d);
    if (d.flags & CKPTIO_TENSOR_STORAGE) refuse("'" + name + "' is a bare storage, not a tensor");
    if (d.flags & (CKPTIO_TENSOR_CONJ | CKPTIO_TENSOR_NEG))
      refuse("'" + name + "' is a lazily conjugated or negated view; resolve it first");
    OutTensor o;
    o.name = name;
    o.dtype = dtype_by_code(d.dtype);
    if (!o.dtype) refuse("'" + name + "' has a dtype (code " + std::to_string(d.dtype) +
                         ") that safetensors cannot store");
    if (d.ndim > kMaxDims || d.storage >= t_->storage_count)
      throw PluginError(CKPTIO_INVALID_ARGUMENT, file_ + ": tensor '" + name + "' is malformed");
    o.storage = d.storage;
    o.shape.assign(d.shape, d.shape + d.ndim);
    o.strides.assign(d.strides, d.strides + d.ndim);
    o.offset = d.storage_offset;
    // Element count and the span of storage elements the view touches (128-bit: a hostile
    // tree cannot overflow it with 64 dims of int64).
    __int128 numel = 1, lo = o.offset, hi = o.offset;
    for (size_t k = 0; k < d.ndim; ++k) {
      if (o.shape[k] < 0) refuse("'" + name + "' has a negative dimension");
      numel *= o.shape[k];
      if (numel > (__int128(1) << 62)) refuse("'" + name + "' is too large");
      if (o.shape[k] == 0) continue;
      __int128 ext = __int128(o.strides[k]) * (o.shape[k] - 1);
      (ext < 0 ? lo : hi) += ext;
    }
    ckptio_storage_desc sd{};
    sd.struct_size = sizeof sd;
    t_->storage(t_->ctx, o.storage, &sd);
    uint32_t es = o.dtype->size;
    if (numel > 0 && (lo < 0 || (hi + 1) * es > __int128(sd.nbytes)))
      throw PluginError(CKPTIO_INVALID_ARGUMENT,
                        file_ + ": tensor '" + name + "' reaches outside its storage");
    o.nbytes = static_cast<uint64_t>(numel) * es;
    tensors_.push_back(std::move(o));
  }

  bool contiguous(const OutTensor& o) const {
    int64_t expect = 1;
    for (size_t k = o.shape.size(); k-- > 0;) {
      if (o.shape[k] != 1 && o.strides[k] != expect) return false;
      expect *= o.shape[k];
    }
    return true;
  }

  // The storage's bytes in memory: the host's, or a copy read through read_storage.
  const uint8_t* storage_bytes(uint32_t index) {
    if (const void* p = t_->storage_data(t_->ctx, index)) return static_cast<const uint8_t*>(p);
    if (copy_index_ != index) {
      ckptio_storage_desc sd{};
      sd.struct_size = sizeof sd;
      t_->storage(t_->ctx, index, &sd);
      copy_.resize(sd.nbytes);
      if (ckptio_status st = t_->read_storage(t_->ctx, index, 0, copy_.data(), sd.nbytes)) {
        std::string msg = g_host->status_message(st);
        int32_t code = g_host->status_code(st);
        g_host->release_status(st);
        throw PluginError(code, msg);
      }
      copy_index_ = index;
    }
    return copy_.data();
  }

  ckptio_status flush() {
    if (buf_.empty()) return nullptr;
    ckptio_status st = sink_->write(sink_->ctx, buf_.data(), buf_.size());
    buf_.clear();
    return st;
  }

  ckptio_status write_tensor(const OutTensor& o) {
    if (o.nbytes == 0) return nullptr;
    const uint32_t es = o.dtype->size;
    const uint8_t* base = storage_bytes(o.storage);
    if (contiguous(o))
      return sink_->write(sink_->ctx, base + uint64_t(o.offset) * es, o.nbytes);
    // Gather a strided view in row-major order, one innermost run at a time.
    size_t nd = o.shape.size();
    int64_t inner = o.shape[nd - 1], inner_stride = o.strides[nd - 1];
    std::vector<int64_t> idx(nd, 0);
    uint64_t runs = o.nbytes / es / uint64_t(inner);
    buf_.reserve(kChunk);
    for (uint64_t r = 0; r < runs; ++r) {
      int64_t off = o.offset;
      for (size_t k = 0; k + 1 < nd; ++k) off += idx[k] * o.strides[k];
      for (int64_t j = 0; j < inner; ++j) {
        const uint8_t* p = base + uint64_t(off + j * inner_stride) * es;
        buf_.insert(buf_.end(), p, p + es);
      }
      if (buf_.size() >= kChunk) ST_CHECK(flush());
      for (size_t k = nd - 1; k-- > 0;) {
        if (++idx[k] < o.shape[k]) break;
        idx[k] = 0;
      }
    }
    return flush();
  }

  const ckptio_tree* t_;
  const ckptio_sink* sink_;
  std::string file_;
  std::vector<OutTensor> tensors_;
  std::unordered_set<std::string> names_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::vector<uint8_t> buf_, copy_;
  uint32_t copy_index_ = UINT32_MAX;
};

ckptio_status st_save(uint32_t, const ckptio_tree* tree, const ckptio_sink* sink,
                      const ckptio_options* options) {
  return ckptio::sdk::guard(g_host, "safetensors: save", [&]() -> ckptio_status {
    return Writer(tree, sink).run(options);
  });
}

const ckptio_format_info kFormats[] = {
    {"safetensors-example", "Hugging Face safetensors (the SDK's example plugin)",
     ".safetensors", CKPTIO_CAN_READ | CKPTIO_CAN_WRITE}};

const ckptio_plugin_api* make_api(const ckptio_host_api* host) {
  // A host table shorter than version 1's (which ends with find_format) is refused.
  if (!CKPTIO_HAS_FIELD(host, ckptio_host_api, find_format)) return nullptr;
  g_host = host;
  static ckptio_plugin_api api = [] {
    ckptio_plugin_api a{};
    a.struct_size = sizeof a;
    a.abi_version = CKPTIO_ABI_VERSION;
    a.name = "safetensors-example";
    a.version = "0.1.0";
    a.format_count = 1;
    a.formats = kFormats;
    a.probe = st_probe;
    a.open = st_open;
    a.read_storage = st_read_storage;
    a.close = st_close;
    a.save = st_save;
    return a;
  }();
  return &api;
}

}  // namespace

CKPTIO_DEFINE_PLUGIN(make_api)
