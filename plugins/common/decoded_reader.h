// The opaque reader handle the host holds between open() and close() for plugins serving a
// DecodedFile: the decoded tree and the sources its storages' bytes lie in.
#pragma once

#include <memory>
#include <vector>

#include "formats/decoded_file.h"
#include "plugins/common/c_bridge.h"

struct ckptio_reader_s {
  // Indexed by StorageExtent::member: [0] the source open() was given; member files of a
  // checkpoint of several files at the numbers the host gave them (null where unused).
  std::vector<std::unique_ptr<ckptio::plugin::CSource>> sources;
  ckptio::DecodedFile file;

  const ckptio::ByteSource* source_of(uint32_t member) const {
    return member < sources.size() ? sources[member].get() : nullptr;
  }
};
