#include "formats/zip/zip_reader.h"

#include <libdeflate.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "formats/zip/le.h"

namespace ckptio {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50;      // PK\3\4
constexpr uint32_t kCentralSig = 0x02014b50;    // PK\1\2
constexpr uint32_t kEocdSig = 0x06054b50;       // PK\5\6
constexpr uint32_t kZip64EocdSig = 0x06064b50;  // PK\6\6
constexpr uint32_t kZip64LocSig = 0x07064b50;   // PK\6\7
constexpr uint64_t kEocdSize = 22;
constexpr uint64_t kZip64LocSize = 20;
constexpr uint64_t kZip64EocdSize = 56;
constexpr uint64_t kCentralSize = 46;
constexpr uint64_t kLocalSize = 30;
constexpr uint64_t kMaxComment = 0xffff;
// DEFLATE cannot expand more than ~1032:1; a larger claim is a lie we refuse before
// allocating the output.
constexpr uint64_t kMaxDeflateRatio = 1032;

std::string quote(const std::string& s) { return "'" + s + "'"; }

Status corrupt(const ByteSource& src, const std::string& what) {
  return Status(Code::kCorrupt, src.name() + ": " + what);
}

// Bytes [offset, offset + n) viewed in place when the source is mapped, else read into buf.
// The caller has already checked the range against src.size().
Result<const uint8_t*> view(const ByteSource& src, uint64_t offset, uint64_t n, std::string& buf) {
  if (const uint8_t* d = src.data()) return d + offset;
  buf.resize(n);
  CKPTIO_RETURN_IF_ERROR(src.read_at(offset, buf.data(), n));
  return reinterpret_cast<const uint8_t*>(buf.data());
}

bool in_range(uint64_t offset, uint64_t n, uint64_t limit) {
  return offset <= limit && n <= limit - offset;
}

struct EndRecords {
  uint64_t entries = 0;
  uint64_t cd_offset = 0;
  uint64_t cd_size = 0;
  uint64_t cd_limit = 0;  // where the end records start: the directory must end before it
};

// Finds the classic end record scanning back over at most a 64 KiB comment, then the ZIP64
// locator and end record if present (PyTorch always writes them).
Result<EndRecords> read_end_records(const ByteSource& src) {
  const uint64_t size = src.size();
  if (size < kEocdSize)
    return corrupt(src, "not a zip archive: " + std::to_string(size) +
                            " bytes is too short for an end-of-central-directory record");
  const uint64_t tail_len = std::min(size, kEocdSize + kMaxComment);
  const uint64_t tail_off = size - tail_len;
  std::string buf;
  CKPTIO_ASSIGN_OR_RETURN(const uint8_t* tail, view(src, tail_off, tail_len, buf));
  uint64_t found = UINT64_MAX;
  for (uint64_t i = tail_len - kEocdSize + 1; i-- > 0;) {
    if (le::u32(tail + i) != kEocdSig) continue;
    if (i + kEocdSize + le::u16(tail + i + 20) <= tail_len) {
      found = i;
      break;
    }
  }
  if (found == UINT64_MAX)
    return corrupt(src, "no end-of-central-directory record (not a zip archive, or truncated)");
  const uint8_t* e = tail + found;
  const uint64_t eocd_pos = tail_off + found;
  uint32_t disk = le::u16(e + 4), cd_disk = le::u16(e + 6);
  uint64_t on_disk = le::u16(e + 8);
  EndRecords r;
  r.entries = le::u16(e + 10);
  r.cd_size = le::u32(e + 12);
  r.cd_offset = le::u32(e + 16);
  r.cd_limit = eocd_pos;

  if (eocd_pos >= kZip64LocSize) {
    uint8_t loc[kZip64LocSize];
    const uint64_t loc_pos = eocd_pos - kZip64LocSize;
    CKPTIO_RETURN_IF_ERROR(src.read_at(loc_pos, loc, sizeof loc));
    if (le::u32(loc) == kZip64LocSig) {
      const uint64_t z_off = le::u64(loc + 8);
      if (!in_range(z_off, kZip64EocdSize, loc_pos))
        return corrupt(src, "ZIP64 end record offset " + std::to_string(z_off) +
                                " is outside the file (locator at " + std::to_string(loc_pos) +
                                ")");
      uint8_t z[kZip64EocdSize];
      CKPTIO_RETURN_IF_ERROR(src.read_at(z_off, z, sizeof z));
      if (le::u32(z) != kZip64EocdSig)
        return corrupt(src, "no ZIP64 end record at offset " + std::to_string(z_off) +
                                " where the locator points");
      disk = le::u32(z + 16);
      cd_disk = le::u32(z + 20);
      on_disk = le::u64(z + 24);
      r.entries = le::u64(z + 32);
      r.cd_size = le::u64(z + 40);
      r.cd_offset = le::u64(z + 48);
      r.cd_limit = z_off;
    }
  }
  if (disk != 0 || cd_disk != 0 || on_disk != r.entries)
    return Status(Code::kUnsupported,
                  src.name() + ": multi-disk (split) zip archives are not supported");
  if (!in_range(r.cd_offset, r.cd_size, r.cd_limit))
    return corrupt(src, "central directory (" + std::to_string(r.cd_size) + " bytes at offset " +
                            std::to_string(r.cd_offset) + ") runs past the end records at offset " +
                            std::to_string(r.cd_limit));
  if (r.entries == 0) return corrupt(src, "zip archive has no records");
  // Each directory entry takes at least 46 bytes: a lying count cannot make us allocate.
  if (r.entries > r.cd_size / kCentralSize)
    return corrupt(src, "central directory claims " + std::to_string(r.entries) +
                            " entries but its " + std::to_string(r.cd_size) +
                            " bytes hold at most " + std::to_string(r.cd_size / kCentralSize));
  return r;
}

// Replaces saturated 32-bit fields with the ZIP64 extra's 64-bit values (APPNOTE 4.5.3: the
// extra holds only the fields that overflowed, in this order).
Status apply_zip64_extra(const ByteSource& src, const uint8_t* extra, uint16_t len, ZipEntry& e,
                         bool usize_sat, bool csize_sat, bool offset_sat) {
  uint32_t pos = 0;
  while (pos + 4 <= len) {
    const uint16_t id = le::u16(extra + pos), n = le::u16(extra + pos + 2);
    if (pos + 4 + n > len)
      return corrupt(src, "record " + quote(e.name) + ": extra field runs past its end");
    if (id == 0x0001) {
      const uint8_t* p = extra + pos + 4;
      uint32_t need = 8 * (usize_sat + csize_sat + offset_sat);
      if (n < need)
        return corrupt(src, "record " + quote(e.name) + ": ZIP64 extra field has " +
                                std::to_string(n) + " bytes, needs " + std::to_string(need));
      if (usize_sat) e.uncompressed_size = le::u64(p), p += 8;
      if (csize_sat) e.compressed_size = le::u64(p), p += 8;
      if (offset_sat) e.local_header_offset = le::u64(p);
      return Status::Ok();
    }
    pos += 4 + n;
  }
  if (usize_sat || csize_sat || offset_sat)
    return corrupt(src, "record " + quote(e.name) +
                            ": size or offset is 0xFFFFFFFF but there is no ZIP64 extra field");
  return Status::Ok();
}

}  // namespace

