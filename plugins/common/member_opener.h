// Opening the members of a checkpoint of several files (ABI 2) through the host, which
// resolves each relative name inside the checkpoint and refuses the rest; each member's
// source is kept at the host's number, as storages name it (ckptio_storage_desc::member).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ckptio/plugin.h"
#include "formats/io.h"
#include "formats/status.h"
#include "plugins/common/c_bridge.h"

namespace ckptio::plugin {

class MemberOpener {
 public:
  // `sources`: the reader's, [0] the source open() was given, then members by number.
  MemberOpener(const ckptio_host_api* host, const ckptio_source* source,
               std::vector<std::unique_ptr<CSource>>& sources)
      : host_(host), source_(source), sources_(sources) {}

  Result<std::pair<uint32_t, const ByteSource*>> open(const std::string& name) {
    if (!CKPTIO_HAS_FIELD(source_, ckptio_source, open_member) || !source_->open_member)
      return Status(Code::kUnsupported, std::string(source_->name ? source_->name : "<input>") +
                                            ": the host cannot open the checkpoint's file '" +
                                            name + "' (it speaks ABI 1, or reads a buffer)");
    uint32_t number = 0;
    const ckptio_source* member = nullptr;
    CKPTIO_RETURN_IF_ERROR(
        from_c(host_, source_->open_member(source_->ctx, name.c_str(), &number, &member)));
    if (!member || number == 0)
      return Status(Code::kInternal, name + ": host opened a member without a source");
    if (sources_.size() <= number) sources_.resize(size_t(number) + 1);
    if (!sources_[number]) sources_[number] = std::make_unique<CSource>(host_, member);
    return std::make_pair(number, static_cast<const ByteSource*>(sources_[number].get()));
  }

 private:
  const ckptio_host_api* host_;
  const ckptio_source* source_;
  std::vector<std::unique_ptr<CSource>>& sources_;
};

}  // namespace ckptio::plugin
