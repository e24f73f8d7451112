// torch-zip-zstd: torch.save's zip layout with chunked, byte-grouped zstd data records,
// decoded in parallel (formats/compress/SPEC.md).
#include <algorithm>
#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ckptio/plugin.hpp"
#include "formats/compress/chunked_zstd.h"
#include "formats/compress/torch_zip_zstd.h"
#include "formats/compress/zip_zstd_crc.h"
#include "formats/zip/zip_verify.h"
#include "formats/worker_pool.h"
#include "plugins/common/c_bridge.h"
#include "plugins/common/decoded_plugin.h"
#include "plugins/common/option_infos.h"
#include "plugins/common/verify_entry.h"
#include "plugins/compressed/compressed_format.h"

namespace ckptio::compressed {
namespace {

using namespace ckptio::plugin;
using namespace ckptio::compress;

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

ckptio_status chunked_read_storage(Reader* base, uint32_t index, uint64_t offset, void* dst,
                                   uint64_t n) {
  auto* r = static_cast<ChunkedReader*>(base);
  if (index >= r->file.records.size())
    return g_host->make_status(CKPTIO_INVALID_ARGUMENT, "read_storage: no such storage");
  std::lock_guard<std::mutex> lock(r->read_mu);
  return to_c(g_host, decode_chunked_range(*r->source, r->file.records[index], offset, n,
                                           static_cast<uint8_t*>(dst), *r->pool, r->decoders));
}

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

ckptio_status chunked_save(const ckptio_tree* tree, const ckptio_sink* sink,
                           const ckptio_options* options) {
  auto enc = [options](ByteSink& out, const Tree& t, const StorageWriter& b,
                       const std::string& ctx) {
    return encode_chunked_file(out, t, b, ctx, options);
  };
  return encoded_save(g_host, enc, tree, sink, options);
}

int32_t chunked_probe(const uint8_t* head, size_t n) {
  return looks_like_torch_zip_zstd(head, n) ? 95 : 0;
}

// The records: method 93 ones are decoded (streaming) to check the CRC-32 of what they
// decode to, the others as any zip record.
ckptio_status chunked_verify(const ckptio_source* source, const ckptio_verify_report* report) {
  return plugin::verify_entry(
      g_host, "torch-zip-zstd: verify", source, report,
      [](const ByteSource& src, std::vector<std::string>& problems) {
        return verify_zip_records(src, problems, [&src](const ZipReader& zip, const ZipEntry& e) {
          return e.method == kZipMethodZstd ? verify_zstd_record_crc(src, e) : zip.verify_crc(e);
        });
      });
}

constexpr uint32_t kRead = CKPTIO_OPTION_READ, kWrite = CKPTIO_OPTION_WRITE;

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

}  // namespace

const FormatOps kTorchZipZstdFormat = {
    chunked_probe, open_chunked, chunked_read_storage, chunked_save, kTorchZipZstdOptions.data(),
    kTorchZipZstdOptions.size(), chunked_verify};

}  // namespace ckptio::compressed