uint32_t crc32_update(uint32_t crc, const void* data, size_t n) {
  return libdeflate_crc32(crc, data, n);
}

Result<ZipReader> ZipReader::open(const ByteSource& src) {
  CKPTIO_ASSIGN_OR_RETURN(EndRecords end, read_end_records(src));
  ZipReader z;
  z.src_ = &src;
  std::string cd_buf;
  CKPTIO_ASSIGN_OR_RETURN(const uint8_t* cd, view(src, end.cd_offset, end.cd_size, cd_buf));

  z.entries_.reserve(end.entries);
  uint64_t pos = 0;
  for (uint64_t i = 0; i < end.entries; ++i) {
    const std::string where = "central directory entry #" + std::to_string(i);
    if (end.cd_size - pos < kCentralSize)
      return corrupt(src, where + " runs past the end of the central directory");
    const uint8_t* h = cd + pos;
    if (le::u32(h) != kCentralSig)
      return corrupt(src, where + " has a bad signature (central directory offset " +
                              std::to_string(end.cd_offset) + " is wrong?)");
    const uint16_t flags = le::u16(h + 8);
    const uint16_t nlen = le::u16(h + 28), xlen = le::u16(h + 30), clen = le::u16(h + 32);
    if (end.cd_size - pos - kCentralSize < uint64_t(nlen) + xlen + clen)
      return corrupt(src, where + " runs past the end of the central directory");
    if (nlen == 0) return corrupt(src, where + " has an empty name");
    ZipEntry e;
    e.name.assign(reinterpret_cast<const char*>(h + kCentralSize), nlen);
    if (flags & 0x0001)
      return Status(Code::kUnsupported, src.name() + ": record " + quote(e.name) + " is encrypted");
    e.method = le::u16(h + 10);
    e.crc32 = le::u32(h + 16);
    e.compressed_size = le::u32(h + 20);
    e.uncompressed_size = le::u32(h + 24);
    e.local_header_offset = le::u32(h + 42);
    CKPTIO_RETURN_IF_ERROR(
        apply_zip64_extra(src, h + kCentralSize + nlen, xlen, e, e.uncompressed_size == 0xffffffffu,
                          e.compressed_size == 0xffffffffu, e.local_header_offset == 0xffffffffu));
    if (e.method == 0 && e.compressed_size != e.uncompressed_size)
      return corrupt(src, "stored record " + quote(e.name) + " has compressed size " +
                              std::to_string(e.compressed_size) + " != uncompressed size " +
                              std::to_string(e.uncompressed_size));
    if (!z.by_name_.emplace(e.name, z.entries_.size()).second)
      return corrupt(src, "record " + quote(e.name) + " appears twice in the central directory");
    z.entries_.push_back(std::move(e));
    pos += kCentralSize + nlen + xlen + clen;
  }

  // Data offsets come from the local headers: their extra field (FB padding) differs from the
  // central directory's. Every record must lie wholly before the central directory.
  std::string lh_buf;
  for (ZipEntry& e : z.entries_) {
    const uint64_t nlen = e.name.size();
    if (!in_range(e.local_header_offset, kLocalSize + nlen, end.cd_offset))
      return corrupt(src, "record " + quote(e.name) + ": local header offset " +
                              std::to_string(e.local_header_offset) +
                              " is outside the data area (central directory starts at " +
                              std::to_string(end.cd_offset) + ")");
    CKPTIO_ASSIGN_OR_RETURN(const uint8_t* lh,
                            view(src, e.local_header_offset, kLocalSize + nlen, lh_buf));
    if (le::u32(lh) != kLocalSig)
      return corrupt(src, "record " + quote(e.name) + ": no local header at offset " +
                              std::to_string(e.local_header_offset));
    if (le::u16(lh + 26) != nlen ||
        e.name.compare(0, nlen, reinterpret_cast<const char*>(lh + kLocalSize), nlen) != 0)
      return corrupt(src, "record " + quote(e.name) +
                              ": local header names a different record (offset " +
                              std::to_string(e.local_header_offset) + " is wrong?)");
    e.data_offset = e.local_header_offset + kLocalSize + nlen + le::u16(lh + 28);
    if (!in_range(e.data_offset, e.compressed_size, end.cd_offset))
      return corrupt(src, "record " + quote(e.name) + ": " + std::to_string(e.compressed_size) +
                              " bytes at offset " + std::to_string(e.data_offset) +
                              " run into the central directory at offset " +
                              std::to_string(end.cd_offset));
  }

  // Records may be in any order, but never overlap (a hallmark of zip bombs and lies).
  std::vector<const ZipEntry*> by_offset;
  by_offset.reserve(z.entries_.size());
  for (const ZipEntry& e : z.entries_) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const ZipEntry* a, const ZipEntry* b) {
    return a->local_header_offset < b->local_header_offset;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const ZipEntry& a = *by_offset[i - 1];
    const ZipEntry& b = *by_offset[i];
    if (b.local_header_offset < a.data_offset + a.compressed_size)
      return corrupt(src, "records " + quote(a.name) + " and " + quote(b.name) + " overlap");
  }

  const std::string& first = z.entries_.front().name;
  const size_t slash = first.find('/');
  if (slash == std::string::npos)
    return corrupt(
        src, "first record " + quote(first) + " is not in a subdirectory (not a PyTorch archive)");
  z.prefix_ = first.substr(0, slash);
  return z;
}

