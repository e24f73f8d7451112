#include "formats/compress/zip_zstd_crc.h"

#include <libdeflate.h>
#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

namespace ckptio::compress {
namespace {

struct DStreamDeleter {
  void operator()(ZSTD_DStream* d) const { ZSTD_freeDStream(d); }
};

}  // namespace

Status verify_zstd_record_crc(const ByteSource& src, const ZipEntry& entry) {
  const std::string what = src.name() + ": record '" + entry.name + "'";
  if (entry.data_offset > src.size() || entry.compressed_size > src.size() - entry.data_offset)
    return Status(Code::kCorrupt, what + " runs past the end of the file");
  std::unique_ptr<ZSTD_DStream, DStreamDeleter> ds(ZSTD_createDStream());
  if (!ds) return Status(Code::kInternal, what + ": cannot create a zstd decoder");
  std::vector<uint8_t> in(std::min<uint64_t>(entry.compressed_size, 1 << 20));
  std::vector<uint8_t> out(ZSTD_DStreamOutSize());
  uint64_t read = 0, produced = 0;
  uint32_t crc = 0;
  size_t last = 1;  // ZSTD_decompressStream's hint; 0 once a frame is complete
  while (read < entry.compressed_size) {
    const uint64_t n = std::min<uint64_t>(in.size(), entry.compressed_size - read);
    CKPTIO_RETURN_IF_ERROR(src.read_at(entry.data_offset + read, in.data(), n));
    read += n;
    ZSTD_inBuffer ib{in.data(), size_t(n), 0};
    while (ib.pos < ib.size) {
      ZSTD_outBuffer ob{out.data(), out.size(), 0};
      last = ZSTD_decompressStream(ds.get(), &ob, &ib);
      if (ZSTD_isError(last))
        return Status(Code::kCorrupt, what + ": zstd: " + ZSTD_getErrorName(last));
      if (ob.pos > entry.uncompressed_size - produced)
        return Status(Code::kCorrupt, what + " decodes to more than the " +
                                          std::to_string(entry.uncompressed_size) +
                                          " bytes the directory claims");
      if (ob.pos) crc = libdeflate_crc32(crc, out.data(), ob.pos);
      produced += ob.pos;
    }
  }
  if (last != 0) return Status(Code::kCorrupt, what + ": truncated zstd frame");
  if (produced != entry.uncompressed_size)
    return Status(Code::kCorrupt, what + " decodes to " + std::to_string(produced) +
                                      " bytes; the directory claims " +
                                      std::to_string(entry.uncompressed_size));
  if (crc != entry.crc32) {
    char msg[64];
    snprintf(msg, sizeof msg, "CRC32 mismatch (directory says %08x, data has %08x)", entry.crc32,
             crc);
    return Status(Code::kCorrupt, what + ": " + msg);
  }
  return Status::Ok();
}

}  // namespace ckptio::compress
