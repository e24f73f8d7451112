// load(), save() and detect_format(): the host's side of reading and writing through
// plugins. Nothing here knows a format.
#include <algorithm>
#include <memory>

#include "ckptio/ckptio.h"
#include "host/atomic_sink.h"
#include "host/c_status.h"
#include "host/file_source.h"
#include "host/registry_impl.h"
#include "host/storage_loader.h"
#include "host/tree_builder.h"
#include "host/tree_view.h"

namespace ckptio {
namespace {

Registry& registry_of(Registry* r) { return r ? *r : Registry::global(); }

[[noreturn]] void fail(const Status& st) { throw Error(st); }

// Plugins are asked to name the file; make sure every message does.
Status with_file(const Status& st, const std::string& name) {
  if (st.ok() || st.message().rfind(name, 0) == 0) return st;
  return st.with_context(name);
}

// Lists formats; the caller holds the registry lock.
std::string format_list_unlocked(Registry& reg) {
  std::string list;
  for (const auto& f : reg.impl().formats) list += (list.empty() ? "" : ", ") + f.name;
  return list.empty() ? "none (no plugins found; see `ckptio plugins`)" : list;
}

// C option array over owned strings.
class COptions {
 public:
  explicit COptions(PluginOptions opts) : opts_(std::move(opts)) {
    for (const auto& [k, v] : opts_) items_.push_back(ckptio_option{k.c_str(), v.c_str()});
    c_.count = items_.size();
    c_.items = items_.data();
  }
  const ckptio_options* get() const { return &c_; }

