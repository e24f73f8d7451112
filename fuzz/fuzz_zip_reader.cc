// libFuzzer target: the zip container reader (formats/zip/zip_reader.h): open, then read
// and CRC-check every entry (stored and deflated), and look up the torch records.
#include <cstddef>
#include <cstdint>

#include "formats/io.h"
#include "formats/zip/zip_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ckptio;
  MemorySource src(data, size, "fuzz.zip");
  auto zip = ZipReader::open(src);
  if (!zip.ok()) return 0;
  for (const ZipEntry& e : zip->entries()) {
    // Entries must lie in the file: read() and verify_crc() rely on open()'s checks.
    if (e.data_offset > size) __builtin_trap();
    auto bytes = zip->read(e, 1u << 24);
    if (bytes.ok() && bytes->size() != e.uncompressed_size) __builtin_trap();
    (void)zip->verify_crc(e);
  }
  (void)zip->find("data.pkl");
  (void)zip->find("version");
  return 0;
}
