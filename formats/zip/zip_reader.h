// Reads the zip container PyTorch writes (and any standard zip): EOCD / ZIP64 EOCD, the
// central directory, and each entry's data offset taken from its local header (whose
// extra-field length differs from the central directory's because of the FB padding).
// Every offset and size is checked against the real file size before use.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "formats/io.h"
#include "formats/status.h"

namespace ckptio {

struct ZipEntry {
  std::string name;     // full name including the archive prefix
  uint16_t method = 0;  // 0 stored, 8 deflated, 93 zstd
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  uint64_t local_header_offset = 0;
  uint64_t data_offset = 0;  // where the (compressed) bytes start
};

class ZipReader {
 public:
  // Parses the directory. Errors name src.name() and what is wrong (kCorrupt).
  static Result<ZipReader> open(const ByteSource& src);

  // Text before the first '/' of the first central-directory entry.
  const std::string& prefix() const { return prefix_; }
  const std::vector<ZipEntry>& entries() const { return entries_; }
  // Looks up prefix + "/" + name; null when absent.
  const ZipEntry* find(std::string_view name_after_prefix) const;

  // The entry's uncompressed bytes (stored or deflated), refusing more than max_size.
  Result<std::string> read(const ZipEntry& entry, uint64_t max_size = 1ull << 32) const;
  // Recomputes the CRC32 of a stored entry; CRC 0 in the file is accepted (2.x option).
  Status verify_crc(const ZipEntry& entry) const;

 private:
  const ByteSource* src_ = nullptr;
  std::string prefix_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> by_name_;
};

uint32_t crc32_update(uint32_t crc, const void* data, size_t n);  // zlib polynomial

}  // namespace ckptio
