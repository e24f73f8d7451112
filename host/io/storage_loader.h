// Fills a checkpoint's storages: plain bytes straight from the source (copied into 64-byte
// aligned buffers with parallel reads, or aliased in the mapping in zero-copy mode), other
// storages through the plugin's read_storage.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "ckptio/ckptio.h"
#include "formats/io.h"

namespace ckptio::host {

// A 64-byte aligned buffer; those of 4 MiB and more are anonymous mappings of their own
// (page-aligned, fresh: load_storages fills them through fresh_page_fill.h).
std::shared_ptr<uint8_t> allocate_storage(uint64_t nbytes);

// Where one storage's bytes come from: the file (a checkpoint's member) they lie in plainly
// at file_offset, or CKPTIO_NOT_PLAIN for the plugin's read_storage.
struct StorageOrigin {
  const ByteSource* src = nullptr;
  std::shared_ptr<const void> mapping_owner;  // null: the mapping may not be aliased
  uint64_t file_offset = 0;
};

// `read_plugin(index, offset, dst, n)` reads a non-plain storage range. Storages of
// different files are read in parallel like ranges of one.
Status load_storages(const std::vector<StorageInfo>& storages,
                     const std::vector<StorageOrigin>& origins, const LoadOptions& options,
                     const std::function<Status(uint32_t, uint64_t, void*, uint64_t)>& read_plugin,
                     std::vector<StorageBytes>& out);

}  // namespace ckptio::host
