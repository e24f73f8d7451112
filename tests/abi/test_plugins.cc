// Test plugins for the ABI tests, one variant per ABI_VARIANT_* define (tests/abi/CMakeLists.txt
// builds each as its own MODULE). All but ABI_VARIANT_GOOD are broken on purpose; the host
// must record why and keep working with the other plugins.
//
//   NO_ENTRY        exports no ckptio_plugin_entry
//   ENTRY_THROWS    the entry function throws a C++ exception
//   ABI_TOO_NEW     speaks only the ABI after the host's (CKPTIO_ABI_VERSION + 1, now 3):
//                   returns NULL for the host's 1..CKPTIO_ABI_VERSION
//   ABI_LIES        ignores the range and answers abi_version CKPTIO_ABI_VERSION + 1
//   ABI_TOO_OLD     answers abi_version 0
//   SMALL_STRUCT    a table whose struct_size ends before probe
//   PROBE_THROWS    probe() throws (a plugin that forgot the plugin.hpp guard)
//   PROBE_NONSENSE  two formats whose probe() returns 1000 and -5
//   MISSING_DEP     linked against a library the loader cannot find
//   GOOD            a working plugin (format "abi-good"), built with -fno-gnu-unique
//
// The GOOD format: "ABIGOOD\n" then decimal text N; the tree is {"n": N, "tag": "<tag>"}.
#include <cstring>
#include <stdexcept>
#include <string>

#include "ckptio/plugin.hpp"

// An inline variable and a template static with external linkage: GCC emits them as
// STB_GNU_UNIQUE unless the plugin is built with -fno-gnu-unique, and a GNU_UNIQUE symbol
// makes dlclose() a no-op, which would hide a host that unloads a plugin it still uses. The
// GOOD variant is built with default visibility so that this really applies to it.
namespace abi_test {
inline std::string g_tag = "abi-good";
template <class T>
struct Counter {
  static inline int calls = 0;
};
}  // namespace abi_test
using abi_test::Counter;
using abi_test::g_tag;

