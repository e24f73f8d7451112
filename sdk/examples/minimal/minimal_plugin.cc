// The smallest useful ckptio plugin (walked through in sdk/README.md). Format "f32raw": the
// 8 bytes "F32RAW\0\0", then little-endian float32 values. Reads as {"values": float32[n]};
// writes the first value of a dict when it is a contiguous float32 tensor.
#include <cstring>
#include <string>

#include "ckptio/plugin.hpp"

namespace {
using ckptio::sdk::PluginError;
const ckptio_host_api* host;
const char kMagic[8] = {'F', '3', '2', 'R', 'A', 'W', 0, 0};

int32_t probe(uint32_t, const uint8_t* head, size_t n, uint64_t size) {
  return n >= 8 && std::memcmp(head, kMagic, 8) == 0 && (size - 8) % 4 == 0 ? 100 : 0;
}

ckptio_status open(uint32_t, const ckptio_source* src, const ckptio_options*,
                   const ckptio_builder* b, ckptio_reader** out) {
  return ckptio::sdk::guard(host, "f32raw: open", [&]() -> ckptio_status {
    if (src->size < 8 || (src->size - 8) % 4)
      throw PluginError(CKPTIO_CORRUPT, std::string(src->name) + ": not an f32raw file");
    ckptio_storage_desc s{sizeof s, CKPTIO_DTYPE_FLOAT32, "values", "cpu", src->size - 8, 8};
    if (ckptio_status st = b->add_storage(b->ctx, &s)) return st;
    int64_t shape[1] = {int64_t(src->size - 8) / 4}, strides[1] = {1};
    ckptio_tensor_desc t{sizeof t, CKPTIO_DTYPE_FLOAT32, 1, /*storage*/ 0, shape, strides, 0, 0};
    if (ckptio_status st = b->begin(b->ctx, CKPTIO_DICT, 1, nullptr, 0, 0)) return st;
    if (ckptio_status st = b->scalar(b->ctx, CKPTIO_STR, 0, 0, "values", 6)) return st;
    if (ckptio_status st = b->tensor(b->ctx, &t)) return st;
    *out = nullptr;  // no per-file state: the bytes are plain, the host reads them itself
    return b->end(b->ctx);
  });
}

ckptio_status read_storage(ckptio_reader*, uint32_t, uint64_t, void*, uint64_t) {
  return host->make_status(CKPTIO_INTERNAL, "f32raw: storages are plain");
}
void close(ckptio_reader*) {}

ckptio_status save(uint32_t, const ckptio_tree* t, const ckptio_sink* sink,
                   const ckptio_options*) {
  return ckptio::sdk::guard(host, "f32raw: save", [&]() -> ckptio_status {
    ckptio_node v = t->kind(t->ctx, t->root) == CKPTIO_DICT && t->child_count(t->ctx, t->root) >= 2
                        ? t->child(t->ctx, t->root, 1) : nullptr;
    ckptio_tensor_desc d{};
    d.struct_size = sizeof d;
    if (v && t->kind(t->ctx, v) == CKPTIO_TENSOR) t->tensor(t->ctx, v, &d);
    if (!v || d.dtype != CKPTIO_DTYPE_FLOAT32 || d.ndim != 1 || (d.shape[0] > 1 && d.strides[0] != 1))
      throw PluginError(CKPTIO_UNSUPPORTED, std::string(sink->name) +
                                                ": f32raw writes {name: 1-D contiguous float32}");
    const uint8_t* bytes = static_cast<const uint8_t*>(t->storage_data(t->ctx, d.storage));
    if (!bytes) throw PluginError(CKPTIO_INVALID_ARGUMENT, "f32raw: storage bytes not loaded");
    if (ckptio_status st = sink->write(sink->ctx, kMagic, 8)) return st;
    return sink->write(sink->ctx, bytes + 4 * d.storage_offset, 4 * uint64_t(d.shape[0]));
  });
}

const ckptio_format_info kFormats[] = {
    {"f32raw", "raw float32 values", ".f32", CKPTIO_CAN_READ | CKPTIO_CAN_WRITE}};

const ckptio_plugin_api* make_api(const ckptio_host_api* h) {
  host = h;
  static const ckptio_plugin_api api = {sizeof api, CKPTIO_ABI_VERSION, "f32raw", "1.0", 1,
                                        kFormats, probe, open, read_storage, close, save};
  return &api;
}
}  // namespace

CKPTIO_DEFINE_PLUGIN(make_api)
