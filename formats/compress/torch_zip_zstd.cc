#include "formats/compress/torch_zip_zstd.h"

#include <cstring>

#include "formats/zip/le.h"
#include "formats/zip/zip_reader.h"

namespace ckptio::compress {

bool looks_like_torch_zip_zstd(const uint8_t* head, size_t n) {
  if (n < 30 || std::memcmp(head, "PK\x03\x04", 4) != 0) return false;
  const size_t name_len = le::u16(head + 26);
  if (30 + name_len > n) return false;
  const std::string name(reinterpret_cast<const char*>(head + 30), name_len);
  const std::string tail = std::string("/") + kCodecRecord;
  return name.size() > tail.size() &&
         name.compare(name.size() - tail.size(), tail.size(), tail) == 0 &&
         name.find('/') == name.size() - tail.size();
}

namespace {

// The marker record names the container version; an older or newer one is refused by name
// rather than failing later on a record it cannot parse.
Status check_codec_record(const ByteSource& src, const ZipReader& zip) {
  const ZipEntry* e = zip.find(kCodecRecord);
  if (!e)
    return Status(Code::kCorrupt, src.name() + ": no record '" + zip.prefix() + "/" + kCodecRecord +
                                      "' (not a torch-zip-zstd file?)");
  CKPTIO_ASSIGN_OR_RETURN(std::string text, zip.read(*e, 64));
  if (text != kCodecText)
    return Status(Code::kUnsupported, src.name() + ": record '" + e->name + "' says '" +
                                          text.substr(0, text.find('\n')) +
                                          "'; this reader knows '" +
                                          std::string(kCodecText, sizeof kCodecText - 2) + "'");
  return Status::Ok();
}

}  // namespace

Result<TorchZipZstdFile> read_torch_zip_zstd(const ByteSource& src, const ZipReadOptions& options,
                                             uint64_t max_total) {
  TorchZipZstdFile out;
  uint64_t total = 0;
  ZipReadOptions opts = options;
  opts.verify_crc = false;  // data records hold containers with their own per-chunk CRCs
  opts.locate_record = [&](const ZipEntry& e, const StorageInfo& s) -> Result<StorageExtent> {
    const std::string what = src.name() + ": record '" + e.name + "'";
    if (e.method != kZipMethodZstd)
      return Status(Code::kUnsupported, what + " uses zip method " + std::to_string(e.method) +
                                            "; torch-zip-zstd storage records are zstd (93)");
    if (e.uncompressed_size != s.nbytes)
      return Status(Code::kCorrupt, what + ": the zip directory says it decodes to " +
                                        std::to_string(e.uncompressed_size) +
                                        " bytes but storage " + s.key + " needs " +
                                        std::to_string(s.nbytes));
    if (s.nbytes > max_total - total)
      return Status(Code::kLimit, src.name() + ": storages decode to more than the limit of " +
                                      std::to_string(max_total) +
                                      " bytes (plugin option max_size)");
    total += s.nbytes;
    CKPTIO_ASSIGN_OR_RETURN(ChunkedRecord r,
                            parse_chunked(src, e.data_offset, e.compressed_size, s.nbytes, what));
    out.records.push_back(std::move(r));
    StorageExtent x;
    x.offset = e.data_offset;
    x.length = s.nbytes;
    x.plain = false;
    x.method = kZipMethodZstd;
    x.compressed_length = e.compressed_size;
    return x;
  };
  opts.check_archive = [&src](const ZipReader& zip) { return check_codec_record(src, zip); };
  CKPTIO_ASSIGN_OR_RETURN(out.file, read_torch_zip(src, opts));
  if (out.records.size() != out.file.tree.storages.size())
    return Status(Code::kInternal, src.name() + ": record index count mismatch");
  return out;
}

Status write_torch_zip_zstd(ByteSink& out, const Tree& tree, const StorageWriter& storage_bytes,
                            const TorchZipZstdWriteOptions& options, WorkerPool& pool) {
  CKPTIO_RETURN_IF_ERROR(check_chunked_options(options.chunked));
  ZipWriteOptions zo = options.zip;
  zo.leading_records.emplace_back(kCodecRecord, kCodecText);
  zo.encode_record = [&](uint32_t index, const StorageInfo& s,
                         const StorageWriter& bytes) -> Result<ZipWriteOptions::EncodedRecord> {
    ChunkedEncoder enc(grouping_for(s.dtype, s.nbytes), s.nbytes, options.chunked, pool);
    CKPTIO_RETURN_IF_ERROR(bytes(index, enc));
    ZipWriteOptions::EncodedRecord record;
    CKPTIO_ASSIGN_OR_RETURN(record.bytes, enc.finish());
    record.method = kZipMethodZstd;
    record.crc = enc.stream_crc();
    return record;
  };
  return write_torch_zip(out, tree, storage_bytes, zo);
}

}  // namespace ckptio::compress
