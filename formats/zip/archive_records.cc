#include "formats/zip/archive_records.h"

#include <string>

namespace ckptio {
namespace {

constexpr uint64_t kMaxSmallRecord = 4096;  // a few bytes in practice

std::string quote(const std::string& s) { return "'" + s + "'"; }

Status corrupt(const ByteSource& src, const std::string& what) {
  return Status(Code::kCorrupt, src.name() + ": " + what);
}

}  // namespace

// `version` / `.data/version`: decimal, optional trailing newline (the reader uses stoull).
Result<uint64_t> read_archive_version(const ByteSource& src, const ZipReader& zip) {
  const ZipEntry* e = zip.find(".data/version");
  if (!e) e = zip.find("version");
  if (!e)
    return corrupt(
        src, "no record " + quote(zip.prefix() + "/version") + " (not a PyTorch archive?)");
  CKPTIO_ASSIGN_OR_RETURN(std::string text, zip.read(*e, kMaxSmallRecord));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.pop_back();
  uint64_t v = 0;
  bool ok = !text.empty() && text.size() <= 18;
  for (char c : text) ok = ok && c >= '0' && c <= '9', v = v * 10 + uint64_t(c - '0');
  if (!ok) return corrupt(src, "record " + quote(e->name) + " does not hold a decimal version");
  // PyTorch's kMinSupportedFileFormatVersion..kMaxSupportedFileFormatVersion.
  if (v < 1 || v > 10)
    return Status(Code::kUnsupported, src.name() + ": archive format version " + std::to_string(v) +
                                          " in record " + quote(e->name) +
                                          " is not supported (expected 1 to 10)");
  return v;
}

// 2.x records the writer's byte order; absent means little (1.x never wrote it).
Result<bool> read_archive_big_endian(const ByteSource& src, const ZipReader& zip) {
  const ZipEntry* e = zip.find("byteorder");
  if (!e) return false;
  CKPTIO_ASSIGN_OR_RETURN(std::string text, zip.read(*e, kMaxSmallRecord));
  if (text == "little") return false;
  if (text == "big") return true;
  return corrupt(src, "record " + quote(e->name) + " holds neither 'little' nor 'big'");
}

Result<StorageExtent> storage_extent(const ByteSource& src, const ZipEntry& e,
                                     const StorageInfo& s, bool big_endian) {
  if (e.uncompressed_size != s.nbytes)
    return corrupt(src, "record " + quote(e.name) + " holds " + std::to_string(e.uncompressed_size) +
                            " bytes but storage " + s.key + " needs " + std::to_string(s.nbytes));
  if (e.method != 0 && e.method != 8)
    return Status(Code::kUnsupported, src.name() + ": record " + quote(e.name) +
                                          " uses compression method " + std::to_string(e.method) +
                                          "; only stored (0) and deflate (8) are supported");
  if (e.method == 8 && e.uncompressed_size / 1032 > e.compressed_size + 1)
    return corrupt(src, "record " + quote(e.name) + " claims " +
                            std::to_string(e.uncompressed_size) + " bytes from only " +
                            std::to_string(e.compressed_size) + " deflated bytes");
  StorageExtent x;
  x.offset = e.data_offset;
  x.length = s.nbytes;
  x.method = e.method;
  x.compressed_length = e.compressed_size;
  x.crc32 = e.crc32;
  x.record = e.name;
  x.byteswap = big_endian && dtype_size(s.dtype) > 1;  // one-byte elements read as they are
  x.plain = e.method == 0 && !x.byteswap;
  return x;
}

}  // namespace ckptio
