// compressed: two formats in one plugin.
//  - zstd: a standard zstd stream around another format's bytes (inner=FORMAT, default
//    torch-zip). Reading hands the decompressed bytes to the inner format's plugin, found
//    by name through the host (host->find_format): streamed for torch-legacy (read front
//    to back, memory independent of the file's size), a bounded buffer for formats that
//    need random access (torch-zip's directory is at the end).
//  - torch-zip-zstd: torch.save's zip layout with chunked, byte-grouped zstd data records,
//    decoded in parallel (formats/compress/SPEC.md).
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ckptio/plugin.hpp"
#include "formats/compress/chunked_zstd.h"
#include "formats/compress/torch_zip_zstd.h"
#include "formats/compress/zstd_sequential_source.h"
#include "formats/compress/zip_zstd_crc.h"
#include "formats/compress/zstd_stream.h"
#include "formats/zip/zip_verify.h"
#include "plugins/common/c_bridge.h"
#include "plugins/common/decoded_plugin.h"
#include "plugins/common/option_infos.h"

namespace {

using namespace ckptio;
using namespace ckptio::plugin;
using namespace ckptio::compress;

const ckptio_host_api* g_host = nullptr;

enum : uint32_t { kZstd = 0, kTorchZipZstd = 1 };

const ckptio_format_info kFormats[] = {
    {"zstd", "zstd stream around another format (option inner=FORMAT, default torch-zip)",
     ".pt.zst", CKPTIO_CAN_READ | CKPTIO_CAN_WRITE},
    {"torch-zip-zstd",
     "torch.save zip layout with chunked, byte-grouped zstd data records (parallel decoding)",
     ".pt", CKPTIO_CAN_READ | CKPTIO_CAN_WRITE},
};

// Formats tried, in this order, on the head of a zstd stream that does not name its inner
// format (a file compressed with the zstd tool).
const char* const kInnerCandidates[] = {"torch-zip-zstd", "torch-zip", "torch-legacy"};

// Default limit on decoded bytes: the machine's physical memory.
uint64_t default_max_size() {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return 64ull << 30;
  return uint64_t(pages) * uint64_t(page);
}

unsigned option_threads(const ckptio_options* o) {
  return unsigned(std::min<unsigned long long>(sdk::option_uint(o, "threads", 0), 256));
}

int option_level(const ckptio_options* o, int fallback) {
  std::string v = sdk::option(o, "level");
  if (v.empty()) return fallback;
  char* end = nullptr;
  long n = std::strtol(v.c_str(), &end, 10);
  if (!end || *end || n < -1000000 || n > 1000)
    throw sdk::PluginError(CKPTIO_INVALID_ARGUMENT, "option level=" + v + " is not an integer");
  return int(n);
}

int32_t probe(uint32_t format, const uint8_t* head, size_t n, uint64_t) {
  if (format == kZstd) {
    if (!looks_like_zstd(head, n)) return 0;
    return inner_format_from_head(head, n).empty() ? 80 : 95;
  }
  return looks_like_torch_zip_zstd(head, n) ? 95 : 0;
}

// ---------------------------------------------------------------- readers

struct Reader {
  uint32_t format;
  virtual ~Reader() = default;
};

struct ChunkedReader final : Reader {
  std::string name;
  // Reads through the host's ckptio_source, which the ABI keeps valid until close().
  std::unique_ptr<CSource> source;
  TorchZipZstdFile file;
  std::unique_ptr<WorkerPool> pool;
  std::vector<ChunkDecoder> decoders;
  // The host may call read_storage from several threads at once (the ABI allows it); the
  // decoders and the pool are per reader, so calls take turns and the pool parallelizes
  // each call's chunks over every core instead.
  std::mutex read_mu;
};

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

ckptio_reader* as_c(Reader* r) { return reinterpret_cast<ckptio_reader*>(r); }
Reader* as_reader(ckptio_reader* r) { return reinterpret_cast<Reader*>(r); }

ckptio_status open_chunked(const ckptio_source* source, const ckptio_options* options,
                           const ckptio_builder* builder, ckptio_reader** out) {
  auto r = std::make_unique<ChunkedReader>();
  r->format = kTorchZipZstd;
  r->name = source->name ? source->name : "<input>";
  r->source = std::make_unique<CSource>(g_host, source);
  ZipReadOptions zo;
  zo.limits = limits_from_options(options);
  zo.allow_objects = sdk::option_flag(options, "allow_objects");
  auto f = read_torch_zip_zstd(*r->source, zo,
                               sdk::option_uint(options, "max_size", default_max_size()));
  if (!f.ok()) return to_c(g_host, f.status());
  r->file = std::move(f).value();
  Status st = emit_tree(g_host, r->file.file, builder);
  if (!st.ok()) return to_c(g_host, st);
  r->pool = std::make_unique<WorkerPool>(option_threads(options));
  *out = as_c(r.release());
  return nullptr;
}

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

ckptio_status plugin_open(uint32_t format, const ckptio_source* src, const ckptio_options* options,
                          const ckptio_builder* builder, ckptio_reader** out) {
  return sdk::guard(g_host, src->name ? src->name : "<input>", [&]() -> ckptio_status {
    return format == kZstd ? open_zstd(src, options, builder, out)
                           : open_chunked(src, options, builder, out);
  });
}

ckptio_status plugin_read_storage(ckptio_reader* reader, uint32_t index, uint64_t offset, void* dst,
                                  uint64_t n) {
  return sdk::guard(g_host, "read_storage", [&]() -> ckptio_status {
    Reader* base = as_reader(reader);
    if (base->format == kZstd) {
      auto* r = static_cast<ZstdReader*>(base);
      if (index >= r->to_inner.size())
        return g_host->make_status(CKPTIO_INVALID_ARGUMENT, "read_storage: no such storage");
      return r->inner->read_storage(r->inner_reader, r->to_inner[index], offset, dst, n);
    }
    auto* r = static_cast<ChunkedReader*>(base);
    if (index >= r->file.records.size())
      return g_host->make_status(CKPTIO_INVALID_ARGUMENT, "read_storage: no such storage");
    std::lock_guard<std::mutex> lock(r->read_mu);
    return to_c(g_host, decode_chunked_range(*r->source, r->file.records[index], offset, n,
                                             static_cast<uint8_t*>(dst), *r->pool, r->decoders));
  });
}

void plugin_close(ckptio_reader* reader) { delete as_reader(reader); }

// ---------------------------------------------------------------- writers

Status encode_chunked_file(ByteSink& out, const Tree& tree, const StorageWriter& bytes,
                           const std::string& context, const ckptio_options* options) {
  TorchZipZstdWriteOptions o;
  o.zip.context = context;
  o.zip.prefix = sdk::option(options, "prefix", "archive");
  o.chunked.level = option_level(options, kDefaultLevel);
  o.chunked.chunk_size = uint32_t(std::min<unsigned long long>(
      sdk::option_uint(options, "chunk_size", kDefaultChunkSize), 1ull << 31));
  WorkerPool pool(option_threads(options));
  return write_torch_zip_zstd(out, tree, bytes, o, pool);
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

ckptio_status plugin_save(uint32_t format, const ckptio_tree* tree, const ckptio_sink* sink,
                          const ckptio_options* options) {
  if (format == kZstd)
    return sdk::guard(g_host, sink->name ? sink->name : "<output>",
                      [&] { return save_zstd(tree, sink, options); });
  auto enc = [options](ByteSink& out, const Tree& t, const StorageWriter& b,
                       const std::string& ctx) {
    return encode_chunked_file(out, t, b, ctx, options);
  };
  return encoded_save(g_host, enc, tree, sink, options);
}

// ---------------------------------------------------------------- declarations

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

constexpr std::array kTorchZipZstdOptions = {
    kDecodedReadOptions[0],  // max_depth
    kDecodedReadOptions[1],  // max_memo
    kDecodedReadOptions[2],  // max_string
    kDecodedReadOptions[3],  // allow_objects
    option_info(kReadNumber, "max_size", "decoded bytes limit (default: physical memory)"),
    option_info(kReadNumber, "threads", "decoding threads (0: one per core)", "0"),
    option_info(kWrite, "prefix", "the archive's top-level directory", "archive"),
    option_info(kWrite, "level", "zstd level of the data records", "-3"),
    option_info(kWrite | CKPTIO_OPTION_NUMBER, "chunk_size",
                "bytes per independently decodable chunk", "1048576"),
    option_info(kWrite | CKPTIO_OPTION_NUMBER, "threads", "compression threads (0: one per core)",
                "0"),
};
static_assert(kDefaultLevel == -3 && kDefaultChunkSize == 1048576,
              "kTorchZipZstdOptions states the defaults");

const ckptio_option_info* plugin_options(uint32_t format, uint32_t* count) {
  if (format == kZstd) {
    *count = kZstdOptions.size();
    return kZstdOptions.data();
  }
  *count = kTorchZipZstdOptions.size();
  return kTorchZipZstdOptions.data();
}

// torch-zip-zstd's records: method 93 ones are decoded (streaming) to check the CRC-32 of
// what they decode to, the others as any zip record. A zstd stream has no container check
// beyond decoding it, which opening with verify=1 does.
ckptio_status plugin_verify(uint32_t format, const ckptio_source* source, const ckptio_options*,
                            const ckptio_verify_report* report) {
  if (format == kZstd)
    return g_host->make_status(CKPTIO_UNSUPPORTED, "zstd: no container check");
  return sdk::guard(g_host, "torch-zip-zstd: verify", [&]() -> ckptio_status {
    const CSource src(g_host, source);
    std::vector<std::string> problems;
    const uint64_t checksums =
        verify_zip_records(src, problems, [&src](const ZipReader& zip, const ZipEntry& e) {
          return e.method == kZipMethodZstd ? verify_zstd_record_crc(src, e) : zip.verify_crc(e);
        });
    send_verify_report(report, problems, checksums);
    return nullptr;
  });
}

const ckptio_plugin_api* make_api(const ckptio_host_api* host) {
  g_host = host;
  static const ckptio_plugin_api api = {sizeof(ckptio_plugin_api),
                                        CKPTIO_ABI_VERSION,
                                        "compressed",
                                        "0.1.0",
                                        2,
                                        kFormats,
                                        probe,
                                        plugin_open,
                                        plugin_read_storage,
                                        plugin_close,
                                        plugin_save,
                                        plugin_options,
                                        plugin_verify};
  return &api;
}

}  // namespace

CKPTIO_DEFINE_PLUGIN(make_api)