const ZipEntry* ZipReader::find(std::string_view name_after_prefix) const {
  std::string full;
  full.reserve(prefix_.size() + 1 + name_after_prefix.size());
  full.append(prefix_).append("/").append(name_after_prefix);
  auto it = by_name_.find(full);
  return it == by_name_.end() ? nullptr : &entries_[it->second];
}

Result<std::string> ZipReader::read(const ZipEntry& entry, uint64_t max_size) const {
  const ByteSource& src = *src_;
  if (entry.uncompressed_size > max_size)
    return Status(Code::kLimit, src.name() + ": record " + quote(entry.name) + " is " +
                                    std::to_string(entry.uncompressed_size) +
                                    " bytes, more than the limit of " + std::to_string(max_size));
  if (entry.method == 0) {
    std::string out(entry.uncompressed_size, '\0');
    CKPTIO_RETURN_IF_ERROR(src.read_at(entry.data_offset, out.data(), out.size()));
    return out;
  }
  if (entry.method != 8)
    return Status(Code::kUnsupported, src.name() + ": record " + quote(entry.name) +
                                          " uses compression method " +
                                          std::to_string(entry.method) +
                                          "; only stored (0) and deflate (8) are supported");
  if (entry.uncompressed_size / kMaxDeflateRatio > entry.compressed_size + 1)
    return corrupt(src, "record " + quote(entry.name) + " claims " +
                            std::to_string(entry.uncompressed_size) + " bytes from only " +
                            std::to_string(entry.compressed_size) + " deflated bytes");
  std::string in_buf;
  CKPTIO_ASSIGN_OR_RETURN(const uint8_t* in,
                          view(src, entry.data_offset, entry.compressed_size, in_buf));
  std::string out(entry.uncompressed_size, '\0');
  std::unique_ptr<libdeflate_decompressor, void (*)(libdeflate_decompressor*)> d(
      libdeflate_alloc_decompressor(), libdeflate_free_decompressor);
  if (!d) return Status(Code::kInternal, "out of memory allocating a deflate decompressor");
  // A null actual-size pointer makes libdeflate demand exactly uncompressed_size bytes.
  const libdeflate_result r = libdeflate_deflate_decompress(d.get(), in, entry.compressed_size,
                                                            out.data(), out.size(), nullptr);
  if (r != LIBDEFLATE_SUCCESS)
    return corrupt(src,
                   "record " + quote(entry.name) +
                       (r == LIBDEFLATE_BAD_DATA ? std::string(": invalid deflate data")
                                                 : ": deflate data does not inflate to the " +
                                                       std::to_string(entry.uncompressed_size) +
                                                       " bytes the directory claims"));
  return out;
}

