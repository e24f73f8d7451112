// A version-2 test plugin with a directory format (ABI 2's members), for the ABI tests.
//
// Format "abi-dirfmt": a directory holding "dirfmt.manifest", whose first line is
// "DIRFMT 1" and each further line "<key> <member> <offset> <count>": tensor <key> is
// float32[count] at byte <offset> of the member file <member> (a name relative to the
// directory, handed to the host's open_member as written, so the tests can give it names
// the host must refuse). The manifest may also be opened as a file: its members are then
// relative to the directory holding it. Reads as {key: float32[count], ...} in manifest
// order, every storage plain in its member; writes each 1-D float32 tensor of a dict as
// "<key>.bin" and the manifest, dropping the replaced directory's other "*.bin" files.
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "ckptio/plugin.hpp"

static_assert(CKPTIO_ABI_VERSION >= 2, "the dirfmt test plugin needs ABI 2");

namespace {
using ckptio::sdk::PluginError;

const ckptio_host_api* g_host = nullptr;
constexpr char kManifest[] = "dirfmt.manifest";
constexpr char kHead[] = "DIRFMT 1\n";
constexpr uint64_t kMaxManifest = 1 << 20;

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

int32_t probe(uint32_t, const uint8_t* head, size_t n, uint64_t) {
  return n >= sizeof kHead - 1 && std::memcmp(head, kHead, sizeof kHead - 1) == 0 ? 100 : 0;
}

int32_t probe_directory(uint32_t, const char* const* names, uint64_t count) {
  for (uint64_t i = 0; i < count; ++i)
    if (std::strcmp(names[i], kManifest) == 0) return 100;
  return 0;
}

struct Entry {
  std::string key, member;
  uint64_t offset = 0, count = 0;
};

ckptio_status open(uint32_t, const ckptio_source* src, const ckptio_options*,
                   const ckptio_builder* b, ckptio_reader** out) {
  return ckptio::sdk::guard(g_host, "abi-dirfmt: open", [&]() -> ckptio_status {
    const std::string name = src->name;
    if (!CKPTIO_HAS_FIELD(src, ckptio_source, open_member) || !src->open_member)
      throw PluginError(CKPTIO_UNSUPPORTED, name + ": abi-dirfmt needs a host that opens members");
    // The manifest: the directory's member, or the file itself.
    const ckptio_source* manifest = src;
    if (src->kind == CKPTIO_SOURCE_DIRECTORY) {
      uint32_t number = 0;
      if (ckptio_status st = src->open_member(src->ctx, kManifest, &number, &manifest)) return st;
    }
    if (manifest->size > kMaxManifest)
      throw PluginError(CKPTIO_LIMIT, std::string(manifest->name) + ": manifest too large");
    std::string text(manifest->size, '\0');
    if (ckptio_status st = manifest->read_at(manifest->ctx, 0, text.data(), text.size())) return st;
    if (text.compare(0, sizeof kHead - 1, kHead) != 0)
      throw PluginError(CKPTIO_CORRUPT, std::string(manifest->name) + ": not a dirfmt manifest");
    std::vector<Entry> entries;
    std::istringstream lines(text.substr(sizeof kHead - 1));
    for (std::string line; std::getline(lines, line);) {
      if (line.empty()) continue;
      Entry e;
      std::istringstream words(line);
      if (!(words >> e.key >> e.member >> e.offset >> e.count))
        throw PluginError(CKPTIO_CORRUPT,
                          std::string(manifest->name) + ": bad line '" + line + "'");
      entries.push_back(e);
    }
    // Every storage in its member; the host must answer one number per name.
    std::map<std::string, uint32_t> numbers;
    for (const Entry& e : entries) {
      uint32_t number = 0;
      const ckptio_source* member = nullptr;
      if (ckptio_status st = src->open_member(src->ctx, e.member.c_str(), &number, &member))
        return st;  // passed back unchanged: the host's reason names the member
      if (number == 0 || !member)
        throw PluginError(CKPTIO_INTERNAL, name + ": host opened member '" + e.member +
                                               "' without a number or source");
      auto [it, fresh] = numbers.emplace(e.member, number);
      if (!fresh && it->second != number)
        throw PluginError(CKPTIO_INTERNAL, name + ": host gave member '" + e.member +
                                               "' two numbers");
      if (e.count > UINT64_MAX / 4 || e.offset > member->size ||
          4 * e.count > member->size - e.offset)
        throw PluginError(CKPTIO_CORRUPT, std::string(member->name) + ": tensor '" + e.key +
                                              "' lies outside member '" + e.member + "'");
      ckptio_storage_desc s{};
      s.struct_size = sizeof s;
      s.dtype = CKPTIO_DTYPE_FLOAT32;
      s.key = e.key.c_str();
      s.device = "cpu";
      s.nbytes = 4 * e.count;
      s.file_offset = e.offset;
      s.member = number;
      if (ckptio_status st = b->add_storage(b->ctx, &s)) return st;
    }
    if (ckptio_status st = b->begin(b->ctx, CKPTIO_DICT, entries.size(), nullptr, 0, 0)) return st;
    for (uint32_t i = 0; i < entries.size(); ++i) {
      const Entry& e = entries[i];
      int64_t shape[1] = {int64_t(e.count)}, strides[1] = {1};
      ckptio_tensor_desc t{sizeof t, CKPTIO_DTYPE_FLOAT32, 1, i, shape, strides, 0, 0};
      if (ckptio_status st = b->scalar(b->ctx, CKPTIO_STR, 0, 0, e.key.data(), e.key.size()))
        return st;
      if (ckptio_status st = b->tensor(b->ctx, &t)) return st;
    }
    *out = nullptr;  // every storage is plain: the host reads the members itself
    return b->end(b->ctx);
  });
}

ckptio_status read_storage(ckptio_reader*, uint32_t, uint64_t, void*, uint64_t) {
  return g_host->make_status(CKPTIO_INTERNAL, "abi-dirfmt: storages are plain");
}
void close(ckptio_reader*) {}

ckptio_status write_all(const ckptio_sink* sink, const void* data, uint64_t n) {
  return sink->write(sink->ctx, data, n);
}

ckptio_status save(uint32_t, const ckptio_tree* t, const ckptio_sink* sink,
                   const ckptio_options*) {
  return ckptio::sdk::guard(g_host, "abi-dirfmt: save", [&]() -> ckptio_status {
    const std::string name = sink->name;
    if (!CKPTIO_HAS_FIELD(sink, ckptio_sink, drop_existing) || !sink->open_member)
      throw PluginError(CKPTIO_UNSUPPORTED, name + ": abi-dirfmt writes directories only");
    if (t->kind(t->ctx, t->root) != CKPTIO_DICT)
      throw PluginError(CKPTIO_UNSUPPORTED, name + ": abi-dirfmt writes a dict of tensors");
    std::string manifest = kHead;
    std::map<std::string, bool> written;
    // Members are written as the entries come, so a bad entry fails the save after some of
    // them exist: the host must then leave the old directory as it was.
    for (size_t i = 0; i + 1 < t->child_count(t->ctx, t->root); i += 2) {
      ckptio_node k = t->child(t->ctx, t->root, i), v = t->child(t->ctx, t->root, i + 1);
      size_t len = 0;
      const char* text = t->kind(t->ctx, k) == CKPTIO_STR ? t->text(t->ctx, k, &len) : nullptr;
      const std::string key = text ? std::string(text, len) : "";
      if (key.empty() || key.find_first_of("/ \n") != std::string::npos)
        throw PluginError(CKPTIO_UNSUPPORTED, name + ": abi-dirfmt keys are plain words");
      ckptio_tensor_desc d{};
      d.struct_size = sizeof d;
      if (t->kind(t->ctx, v) == CKPTIO_TENSOR) t->tensor(t->ctx, v, &d);
      if (t->kind(t->ctx, v) != CKPTIO_TENSOR || d.dtype != CKPTIO_DTYPE_FLOAT32 || d.ndim != 1 ||
          (d.shape[0] > 1 && d.strides[0] != 1))
        throw PluginError(CKPTIO_UNSUPPORTED,
                          name + ": '" + key + "' is not a 1-D contiguous float32 tensor");
      const uint64_t n = 4 * uint64_t(d.shape[0]), at = 4 * uint64_t(d.storage_offset);
      std::vector<uint8_t> bytes(n);
      if (const void* data = t->storage_data(t->ctx, d.storage))
        std::memcpy(bytes.data(), static_cast<const uint8_t*>(data) + at, n);
      else if (ckptio_status st = t->read_storage(t->ctx, d.storage, at, bytes.data(), n))
        return st;
      const std::string file = key + ".bin";
      const ckptio_sink* member = nullptr;
      if (ckptio_status st = sink->open_member(sink->ctx, file.c_str(), &member)) return st;
      if (ckptio_status st = write_all(member, bytes.data(), n)) return st;
      written[file] = true;
      manifest += key + " " + file + " 0 " + std::to_string(d.shape[0]) + "\n";
    }
    const ckptio_sink* m = nullptr;
    if (ckptio_status st = sink->open_member(sink->ctx, kManifest, &m)) return st;
    if (ckptio_status st = write_all(m, manifest.data(), manifest.size())) return st;
    // Stale tensors of the checkpoint being replaced go; other files (config.json) stay.
    for (uint64_t i = 0; i < sink->existing_count; ++i) {
      const std::string old = sink->existing[i];
      if (ends_with(old, ".bin") && !written.count(old))
        if (ckptio_status st = sink->drop_existing(sink->ctx, old.c_str())) return st;
    }
    return nullptr;
  });
}

const ckptio_format_info kFormats[] = {
    {"abi-dirfmt", "ABI test format: a directory of raw float32 members", "",
     CKPTIO_CAN_READ | CKPTIO_CAN_WRITE}};

const ckptio_plugin_api* make_api(const ckptio_host_api* host) {
  g_host = host;
  static ckptio_plugin_api api{};
  api.struct_size = sizeof api;
  api.abi_version = 2;
  api.name = "abi-dirfmt";
  api.version = "1.0";
  api.format_count = 1;
  api.formats = kFormats;
  api.probe = probe;
  api.open = open;
  api.read_storage = read_storage;
  api.close = close;
  api.save = save;
  api.probe_directory = probe_directory;
  return &api;
}

}  // namespace

CKPTIO_DEFINE_PLUGIN(make_api)
