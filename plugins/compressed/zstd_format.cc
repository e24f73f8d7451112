// zstd: a standard zstd stream around another format's bytes (inner=FORMAT, default
// torch-zip). Reading hands the decompressed bytes to the inner format's plugin, found by
// name through the host (host->find_format): streamed for torch-legacy (read front to back,
// memory independent of the file's size), a bounded buffer for formats that need random
// access (torch-zip's directory is at the end). Stream layout: formats/compress/SPEC.md.
#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ckptio/plugin.hpp"
#include "formats/compress/zstd_sequential_source.h"
#include "formats/compress/zstd_stream.h"
#include "plugins/common/c_bridge.h"
#include "plugins/common/option_infos.h"
#include "plugins/compressed/compressed_format.h"

namespace ckptio::compressed {
namespace {

using namespace ckptio::plugin;
using namespace ckptio::compress;

// Formats tried, in this order, on the head of a zstd stream that does not name its inner
// format (a file compressed with the zstd tool).
const char* const kInnerCandidates[] = {"torch-zip-zstd", "torch-zip", "torch-legacy"};

struct ZstdReader final : Reader {
  std::string name;
  std::unique_ptr<CSource> compressed;
  Buffer buffer;                               // buffered mode
  std::unique_ptr<ByteSource> decoded;         // what the inner plugin reads
  ZstdSequentialSource* sequential = nullptr;  // streamed mode: decoded, as its type
  std::vector<uint32_t> to_inner;              // host storage index -> inner plugin's
  ckptio_source inner_source{};
  const ckptio_plugin_api* inner = nullptr;
  ckptio_reader* inner_reader = nullptr;
  ~ZstdReader() override {
    if (inner && inner_reader) inner->close(inner_reader);
  }
};

// Between the inner plugin and the host's builder:
//  - storages the inner plugin describes as plain point into the decompressed bytes, not
//    into the host's file: they are reported as not plain, so the host asks us for them;
//  - storages are handed to the host in the order of their bytes in the inner file (the
//    host loads in storage order; a legacy file stores storages by key sorted as strings,
//    not in the order the pickle first uses them), so that a streamed inner file is read
//    front to back. Storages come first from the inner plugin (emit_tree): they are held
//    until the first tree event, then passed on sorted, and tensors' storage indices are
//    renumbered to match.
struct BuilderShim {
  const ckptio_builder* outer = nullptr;
  struct Held {
    ckptio_storage_desc desc;
    std::string key, device;
  };
  std::vector<Held> held;
  bool flushed = false;
  std::vector<uint32_t> to_host;   // inner storage index -> host storage index
  std::vector<uint32_t> to_inner;  // host storage index -> inner storage index
  std::vector<uint64_t> offsets;   // where the inner plugin's storages start in its bytes

