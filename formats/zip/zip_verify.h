// Every record of a zip archive checked, for `ckptio verify` (through the zip-based
// plugins): each bad record is one problem and the check goes on past it, where opening the
// file stops at the first.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "formats/io.h"
#include "formats/status.h"
#include "formats/zip/zip_reader.h"

namespace ckptio {

// Checks one record's bytes; empty: ZipReader::verify_crc (stored and deflated records).
using ZipRecordCheck = std::function<Status(const ZipReader& zip, const ZipEntry& entry)>;

// Appends one line per problem (a directory that does not parse is one); returns the number
// of records that carry a CRC-32 (a writer that skips CRCs leaves 0: nothing to check).
uint64_t verify_zip_records(const ByteSource& src, std::vector<std::string>& problems,
                            const ZipRecordCheck& check = {});

}  // namespace ckptio
