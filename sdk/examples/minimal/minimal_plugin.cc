// The smallest useful ckptio plugin (walked through in sdk/README.md). Format "f32raw": the
// 8 bytes "F32RAW\0\0", then little-endian float32 values. Reads as {"values": float32[n]};
// writes the first value of a dict when it is a contiguous float32 tensor.
// ABI 2's members, minimally: a directory of "<key>.f32" files reads as {key: values, ...},
// and `--option dir=1` writes a dict of such tensors as one.
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "ckptio/plugin.hpp"

namespace {
using ckptio::sdk::PluginError;
const ckptio_host_api* host;
const char kMagic[8] = {'F', '3', '2', 'R', 'A', 'W', 0, 0};

bool is_f32(const std::string& n) {
  return n.size() > 4 && n.compare(n.size() - 4, 4, ".f32") == 0;
}

int32_t probe(uint32_t, const uint8_t* head, size_t n, uint64_t size) {
  return n >= 8 && std::memcmp(head, kMagic, 8) == 0 && (size - 8) % 4 == 0 ? 100 : 0;
}
int32_t probe_directory(uint32_t, const char* const* names, uint64_t count) {  // ABI 2
  for (uint64_t i = 0; i < count; ++i)
    if (is_f32(names[i])) return 50;
  return 0;
}

ckptio_status open(uint32_t, const ckptio_source* src, const ckptio_options*,
                   const ckptio_builder* b, ckptio_reader** out) {
  return ckptio::sdk::guard(host, "f32raw: open", [&]() -> ckptio_status {
    struct File { std::string key; const ckptio_source* src; uint32_t member; };
    std::vector<File> files;  // a file is its own member 0; a directory's .f32 files are members
    if (CKPTIO_HAS_FIELD(src, ckptio_source, kind) && src->kind == CKPTIO_SOURCE_DIRECTORY) {
      for (uint64_t i = 0; i < src->member_count; ++i) {
        const std::string name = src->members[i];
        if (!is_f32(name)) continue;  // config.json and the like
        File& f = files.emplace_back(File{name.substr(0, name.size() - 4), nullptr, 0});
        ckptio_status st = src->open_member(src->ctx, name.c_str(), &f.member, &f.src);
        if (st) return st;  // the host's reason names the member
      }
    } else {
      files.push_back(File{"values", src, 0});
    }
    for (const File& f : files) {  // every storage first, then the tree
      if (f.src->size < 8 || (f.src->size - 8) % 4)
        throw PluginError(CKPTIO_CORRUPT, std::string(f.src->name) + ": not an f32raw file");
      ckptio_storage_desc s{sizeof s, CKPTIO_DTYPE_FLOAT32, f.key.c_str(), "cpu",
                            f.src->size - 8, /*file_offset*/ 8, /*member*/ f.member};
      if (ckptio_status st = b->add_storage(b->ctx, &s)) return st;
    }
    if (ckptio_status st = b->begin(b->ctx, CKPTIO_DICT, files.size(), nullptr, 0, 0)) return st;
    for (uint32_t i = 0; i < files.size(); ++i) {
      int64_t shape[1] = {int64_t(files[i].src->size - 8) / 4}, strides[1] = {1};
      ckptio_tensor_desc t{sizeof t, CKPTIO_DTYPE_FLOAT32, 1, /*storage*/ i, shape, strides, 0, 0};
      const std::string& key = files[i].key;
      if (ckptio_status st = b->scalar(b->ctx, CKPTIO_STR, 0, 0, key.data(), key.size())) return st;
      if (ckptio_status st = b->tensor(b->ctx, &t)) return st;
    }
    *out = nullptr;  // no per-file state: the bytes are plain, the host reads them itself
    return b->end(b->ctx);
  });
}

ckptio_status read_storage(ckptio_reader*, uint32_t, uint64_t, void*, uint64_t) {
  return host->make_status(CKPTIO_INTERNAL, "f32raw: storages are plain");
}
void close(ckptio_reader*) {}

// Writes tensor `v` to `out` as an f32raw file.
ckptio_status write_values(const ckptio_tree* t, ckptio_node v, const ckptio_sink* out) {
  ckptio_tensor_desc d{};
  d.struct_size = sizeof d;
  if (v && t->kind(t->ctx, v) == CKPTIO_TENSOR) t->tensor(t->ctx, v, &d);
  if (!v || d.dtype != CKPTIO_DTYPE_FLOAT32 || d.ndim != 1 || (d.shape[0] > 1 && d.strides[0] != 1))
    throw PluginError(CKPTIO_UNSUPPORTED, std::string(out->name) +
                                              ": f32raw writes {name: 1-D contiguous float32}");
  const uint8_t* bytes = static_cast<const uint8_t*>(t->storage_data(t->ctx, d.storage));
  if (!bytes) throw PluginError(CKPTIO_INVALID_ARGUMENT, "f32raw: storage bytes not loaded");
  if (ckptio_status st = out->write(out->ctx, kMagic, 8)) return st;
  return out->write(out->ctx, bytes + 4 * d.storage_offset, 4 * uint64_t(d.shape[0]));
}

ckptio_status save(uint32_t, const ckptio_tree* t, const ckptio_sink* sink,
                   const ckptio_options* options) {
  return ckptio::sdk::guard(host, "f32raw: save", [&]() -> ckptio_status {
    const bool dict = t->kind(t->ctx, t->root) == CKPTIO_DICT;
    const size_t n = dict ? t->child_count(t->ctx, t->root) : 0;
    if (!ckptio::sdk::option_flag(options, "dir"))
      return write_values(t, n >= 2 ? t->child(t->ctx, t->root, 1) : nullptr, sink);
    // ABI 2: one member "<key>.f32" per entry; the host commits the directory after save()
    // returns. The replaced directory's other .f32 files go, its other files stay.
    if (!dict) throw PluginError(CKPTIO_UNSUPPORTED, std::string(sink->name) + ": not a dict");
    std::set<std::string> written;
    for (size_t i = 0; i + 1 < n; i += 2) {
      ckptio_node key = t->child(t->ctx, t->root, i);
      size_t len = 0;
      if (t->kind(t->ctx, key) != CKPTIO_STR)
        throw PluginError(CKPTIO_UNSUPPORTED, std::string(sink->name) + ": keys must be str");
      const char* text = t->text(t->ctx, key, &len);
      const std::string name = std::string(text, len) + ".f32";
      const ckptio_sink* member = nullptr;  // the host refuses a name with '/'
      if (ckptio_status st = sink->open_member(sink->ctx, name.c_str(), &member)) return st;
      if (ckptio_status st = write_values(t, t->child(t->ctx, t->root, i + 1), member)) return st;
      written.insert(name);
    }
    for (uint64_t i = 0; i < sink->existing_count; ++i)
      if (is_f32(sink->existing[i]) && !written.count(sink->existing[i]))
        if (ckptio_status st = sink->drop_existing(sink->ctx, sink->existing[i])) return st;
    return nullptr;
  });
}

const ckptio_format_info kFormats[] = {
    {"f32raw", "raw float32 values", ".f32", CKPTIO_CAN_READ | CKPTIO_CAN_WRITE}};

const ckptio_plugin_api* make_api(const ckptio_host_api* h) {
  host = h;
  static const ckptio_plugin_api api = {sizeof api, CKPTIO_ABI_VERSION, "f32raw", "1.0", 1,
                                        kFormats, probe, open, read_storage, close, save,
                                        /*options*/ nullptr, /*verify*/ nullptr, probe_directory};
  return &api;
}
}  // namespace

CKPTIO_DEFINE_PLUGIN(make_api)  // refuses a host that does not speak ABI 2
