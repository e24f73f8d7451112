// Reader: a checkpoint opened through its format's plugin, its structure known and its
// storages read on demand. Nothing here knows a format.
#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>

#include "ckptio/ckptio.h"
#include "ckptio/plugin.hpp"
#include "host/abi/c_options.h"
#include "host/abi/c_status.h"
#include "host/abi/registry_impl.h"
#include "host/abi/tree_builder.h"
#include "host/api/call_context.h"
#include "host/api/key_selection.h"
#include "host/io/checkpoint_source.h"
#include "host/io/storage_loader.h"

namespace ckptio {

using host::fail;
using host::registry_of;
using host::with_file;

struct Reader::Impl {
  // The file or directory and its members (or the caller's buffer); its C view stays valid
  // from open() to close(), as promised.
  std::shared_ptr<host::CheckpointSource> source;
  LoadOptions options;
  FormatEntry format;
  ckptio_reader* reader = nullptr;
  Tree tree;
  std::vector<uint64_t> file_offsets;
  std::vector<uint32_t> members;  // per storage: the member file its plain bytes are in
  std::vector<uint32_t> plugin_storage;  // per storage: its number in the plugin's tree
  std::mutex mu;
  std::vector<StorageBytes> storages;

  ~Impl() {
    if (reader) format.api->close(reader);
  }
};

Reader::Reader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Reader::~Reader() = default;

namespace {

std::unique_ptr<Reader::Impl> open_impl(std::shared_ptr<host::CheckpointSource> src,
                                        const LoadOptions& options) {
  auto impl = std::make_unique<Reader::Impl>();
  impl->source = std::move(src);
  impl->options = options;
  const host::CheckpointSource& source = *impl->source;
  Registry& reg = registry_of(options.registry);
  auto chosen = reg.impl().choose_format(source, options.format);
  if (!chosen.ok()) fail(with_file(chosen.status(), source.name()));
  impl->format = chosen.value();

  PluginOptions opts = options.plugin_options;
  if (options.allow_objects) opts.emplace_back("allow_objects", "1");
  if (options.verify) opts.emplace_back("verify", "1");
  for (const std::string& k : options.keys) opts.emplace_back(sdk::kSelectOption, k);
  host::COptions c_opts(std::move(opts));
  host::TreeBuilder builder;
  const CallingRegistry calling(reg.impl());
  Status st = host::take_status(impl->format.api->open(impl->format.index, source.c_source(),
                                                       c_opts.get(), builder.c_builder(),
                                                       &impl->reader));
  if (!st.ok()) fail(with_file(st, source.name()));
  auto tree = builder.finish();
  if (!tree.ok()) fail(with_file(tree.status(), source.name()));
  impl->tree = std::move(tree).value();
  impl->file_offsets = builder.file_offsets();
  impl->members = builder.members();
  for (size_t i = 0; i < impl->members.size(); ++i)
    if (impl->members[i] > source.member_count())
      fail(Status(Code::kInternal, source.name() + ": plugin put storage '" +
                                       impl->tree.storages[i].key + "' in member #" +
                                       std::to_string(impl->members[i]) + ", which it never opened"));
  impl->plugin_storage.resize(impl->tree.storages.size());
  for (uint32_t i = 0; i < impl->plugin_storage.size(); ++i) impl->plugin_storage[i] = i;
  if (!options.keys.empty()) {
    auto before = host::select_root_entries(impl->tree, options.keys, source.name());
    if (!before.ok()) fail(before.status());
    std::vector<uint64_t> offsets;
    std::vector<uint32_t> members;
    for (uint32_t old : before.value()) {
      offsets.push_back(impl->file_offsets[old]);
      members.push_back(impl->members[old]);
    }
    impl->file_offsets = std::move(offsets);
    impl->members = std::move(members);
    impl->plugin_storage = std::move(before).value();
  }
  impl->storages.assign(impl->tree.storages.size(), StorageBytes{});
  return impl;
}

}  // namespace

std::unique_ptr<Reader> Reader::open(const std::string& path, const LoadOptions& options) {
  auto src = host::CheckpointSource::open(path);
  if (!src.ok()) fail(src.status());
  std::shared_ptr<host::CheckpointSource> source = src.value();
  source->advise_parsing(true);
  auto impl = open_impl(source, options);
  source->advise_parsing(false);
  return std::unique_ptr<Reader>(new Reader(std::move(impl)));
}

std::unique_ptr<Reader> Reader::open_buffer(const void* data, uint64_t size,
                                            const std::string& name,
                                            const LoadOptions& options) {
  // No mapping owner: storages are copied, since the caller's buffer may not outlive them.
  auto src = host::CheckpointSource::over(std::make_shared<MemorySource>(data, size, name));
  return std::unique_ptr<Reader>(new Reader(open_impl(src, options)));
}

const Tree& Reader::tree() const { return impl_->tree; }
const std::string& Reader::path() const { return impl_->source->name(); }
const std::string& Reader::format() const { return impl_->format.name; }
const std::string& Reader::plugin_path() const { return impl_->format.plugin_path; }

void Reader::read_storages(const std::vector<uint32_t>& indices) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  std::vector<StorageInfo> infos;
  std::vector<host::StorageOrigin> origins;
  std::vector<uint32_t> which;
  std::vector<bool> picked(m.tree.storages.size(), false);
  for (uint32_t i : indices) {
    if (i >= m.tree.storages.size())
      fail(Status(Code::kInvalidArgument, path() + ": no storage #" + std::to_string(i)));
    if (m.storages[i].data || picked[i]) continue;
    picked[i] = true;
    which.push_back(i);
    infos.push_back(m.tree.storages[i]);
    origins.push_back({m.source->member_bytes(m.members[i]), m.source->mapping_owner(m.members[i]),
                       m.file_offsets[i]});
  }
  if (which.empty()) return;
  auto read_plugin = [&](uint32_t k, uint64_t off, void* dst, uint64_t n) {
    return host::take_status(
        m.format.api->read_storage(m.reader, m.plugin_storage[which[k]], off, dst, n));
  };
  std::vector<StorageBytes> got;
  Status st = host::load_storages(infos, origins, m.options, read_plugin, got);
  if (!st.ok()) fail(with_file(st, path()));
  for (size_t k = 0; k < which.size(); ++k) m.storages[which[k]] = std::move(got[k]);
}