  ckptio_status pass_on(const Held& h, uint32_t inner_index) {
    ckptio_storage_desc copy = h.desc;
    copy.key = h.key.c_str();
    copy.device = h.device.c_str();
    copy.file_offset = CKPTIO_NOT_PLAIN;
    if (inner_index >= to_host.size()) to_host.resize(inner_index + 1, UINT32_MAX);
    to_host[inner_index] = uint32_t(to_inner.size());
    to_inner.push_back(inner_index);
    return outer->add_storage(outer->ctx, &copy);
  }
  ckptio_status flush() {
    if (flushed) return nullptr;
    flushed = true;
    std::vector<uint32_t> order(held.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return held[a].desc.file_offset < held[b].desc.file_offset;  // NOT_PLAIN (max) last
    });
    for (uint32_t i : order)
      if (ckptio_status st = pass_on(held[i], i)) return st;
    held.clear();
    return nullptr;
  }
  static ckptio_status add_storage(void* ctx, const ckptio_storage_desc* d) {
    auto* self = static_cast<BuilderShim*>(ctx);
    if (d->file_offset != CKPTIO_NOT_PLAIN) self->offsets.push_back(d->file_offset);
    Held h{*d, d->key ? d->key : "", d->device ? d->device : ""};
    const uint32_t inner_index = uint32_t(self->held.size() + self->to_inner.size());
    if (self->flushed) return self->pass_on(h, inner_index);
    self->held.push_back(std::move(h));
    return nullptr;
  }
#define CKPTIO_FORWARD(fn, params, args)             \
  static ckptio_status fn params {                   \
    auto* self = static_cast<BuilderShim*>(ctx);     \
    if (ckptio_status st = self->flush()) return st; \
    return self->outer->fn args;                     \
  }
  CKPTIO_FORWARD(scalar, (void* ctx, int32_t k, int64_t i, double f, const char* t, size_t n),
                 (self->outer->ctx, k, i, f, t, n))
  CKPTIO_FORWARD(begin, (void* ctx, int32_t k, uint64_t c, const char* nm, size_t nl, uint32_t fl),
                 (self->outer->ctx, k, c, nm, nl, fl))
  CKPTIO_FORWARD(end, (void* ctx), (self->outer->ctx))
  CKPTIO_FORWARD(share, (void* ctx, uint64_t id), (self->outer->ctx, id))
  CKPTIO_FORWARD(ref, (void* ctx, uint64_t id), (self->outer->ctx, id))
#undef CKPTIO_FORWARD
  static ckptio_status tensor(void* ctx, const ckptio_tensor_desc* d) {
    auto* self = static_cast<BuilderShim*>(ctx);
    if (ckptio_status st = self->flush()) return st;
    ckptio_tensor_desc copy = *d;
    if (d->storage < self->to_host.size() && self->to_host[d->storage] != UINT32_MAX)
      copy.storage = self->to_host[d->storage];
    else
      copy.storage = UINT32_MAX;  // the host refuses an unknown storage, as it would have
    return self->outer->tensor(self->outer->ctx, &copy);
  }
};

ckptio_status decoded_read_at(void* ctx, uint64_t offset, void* dst, uint64_t n) {
  const auto* m = static_cast<const ByteSource*>(ctx);
  Status st = m->read_at(offset, dst, n);
  return to_c(g_host, st);
}

ckptio_status open_zstd(const ckptio_source* source, const ckptio_options* options,
                        const ckptio_builder* builder, ckptio_reader** out) {
  auto r = std::make_unique<ZstdReader>();
  r->format = kZstd;
  r->name = source->name ? source->name : "<input>";
  r->compressed = std::make_unique<CSource>(g_host, source);
  const CSource& src = *r->compressed;
  uint8_t head[512];
  const size_t head_n = size_t(std::min<uint64_t>(sizeof head, source->size));
  Status st = src.read_at(0, head, head_n);
  if (!st.ok()) return to_c(g_host, st);
  std::string inner = sdk::option(options, "inner", inner_format_from_head(head, head_n));
  const uint64_t max_size = sdk::option_uint(options, "max_size", default_max_size());
  if (!g_host->find_format)
    return g_host->make_status(
        CKPTIO_UNSUPPORTED, (r->name + ": the host cannot chain formats (no find_format)").c_str());

  uint32_t index = 0;
  if (inner.empty()) {  // not written by ckptio (the zstd tool): probe the decompressed head
    auto dhead = ZstdSequentialSource::decode_head(src, 4096, max_size);
    if (!dhead.ok()) return to_c(g_host, dhead.status());
    const auto* h = reinterpret_cast<const uint8_t*>(dhead->data());
    int32_t best = 0;
    for (const char* name : kInnerCandidates) {
      uint32_t i = 0;
      const ckptio_plugin_api* api = g_host->find_format(name, &i);
      if (!api) continue;
      int32_t score = api->probe(i, h, dhead->size(), UINT64_MAX);
      if (score > best) best = score, inner = name, r->inner = api, index = i;
    }
    if (!r->inner)
      return g_host->make_status(
          CKPTIO_UNSUPPORTED,
          (r->name + ": decompressed zstd stream is not a format any loaded plugin reads").c_str());
  } else {
    r->inner = g_host->find_format(inner.c_str(), &index);
    if (!r->inner)
      return g_host->make_status(CKPTIO_UNSUPPORTED,
                                 (r->name + ": inner format '" + inner +
                                  "' of the zstd stream is not available (see `ckptio plugins`)")
                                     .c_str());
  }
  if (r->inner == nullptr || (inner == "zstd"))
    return g_host->make_status(CKPTIO_UNSUPPORTED,
                               (r->name + ": nested zstd is not supported").c_str());
  // Streamed unless the inner format needs random access (option stream=0|1 overrides).
  const bool stream = sdk::option_uint(options, "stream", inner == "torch-legacy" ? 1 : 0) != 0;
  if (stream) {
    auto seq = ZstdSequentialSource::open(src, max_size);
    if (!seq.ok()) return to_c(g_host, seq.status());
    r->sequential = seq->get();
    r->decoded = std::move(seq).value();
  } else {
    auto buf = zstd_decompress_bounded(src, max_size);
    if (!buf.ok()) return to_c(g_host, buf.status());
    r->buffer = std::move(buf).value();
    r->decoded = std::make_unique<MemorySource>(r->buffer.data(), r->buffer.size(), r->name);
  }

  ckptio_source& s = r->inner_source;
  s.struct_size = sizeof s;
  s.ctx = r->decoded.get();
  s.name = r->name.c_str();
  s.size = r->decoded->size();
  s.data = r->decoded->data();
  s.read_at = decoded_read_at;
  BuilderShim shim;
  shim.outer = builder;
  ckptio_builder b = *builder;
  b.ctx = &shim;
  b.add_storage = BuilderShim::add_storage;
  b.scalar = BuilderShim::scalar;
  b.begin = BuilderShim::begin;
  b.end = BuilderShim::end;
  b.tensor = BuilderShim::tensor;
  b.share = BuilderShim::share;
  b.ref = BuilderShim::ref;
  // A streamed torch-legacy file: the reader takes storage positions from the pickle's
  // sizes instead of skipping through the stream to read each storage's count at open
  // (counts are checked as each storage is read; every read comes through us, since the
  // shim reports the storages as not plain). One pass over the stream instead of two.
  std::vector<ckptio_option> items(options ? options->items : nullptr,
                                   options ? options->items + options->count : nullptr);
  if (stream && inner == "torch-legacy") items.push_back({"defer_storage_headers", "1"});
  const ckptio_options inner_options{items.size(), items.data()};
  ckptio_reader* inner_reader = nullptr;
  ckptio_status cst = r->inner->open(index, &s, &inner_options, &b, &inner_reader);
  if (cst) {
    if (inner_reader) r->inner->close(inner_reader);
    return cst;
  }
  r->inner_reader = inner_reader;
  if (ckptio_status fst = shim.flush()) return fst;
  r->to_inner = std::move(shim.to_inner);
  if (r->sequential) r->sequential->expect_reads_at(std::move(shim.offsets));
  *out = as_c(r.release());
  return nullptr;
}

ckptio_status zstd_read_storage(Reader* base, uint32_t index, uint64_t offset, void* dst,
                                uint64_t n) {
  auto* r = static_cast<ZstdReader*>(base);
  if (index >= r->to_inner.size())
    return g_host->make_status(CKPTIO_INVALID_ARGUMENT, "read_storage: no such storage");
  return r->inner->read_storage(r->inner_reader, r->to_inner[index], offset, dst, n);
}

// A ckptio_sink whose bytes go through a ZstdCompressSink into the host's sink.
struct WrapSink {
  ZstdCompressSink* zs;
  static ckptio_status write(void* ctx, const void* data, uint64_t n) {
    return to_c(g_host, static_cast<WrapSink*>(ctx)->zs->write(data, n));
  }
};

ckptio_status save_zstd(const ckptio_tree* tree, const ckptio_sink* sink,
                        const ckptio_options* options) {
  const std::string inner = sdk::option(options, "inner", "torch-zip");
  const std::string name = sink->name ? sink->name : "<output>";
  if (inner == "zstd")
    return g_host->make_status(CKPTIO_INVALID_ARGUMENT,
                               (name + ": inner=zstd would nest zstd").c_str());
  uint32_t index = 0;
  const ckptio_plugin_api* api =
      g_host->find_format ? g_host->find_format(inner.c_str(), &index) : nullptr;
  if (!api)
    return g_host->make_status(CKPTIO_INVALID_ARGUMENT,
                               (name + ": inner format '" + inner + "' is not available").c_str());
  if (!CKPTIO_HAS_FIELD(api, ckptio_plugin_api, save) || !api->save ||
      !(api->formats[index].caps & CKPTIO_CAN_WRITE))
    return g_host->make_status(CKPTIO_INVALID_ARGUMENT,
                               (name + ": inner format '" + inner + "' cannot be written").c_str());
  CSink host_sink(g_host, sink);
  ZstdWriteOptions zo;
  zo.level = option_level(options, 3);
  zo.threads = option_threads(options);
  zo.inner = inner;
  ZstdCompressSink zs(host_sink, zo);
  WrapSink ws{&zs};
  ckptio_sink wrapped{};
  wrapped.struct_size = sizeof wrapped;
  wrapped.ctx = &ws;
  wrapped.name = sink->name;
  wrapped.write = WrapSink::write;
  // The inner writer gets every option but the ones consumed here: a plugin that refuses
  // keys it does not know (as sdk/README.md advises) must not see inner=, level=, threads=.
  std::vector<ckptio_option> items;
  for (size_t i = 0; options && i < options->count; ++i) {
    const std::string key = options->items[i].key;
    if (key != "inner" && key != "level" && key != "threads") items.push_back(options->items[i]);
  }
  const ckptio_options inner_options{items.size(), items.data()};
  if (ckptio_status st = api->save(index, tree, &wrapped, &inner_options)) return st;
  return to_c(g_host, zs.finish().with_context(name));
}

ckptio_status zstd_save(const ckptio_tree* tree, const ckptio_sink* sink,
                        const ckptio_options* options) {
  return sdk::guard(g_host, sink->name ? sink->name : "<output>",
                    [&] { return save_zstd(tree, sink, options); });
}

int32_t zstd_probe(const uint8_t* head, size_t n) {
  if (!looks_like_zstd(head, n)) return 0;
  return inner_format_from_head(head, n).empty() ? 80 : 95;
}

// No container check beyond decoding the stream, which opening with verify=1 does.
ckptio_status zstd_verify(const ckptio_source*, const ckptio_verify_report*) {
  return g_host->make_status(CKPTIO_UNSUPPORTED, "zstd: no container check");
}

constexpr uint32_t kRead = CKPTIO_OPTION_READ, kWrite = CKPTIO_OPTION_WRITE;

constexpr std::array kZstdOptions = {
    option_info(kRead | CKPTIO_OPTION_NAMES_FORMAT, "inner",
                "the format inside the stream (default: named by a ckptio frame, else probed)"),
    option_info(kReadNumber, "max_size", "decoded bytes limit (default: physical memory)"),
    option_info(kRead, "stream",
                "0/1: read the inner format front to back instead of buffering it "
                "(default 1 for torch-legacy)"),
    option_info(kWrite | CKPTIO_OPTION_NAMES_FORMAT, "inner",
                "the format inside the stream; its options apply too", "torch-zip"),
    option_info(kWrite, "level", "zstd compression level", "3"),
    option_info(kWrite | CKPTIO_OPTION_NUMBER, "threads", "compression threads (0: one)",
                "0"),
};

}  // namespace

const FormatOps kZstdFormat = {zstd_probe,         open_zstd,           zstd_read_storage,
                               zstd_save,          kZstdOptions.data(), kZstdOptions.size(),
                               zstd_verify};

}  // namespace ckptio::compressed