namespace {

const ckptio_host_api* g_host = nullptr;

#if defined(ABI_VARIANT_MISSING_DEP)
extern "C" int ckptio_abi_dep_value(void);  // in libckptio-abi-dep.so
#endif

constexpr char kMagic[] = "ABIGOOD\n";

int32_t probe(uint32_t format, const uint8_t* head, size_t n, uint64_t) {
#if defined(ABI_VARIANT_PROBE_THROWS)
  throw std::runtime_error("probe-throws: deliberately thrown from probe()");
#elif defined(ABI_VARIANT_PROBE_NONSENSE)
  (void)head;
  (void)n;
  return format == 0 ? 1000 : -5;
#else
  ++Counter<int>::calls;
  return n >= 8 && std::memcmp(head, kMagic, 8) == 0 ? 100 : 0;
#endif
}

ckptio_status open(uint32_t, const ckptio_source* src, const ckptio_options*,
                   const ckptio_builder* b, ckptio_reader** out) {
  return ckptio::sdk::guard(g_host, "abi-test: open", [&]() -> ckptio_status {
#if !defined(ABI_VARIANT_GOOD)
    throw ckptio::sdk::PluginError(CKPTIO_INTERNAL, std::string(src->name) +
                                                        ": a broken test plugin was chosen");
#endif
    if (src->size < 9 || src->size > 64)
      throw ckptio::sdk::PluginError(CKPTIO_CORRUPT, std::string(src->name) + ": bad size");
    char buf[64];
    if (ckptio_status st = src->read_at(src->ctx, 0, buf, src->size)) return st;
    std::string text(buf + 8, src->size - 8);
    int64_t n = std::stoll(text);
    if (ckptio_status st = b->begin(b->ctx, CKPTIO_DICT, 2, nullptr, 0, 0)) return st;
    if (ckptio_status st = b->scalar(b->ctx, CKPTIO_STR, 0, 0, "n", 1)) return st;
    if (ckptio_status st = b->scalar(b->ctx, CKPTIO_INT, n, 0, nullptr, 0)) return st;
    if (ckptio_status st = b->scalar(b->ctx, CKPTIO_STR, 0, 0, "tag", 3)) return st;
    if (ckptio_status st = b->scalar(b->ctx, CKPTIO_STR, 0, 0, g_tag.data(), g_tag.size()))
      return st;
    if (ckptio_status st = b->end(b->ctx)) return st;
    *out = nullptr;  // nothing to keep: no storages
    return nullptr;
  });
}

ckptio_status read_storage(ckptio_reader*, uint32_t, uint64_t, void*, uint64_t) {
  return g_host->make_status(CKPTIO_INTERNAL, "abi-test: no storages");
}

void close(ckptio_reader*) {}

ckptio_status save(uint32_t, const ckptio_tree* t, const ckptio_sink* sink,
                   const ckptio_options*) {
  return ckptio::sdk::guard(g_host, "abi-test: save", [&]() -> ckptio_status {
    // Expects {"n": int, ...}: writes the first value.
    if (t->kind(t->ctx, t->root) != CKPTIO_DICT || t->child_count(t->ctx, t->root) < 2)
      throw ckptio::sdk::PluginError(CKPTIO_UNSUPPORTED, std::string(sink->name) +
                                                             ": abi-good writes {\"n\": int}");
    ckptio_node v = t->child(t->ctx, t->root, 1);
    std::string out = std::string(kMagic) + std::to_string(t->int_value(t->ctx, v));
    return sink->write(sink->ctx, out.data(), out.size());
  });
}

#if defined(ABI_VARIANT_PROBE_NONSENSE)
const ckptio_format_info kFormats[] = {{"probe-high", "returns 1000", ".x", CKPTIO_CAN_READ},
                                       {"probe-negative", "returns -5", ".x", CKPTIO_CAN_READ}};
#elif defined(ABI_VARIANT_PROBE_THROWS)
const ckptio_format_info kFormats[] = {{"probe-throws", "throws", ".x", CKPTIO_CAN_READ}};
#elif defined(ABI_VARIANT_GOOD)
const ckptio_format_info kFormats[] = {
    {"abi-good", "ABI test format", ".abigood", CKPTIO_CAN_READ | CKPTIO_CAN_WRITE}};
#else
const ckptio_format_info kFormats[] = {{"abi-broken", "never usable", ".x", CKPTIO_CAN_READ}};
#endif

[[maybe_unused]] const ckptio_plugin_api* make_api(const ckptio_host_api* host) {
  g_host = host;
  static ckptio_plugin_api api{};
  api.struct_size = sizeof api;
  api.abi_version = CKPTIO_ABI_VERSION;
  api.name = "abi-test";
  api.version = "0";
  api.format_count = sizeof kFormats / sizeof kFormats[0];
  api.formats = kFormats;
  api.probe = probe;
  api.open = open;
  api.read_storage = read_storage;
  api.close = close;
  api.save = save;
#if defined(ABI_VARIANT_ABI_LIES)
  api.abi_version = CKPTIO_ABI_VERSION + 1;  // a version no host speaks yet
#elif defined(ABI_VARIANT_ABI_TOO_OLD)
  api.abi_version = 0;
#elif defined(ABI_VARIANT_SMALL_STRUCT)
  api.struct_size = offsetof(ckptio_plugin_api, probe);
#elif defined(ABI_VARIANT_MISSING_DEP)
  if (ckptio_abi_dep_value() != 42) return nullptr;
#endif
  return &api;
}

}  // namespace

#if defined(ABI_VARIANT_NO_ENTRY)
extern "C" CKPTIO_PLUGIN_EXPORT const ckptio_plugin_api* ckptio_plugin_entry_v0(
    const ckptio_host_api* host, uint32_t, uint32_t) {
  return make_api(host);
}
#elif defined(ABI_VARIANT_ENTRY_THROWS)
extern "C" CKPTIO_PLUGIN_EXPORT const ckptio_plugin_api* ckptio_plugin_entry(
    const ckptio_host_api*, uint32_t, uint32_t) {
  throw std::runtime_error("entry-throws");
}
#elif defined(ABI_VARIANT_ABI_TOO_NEW)
extern "C" CKPTIO_PLUGIN_EXPORT const ckptio_plugin_api* ckptio_plugin_entry(
    const ckptio_host_api* host, uint32_t min_abi, uint32_t max_abi) {
  // Speaks only the version after the one it was built with, which no host speaks yet.
  constexpr uint32_t kOnly = CKPTIO_ABI_VERSION + 1;
  if (min_abi > kOnly || max_abi < kOnly) return nullptr;
  return make_api(host);
}
#else
CKPTIO_DEFINE_PLUGIN(make_api)
#endif