 private:
  PluginOptions opts_;
  std::vector<ckptio_option> items_;
  ckptio_options c_{};
};

Result<FormatEntry> choose_format(Registry& reg, const ByteSource& src,
                                  const std::string& requested) {
  std::lock_guard<std::mutex> lock(reg.impl().mu);
  if (!requested.empty()) {
    const FormatEntry* f = reg.impl().find(requested);
    if (!f)
      return Status(Code::kInvalidArgument, "unknown format '" + requested +
                                                "'; available: " + format_list_unlocked(reg));
    return *f;
  }
  uint8_t head[4096];
  uint64_t n = std::min<uint64_t>(sizeof head, src.size());
  CKPTIO_RETURN_IF_ERROR(src.read_at(0, head, n));
  const FormatEntry* best = nullptr;
  int32_t best_score = 0;
  for (const auto& f : reg.impl().formats) {
    if (!(f.caps & CKPTIO_CAN_READ)) continue;
    int32_t score = f.api->probe(f.index, head, n, src.size());
    if (score > best_score) {
      best = &f;
      best_score = score;
    }
  }
  if (!best)
    return Status(Code::kUnsupported,
                  src.name() + ": not a checkpoint any loaded plugin reads (formats: " +
                      format_list_unlocked(reg) + ")");
  return *best;
}

Checkpoint load_from(const ByteSource& src, std::shared_ptr<const void> mapping_owner,
                     const LoadOptions& options) {
  Registry& reg = registry_of(options.registry);
  auto chosen = choose_format(reg, src, options.format);
  if (!chosen.ok()) fail(with_file(chosen.status(), src.name()));
  const FormatEntry& fmt = chosen.value();

  PluginOptions opts = options.plugin_options;
  if (options.allow_objects) opts.emplace_back("allow_objects", "1");
  if (options.verify) opts.emplace_back("verify", "1");
  COptions c_opts(std::move(opts));
  ckptio_source c_src = host::c_source(src);
  host::TreeBuilder builder;
  ckptio_reader* reader = nullptr;
  Status st = host::take_status(
      fmt.api->open(fmt.index, &c_src, c_opts.get(), builder.c_builder(), &reader));
  if (!st.ok()) {
    if (reader) fmt.api->close(reader);
    fail(with_file(st, src.name()));
  }
  std::unique_ptr<ckptio_reader, void (*)(ckptio_reader*)> guard(reader, fmt.api->close);
  auto tree = builder.finish();
  if (!tree.ok()) fail(with_file(tree.status(), src.name()));

  Checkpoint ckpt;
  ckpt.tree = std::move(tree).value();
  ckpt.path = src.name();
  ckpt.format = fmt.name;
  ckpt.plugin_path = fmt.plugin_path;
  if (options.load_data) {
    auto read_plugin = [&](uint32_t i, uint64_t off, void* dst, uint64_t n) {
      return host::take_status(fmt.api->read_storage(reader, i, off, dst, n));
    };
    st = host::load_storages(src, std::move(mapping_owner), ckpt.tree.storages,
                             builder.file_offsets(), options, read_plugin, ckpt.storages);
    if (!st.ok()) fail(with_file(st, src.name()));
  } else {
    ckpt.storages.assign(ckpt.tree.storages.size(), StorageBytes{});
  }
  return ckpt;
}

}  // namespace

std::string detect_format(const std::string& path, Registry* registry) {
  auto src = host::FileSource::open(path);
  if (!src.ok()) fail(src.status());
  auto f = choose_format(registry_of(registry), *src.value(), "");
  if (!f.ok()) fail(f.status());
  return f.value().name;
}

Checkpoint load(const std::string& path, const LoadOptions& options) {
  auto src = host::FileSource::open(path);
  if (!src.ok()) fail(src.status());
  std::shared_ptr<host::FileSource> file = src.value();
  return load_from(*file, file, options);
}

Checkpoint load_buffer(const void* data, uint64_t size, const std::string& name,
                       const LoadOptions& options) {
  MemorySource src(data, size, name);
  LoadOptions copy = options;
  copy.zero_copy = false;  // the caller's buffer may not outlive the checkpoint
  return load_from(src, nullptr, copy);
}

void save(const std::string& path, const Checkpoint& ckpt, const SaveOptions& options) {
  Registry& reg = registry_of(options.registry);
  FormatEntry fmt;
  {
    std::lock_guard<std::mutex> lock(reg.impl().mu);
    const FormatEntry* f = reg.impl().find(options.format);
    if (!f)
      fail(Status(Code::kInvalidArgument, path + ": unknown format '" + options.format +
                                              "'; available: " + format_list_unlocked(reg)));
    fmt = *f;
  }
  constexpr size_t kSaveEnd = offsetof(ckptio_plugin_api, save) + sizeof(void*);
  if (!(fmt.caps & CKPTIO_CAN_WRITE) || fmt.api->struct_size < kSaveEnd || !fmt.api->save)
    fail(Status(Code::kUnsupported, path + ": format '" + fmt.name + "' cannot be written"));
  if (!ckpt.tree.root) fail(Status(Code::kInvalidArgument, path + ": nothing to save"));
  if (ckpt.storages.size() != ckpt.tree.storages.size())
    fail(Status(Code::kInvalidArgument, path + ": checkpoint has " +
                                            std::to_string(ckpt.tree.storages.size()) +
                                            " storages but bytes for " +
                                            std::to_string(ckpt.storages.size())));
  uint64_t total = 0;
  for (size_t i = 0; i < ckpt.storages.size(); ++i) {
    const StorageBytes& b = ckpt.storages[i];
    if (!b.data || b.size != ckpt.tree.storages[i].nbytes)
      fail(Status(Code::kInvalidArgument, path + ": storage '" + ckpt.tree.storages[i].key +
                                              "' has no bytes loaded"));
    total += b.size;
  }

  auto sink = host::AtomicFileSink::create(path, options.fsync);
  if (!sink.ok()) fail(sink.status());
  uint64_t done = 0;
  host::TreeView view(ckpt, [&](uint64_t n) {
    done += n;
    if (options.progress) options.progress(std::min(done, total), total);
  });
  struct SinkCtx {
    host::AtomicFileSink* sink;
  } sink_ctx{sink.value().get()};
  ckptio_sink c_sink{};
  c_sink.struct_size = sizeof c_sink;
  c_sink.ctx = &sink_ctx;
  c_sink.name = path.c_str();
  c_sink.write = [](void* ctx, const void* data, uint64_t n) -> ckptio_status {
    return host::make_c_status(static_cast<SinkCtx*>(ctx)->sink->write(data, n));
  };
  COptions c_opts(options.plugin_options);
  Status st = host::take_status(fmt.api->save(fmt.index, view.c_tree(), &c_sink, c_opts.get()));
  if (!st.ok()) fail(with_file(st, path));
  st = sink.value()->commit();
  if (!st.ok()) fail(st);
}

}  // namespace ckptio
