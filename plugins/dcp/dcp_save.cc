#include "plugins/dcp/dcp_save.h"

#include <regex>
#include <string>

#include "ckptio/plugin.hpp"
#include "formats/dcp/dcp_writer.h"
#include "plugins/common/c_bridge.h"
#include "plugins/common/member_writer.h"

namespace ckptio::plugin {
namespace {

// An earlier DCP save's files, which would contradict this one's .metadata.
bool is_dcp_file(const std::string& name) {
  static const std::regex kDataFile(R"(__\d+_\d+\.distcp)");
  return name == dcp::kMetadataFile || std::regex_match(name, kDataFile);
}

}  // namespace

ckptio_status dcp_save(const ckptio_host_api* host, const ckptio_tree* tree,
                       const ckptio_sink* sink, const ckptio_options*) {
  const std::string context = sink->name ? sink->name : "<output>";
  return sdk::guard(host, context.c_str(), [&]() -> ckptio_status {
    if (!can_write_members(sink))
      return to_c(host, Status(Code::kUnsupported,
                               context + ": a DCP checkpoint is a directory, which this host "
                                         "cannot write"));
    auto imported = import_tree(tree);
    if (!imported.ok()) return to_c(host, imported.status().with_context(context));
    const StorageWriter bytes = storage_writer(host, tree);
    Result<dcp::DcpMetadata> metadata = Status(Code::kInternal, "no items written");
    Status st = write_member(host, sink, dcp::kRankZeroDataFile, [&](ByteSink& out) {
      metadata = dcp::write_dcp_items(out, imported.value(), bytes, dcp::kRankZeroDataFile, context);
      return metadata.status();
    });
    if (!st.ok()) return to_c(host, st);
    auto pickled = dcp::write_dcp_metadata(metadata.value());
    if (!pickled.ok()) return to_c(host, pickled.status().with_context(context));
    st = write_member(host, sink, dcp::kMetadataFile, [&](ByteSink& out) {
      return out.write(pickled.value().data(), pickled.value().size());
    });
    if (st.ok())
      st = drop_stale(host, sink, [](const std::string& existing) {
        return is_dcp_file(existing) && existing != dcp::kMetadataFile &&
               existing != dcp::kRankZeroDataFile;
      });
    return st.ok() ? nullptr : to_c(host, st);
  });
}

}  // namespace ckptio::plugin