Status ZipReader::verify_crc(const ZipEntry& entry) const {
  // 2.x can disable CRCs (config.save.compute_crc32): 0 then means "not computed".
  if (entry.crc32 == 0) return Status::Ok();
  const ByteSource& src = *src_;
  uint32_t crc = 0;
  if (entry.method != 0) {
    CKPTIO_ASSIGN_OR_RETURN(std::string bytes, read(entry, UINT64_MAX));
    crc = crc32_update(0, bytes.data(), bytes.size());
  } else if (const uint8_t* d = src.data()) {
    crc = crc32_update(0, d + entry.data_offset, entry.uncompressed_size);
  } else {
    constexpr uint64_t kChunk = 1 << 20;
    std::string buf(std::min<uint64_t>(kChunk, entry.uncompressed_size), '\0');
    for (uint64_t done = 0; done < entry.uncompressed_size;) {
      const uint64_t n = std::min<uint64_t>(kChunk, entry.uncompressed_size - done);
      CKPTIO_RETURN_IF_ERROR(src.read_at(entry.data_offset + done, buf.data(), n));
      crc = crc32_update(crc, buf.data(), n);
      done += n;
    }
  }
  if (crc != entry.crc32) {
    char msg[64];
    snprintf(msg, sizeof msg, "CRC32 mismatch (directory says %08x, data has %08x)", entry.crc32,
             crc);
    return corrupt(src, "record " + quote(entry.name) + ": " + msg);
  }
  return Status::Ok();
}

}  // namespace ckptio