StorageBytes Reader::storage(uint32_t index) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (index < impl_->storages.size() && impl_->storages[index].data)
      return impl_->storages[index];
  }
  read_storages({index});
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->storages[index];
}

Status Reader::read_range(uint32_t index, uint64_t offset, void* dst, uint64_t n) {
  Impl& m = *impl_;
  if (index >= m.tree.storages.size())
    return Status(Code::kInvalidArgument, path() + ": no storage #" + std::to_string(index));
  const StorageInfo& info = m.tree.storages[index];
  if (offset > info.nbytes || n > info.nbytes - offset)
    return Status(Code::kInvalidArgument,
                  path() + ": range [" + std::to_string(offset) + ", +" + std::to_string(n) +
                      ") lies outside storage '" + info.key + "' of " +
                      std::to_string(info.nbytes) + " bytes");
  if (n == 0) return Status::Ok();
  {
    std::lock_guard<std::mutex> lock(m.mu);
    const StorageBytes& cached = m.storages[index];
    if (cached.data) {
      std::memcpy(dst, cached.data + offset, n);
      return Status::Ok();
    }
  }
  uint64_t file_offset = m.file_offsets[index];
  if (file_offset != CKPTIO_NOT_PLAIN) {
    const ByteSource& file = *m.source->member_bytes(m.members[index]);
    if (file_offset > file.size() || info.nbytes > file.size() - file_offset)
      return Status(Code::kCorrupt, file.name() + ": storage '" + info.key + "' lies outside the file");
    return with_file(file.read_at(file_offset + offset, dst, n), file.name());
  }
  return with_file(host::take_status(m.format.api->read_storage(m.reader, m.plugin_storage[index],
                                                                offset, dst, n)),
                   path());
}

bool Reader::plain(uint32_t index) const {
  return index < impl_->file_offsets.size() && impl_->file_offsets[index] != CKPTIO_NOT_PLAIN;
}

Checkpoint Reader::checkpoint() const {
  Checkpoint c;
  c.tree = impl_->tree;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    c.storages = impl_->storages;
  }
  c.path = path();
  c.format = format();
  c.plugin_path = plugin_path();
  return c;
}

}  // namespace ckptio
