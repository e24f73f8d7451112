#include "formats/zip/zip_verify.h"

namespace ckptio {

uint64_t verify_zip_records(const ByteSource& src, std::vector<std::string>& problems,
                            const ZipRecordCheck& check) {
  auto zip = ZipReader::open(src);
  if (!zip.ok()) {
    problems.push_back(zip.status().message());
    return 0;
  }
  uint64_t checked = 0;
  for (const ZipEntry& e : zip->entries()) {
    Status st = check ? check(*zip, e) : zip->verify_crc(e);
    if (!st.ok()) problems.push_back(st.message());
    checked += e.crc32 != 0;
  }
  return checked;
}

}  // namespace ckptio
