// Plugin-side glue between the C ABI (sdk/include/ckptio/plugin.h) and the codecs in
// formats/: byte sources and sinks over the host's callbacks, statuses both ways, the
// decoded tree emitted through the host's builder, and the host's tree read into a Tree.
#pragma once

#include <string>
#include <vector>

#include "ckptio/plugin.h"
#include "formats/decoded_file.h"
#include "formats/io.h"
#include "formats/pickle/unpickler.h"
#include "formats/status.h"
#include "formats/value.h"

namespace ckptio::plugin {

// Converts a host status into a Status, releasing the host's object.
Status from_c(const ckptio_host_api* host, ckptio_status st);
// Converts a Status into a host status (NULL when ok).
ckptio_status to_c(const ckptio_host_api* host, const Status& st);

class CSource final : public ByteSource {
 public:
  CSource(const ckptio_host_api* host, const ckptio_source* src)
      : host_(host), src_(src), name_(src->name ? src->name : "<input>") {}
  uint64_t size() const override { return src_->size; }
  Status read_at(uint64_t offset, void* dst, uint64_t n) const override;
  const uint8_t* data() const override { return src_->data; }
  const std::string& name() const override { return name_; }

 private:
  const ckptio_host_api* host_;
  const ckptio_source* src_;
  std::string name_;
};

class CSink final : public ByteSink {
 public:
  CSink(const ckptio_host_api* host, const ckptio_sink* sink) : host_(host), sink_(sink) {}
  Status write(const void* data, uint64_t n) override {
    return from_c(host_, sink_->write(sink_->ctx, data, n));
  }

 private:
  const ckptio_host_api* host_;
  const ckptio_sink* sink_;
};

// The read-side options every torch plugin honours.
PickleLimits limits_from_options(const ckptio_options* options);

// Hands a container check's findings (problems, checksums verified) to the host's report.
void send_verify_report(const ckptio_verify_report* report,
                        const std::vector<std::string>& problems, uint64_t checksums);

// Describes a decoded file to the host: storages first, then the tree in pre-order.
Status emit_tree(const ckptio_host_api* host, const DecodedFile& file,
                 const ckptio_builder* builder);

// Reads the host's tree view into a Tree (structure only; bytes stay with the host).
Result<Tree> import_tree(const ckptio_tree* view);
// Streams storage bytes from the host's tree view into a sink, in chunks.
StorageWriter storage_writer(const ckptio_host_api* host, const ckptio_tree* view);

}  // namespace ckptio::plugin
