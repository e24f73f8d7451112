// A version-1 plugin as the released SDK built one: compiled against the frozen v1 header
// (tests/abi/v1/ckptio/plugin.h, first and only on its include path; not plugin.hpp, which
// belongs to the current SDK), so every struct it makes or reads has its v1 size. The ABI
// tests load it into the current host beside a v2 plugin.
//
// Format "abi-v1": 64 header bytes ("ABIV1\0\0\0", then zeros), then little-endian float32
// values. Reads as {"values": float32[n] (plain at 64), "doubled": float32[n] (2 * values,
// made by read_storage), "abi": 1}; writes the dict's "values" tensor (else its first).
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "ckptio/plugin.h"

static_assert(CKPTIO_ABI_VERSION == 1, "the v1 test plugin must be built against the v1 header");
static_assert(sizeof(ckptio_storage_desc) == 40, "version 1's storage descriptor ends at 40");

namespace {

const ckptio_host_api* g_host = nullptr;
const char kMagic[8] = {'A', 'B', 'I', 'V', '1', 0, 0, 0};
constexpr uint64_t kHeader = 64;

struct Failure {
  int32_t code;
  std::string message;
};

// The boundary guard a v1 plugin without plugin.hpp writes itself.
template <class Fn>
ckptio_status guarded(const char* what, Fn&& fn) noexcept {
  try {
    return fn();
  } catch (const Failure& f) {
    return g_host->make_status(f.code, f.message.c_str());
  } catch (const std::bad_alloc&) {
    return g_host->make_status(CKPTIO_LIMIT, (std::string(what) + ": out of memory").c_str());
  } catch (...) {
    return g_host->make_status(CKPTIO_INTERNAL, (std::string(what) + ": exception").c_str());
  }
}

struct Reader {
  const ckptio_source* source;  // valid until close(), as the ABI promises
  uint64_t nbytes;
};

int32_t probe(uint32_t, const uint8_t* head, size_t n, uint64_t size) {
  return n >= 8 && std::memcmp(head, kMagic, 8) == 0 && size >= kHeader &&
                 (size - kHeader) % 4 == 0
             ? 100
             : 0;
}

ckptio_status open(uint32_t, const ckptio_source* src, const ckptio_options*,
                   const ckptio_builder* b, ckptio_reader** out) {
  return guarded("abi-v1: open", [&]() -> ckptio_status {
    char head[8];
    if (src->size < kHeader || (src->size - kHeader) % 4)
      throw Failure{CKPTIO_CORRUPT, std::string(src->name) + ": not an abi-v1 file"};
    if (ckptio_status st = src->read_at(src->ctx, 0, head, 8)) return st;
    if (std::memcmp(head, kMagic, 8) != 0)
      throw Failure{CKPTIO_CORRUPT, std::string(src->name) + ": no abi-v1 magic"};
    const uint64_t nbytes = src->size - kHeader;
    // A v1 descriptor, followed by bytes a host ignoring struct_size would take for v2's
    // member: such a host would then look for member 0xFFFFFFFF and fail the test.
    struct {
      ckptio_storage_desc d;
      uint32_t poison[2];
    } s;
    std::memset(&s, 0xFF, sizeof s);
    s.d = ckptio_storage_desc{sizeof s.d, CKPTIO_DTYPE_FLOAT32, "values", "cpu", nbytes, kHeader};
    if (ckptio_status st = b->add_storage(b->ctx, &s.d)) return st;
    s.d = ckptio_storage_desc{sizeof s.d, CKPTIO_DTYPE_FLOAT32, "doubled", "cpu", nbytes,
                              CKPTIO_NOT_PLAIN};
    if (ckptio_status st = b->add_storage(b->ctx, &s.d)) return st;
    int64_t shape[1] = {int64_t(nbytes / 4)}, strides[1] = {1};
    ckptio_tensor_desc t{sizeof t, CKPTIO_DTYPE_FLOAT32, 1, 0, shape, strides, 0, 0};
    if (ckptio_status st = b->begin(b->ctx, CKPTIO_DICT, 3, nullptr, 0, 0)) return st;
    if (ckptio_status st = b->scalar(b->ctx, CKPTIO_STR, 0, 0, "values", 6)) return st;
    if (ckptio_status st = b->tensor(b->ctx, &t)) return st;
    if (ckptio_status st = b->scalar(b->ctx, CKPTIO_STR, 0, 0, "doubled", 7)) return st;
    t.storage = 1;
    if (ckptio_status st = b->tensor(b->ctx, &t)) return st;
    if (ckptio_status st = b->scalar(b->ctx, CKPTIO_STR, 0, 0, "abi", 3)) return st;
    if (ckptio_status st = b->scalar(b->ctx, CKPTIO_INT, 1, 0, nullptr, 0)) return st;
    if (ckptio_status st = b->end(b->ctx)) return st;
    *out = reinterpret_cast<ckptio_reader*>(new Reader{src, nbytes});
    return nullptr;
  });
}

ckptio_status read_storage(ckptio_reader* r, uint32_t index, uint64_t offset, void* dst,
                           uint64_t n) {
  return guarded("abi-v1: read_storage", [&]() -> ckptio_status {
    const Reader& reader = *reinterpret_cast<const Reader*>(r);
    if (index != 1 || offset % 4 || n % 4 || offset > reader.nbytes || n > reader.nbytes - offset)
      throw Failure{CKPTIO_INVALID_ARGUMENT, std::string(reader.source->name) +
                                                 ": abi-v1 read_storage out of range"};
    std::vector<float> v(n / 4);
    const ckptio_source* src = reader.source;
    if (ckptio_status st = src->read_at(src->ctx, kHeader + offset, v.data(), n)) return st;
    for (float& f : v) f *= 2;
    std::memcpy(dst, v.data(), n);
    return nullptr;
  });
}

void close(ckptio_reader* r) { delete reinterpret_cast<Reader*>(r); }

ckptio_status save(uint32_t, const ckptio_tree* t, const ckptio_sink* sink,
                   const ckptio_options*) {
  return guarded("abi-v1: save", [&]() -> ckptio_status {
    const std::string name = sink->name;
    if (t->kind(t->ctx, t->root) != CKPTIO_DICT)
      throw Failure{CKPTIO_UNSUPPORTED, name + ": abi-v1 writes a dict"};
    ckptio_node v = nullptr;
    for (size_t i = 0; i + 1 < t->child_count(t->ctx, t->root); i += 2) {
      ckptio_node key = t->child(t->ctx, t->root, i), value = t->child(t->ctx, t->root, i + 1);
      if (t->kind(t->ctx, value) != CKPTIO_TENSOR) continue;
      size_t len = 0;
      const char* text = t->kind(t->ctx, key) == CKPTIO_STR ? t->text(t->ctx, key, &len) : "";
      if (!v || std::string(text, len) == "values") v = value;
      if (std::string(text, len) == "values") break;
    }
    ckptio_tensor_desc d{};
    d.struct_size = sizeof d;
    if (v) t->tensor(t->ctx, v, &d);
    if (!v || d.dtype != CKPTIO_DTYPE_FLOAT32 || d.ndim != 1 ||
        (d.shape[0] > 1 && d.strides[0] != 1))
      throw Failure{CKPTIO_UNSUPPORTED, name + ": abi-v1 writes a 1-D contiguous float32 tensor"};
    const uint64_t n = 4 * uint64_t(d.shape[0]), at = 4 * uint64_t(d.storage_offset);
    std::vector<uint8_t> bytes(n);
    if (const void* data = t->storage_data(t->ctx, d.storage))
      std::memcpy(bytes.data(), static_cast<const uint8_t*>(data) + at, n);
    else if (ckptio_status st = t->read_storage(t->ctx, d.storage, at, bytes.data(), n))
      return st;
    char header[kHeader] = {};
    std::memcpy(header, kMagic, 8);
    if (ckptio_status st = sink->write(sink->ctx, header, kHeader)) return st;
    return sink->write(sink->ctx, bytes.data(), n);
  });
}

const ckptio_format_info kFormats[] = {
    {"abi-v1", "ABI test format of a version-1 plugin", ".abiv1",
     CKPTIO_CAN_READ | CKPTIO_CAN_WRITE}};

}  // namespace

extern "C" CKPTIO_PLUGIN_EXPORT const ckptio_plugin_api* ckptio_plugin_entry(
    const ckptio_host_api* host, uint32_t min_abi, uint32_t max_abi) {
  if (!host || min_abi > 1 || max_abi < 1) return nullptr;  // speaks version 1 only
  g_host = host;
  static const ckptio_plugin_api api = {sizeof api, 1,    "abi-v1", "1.0",  1,      kFormats,
                                        probe,      open, read_storage, close, save, nullptr,
                                        nullptr};
  return &api;
}
