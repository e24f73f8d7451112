#include "plugins/common/sharded_checkpoint.h"

#include <map>
#include <memory>
#include <regex>
#include <set>
#include <unordered_map>
#include <vector>

#include "ckptio/plugin.hpp"
#include "formats/hf/shard_plan.h"
#include "plugins/common/c_bridge.h"
#include "plugins/common/decoded_reader.h"
#include "plugins/common/member_opener.h"
#include "plugins/common/member_writer.h"

namespace ckptio::plugin {
namespace {

constexpr size_t kHeadBytes = 4096;

bool is_directory(const ckptio_source* s) {
  return CKPTIO_HAS_FIELD(s, ckptio_source, kind) && s->kind == CKPTIO_SOURCE_DIRECTORY;
}

std::vector<std::string> listing_of(const ckptio_source* s) {
  std::vector<std::string> names;
  if (!is_directory(s)) return names;
  for (uint64_t i = 0; i < s->member_count; ++i)
    if (s->members[i]) names.emplace_back(s->members[i]);
  return names;
}

Result<std::string> read_all(const ByteSource& src) {
  if (src.size() > hf::kMaxIndexBytes)
    return Status(Code::kLimit, src.name() + ": index of " + std::to_string(src.size()) +
                                    " bytes is larger than the " +
                                    std::to_string(hf::kMaxIndexBytes) + " an index may have");
  std::string text(size_t(src.size()), '\0');
  CKPTIO_RETURN_IF_ERROR(src.read_at(0, text.data(), text.size()));
  return text;
}

void place_in_member(DecodedFile& file, uint32_t member) {
  for (StorageExtent& e : file.extents) e.member = member;
}

// Merges the shards' root dicts into one state_dict, checking each tensor against the index.
class ShardMerger {
 public:
  ShardMerger(const ShardedForm& form, const hf::Index& index, std::string index_name)
      : form_(form), index_name_(std::move(index_name)) {
    merged_.tree.root = Value::dict();
    for (const auto& [name, shard] : index.weight_map) expected_.emplace(name, shard);
  }

  Status add(const std::string& shard, const std::string& shard_path, DecodedFile file,
             uint32_t member) {
    const uint32_t base = uint32_t(merged_.tree.storages.size());
    const ValuePtr& root = file.tree.root;
    if (!root || root->kind != Kind::kDict)
      return Status(Code::kCorrupt, shard_path + ": is not a state_dict (its root is not a dict)");
    for (const auto& [k, v] : root->entries) {
      if (!k || k->kind != Kind::kStr)
        return Status(Code::kCorrupt, shard_path + ": a key of its state_dict is not a string");
      const std::string& name = k->s;
      if (form_.kind == hf::ShardKind::kSafetensors && name == "__metadata__") continue;
      if (!v || v->kind != Kind::kTensor)
        return Status(Code::kCorrupt, shard_path + ": entry '" + name + "' is not a tensor");
      if (auto seen = seen_.find(name); seen != seen_.end())
        return Status(Code::kCorrupt, index_name_ + ": tensor '" + name + "' is in both shard '" +
                                          seen->second + "' and shard '" + shard + "'");
      auto it = expected_.find(name);
      if (it == expected_.end())
        return Status(Code::kCorrupt, shard_path + ": holds tensor '" + name + "', which " +
                                          index_name_ + " does not list");
      if (it->second != shard)
        return Status(Code::kCorrupt, shard_path + ": holds tensor '" + name + "', which " +
                                          index_name_ + " puts in '" + it->second + "'");
      seen_.emplace(name, shard);
      TensorMeta meta = v->tensor;
      meta.storage += base;
      merged_.tree.root->entries.emplace_back(k, Value::make_tensor(std::move(meta)));
    }
    for (size_t i = 0; i < file.tree.storages.size(); ++i) {
      StorageInfo info = file.tree.storages[i];
      // torch.save's keys ("0", "1", ...) repeat from shard to shard; safetensors' are the
      // tensors' names, unique across the index.
      if (form_.kind == hf::ShardKind::kBin) info.key = std::to_string(base + i);
      merged_.tree.storages.push_back(std::move(info));
      StorageExtent e = file.extents[i];
      e.member = member;
      merged_.extents.push_back(std::move(e));
    }
    return Status::Ok();
  }

  // Every tensor the index puts in one of the shards added must have been in it.
  Result<DecodedFile> finish(const std::set<std::string>& shards_added) {
    for (const auto& [name, shard] : expected_)
      if (shards_added.count(shard) && !seen_.count(name))
        return Status(Code::kCorrupt, shard + ": lacks tensor '" + name + "', which " +
                                          index_name_ + " puts in it");
    return std::move(merged_);
  }

 private:
  const ShardedForm& form_;
  std::string index_name_;
  std::unordered_map<std::string, std::string> expected_;
  std::unordered_map<std::string, std::string> seen_;
  DecodedFile merged_;
};

// The state_dict of a save, flattened as safetensors' writer flattens it: nested dicts'
// keys joined with '.'; only tensors (and safetensors' "__metadata__") may be in it.
struct FlatEntry {
  std::string name;
  ValuePtr tensor;
};

std::string with_article(const std::string& noun) {
  const bool vowel = !noun.empty() && std::string("aeiou").find(noun[0]) != std::string::npos;
  return (vowel ? "an " : "a ") + noun;
}

Status flatten(const Value& dict, const std::string& prefix, size_t depth, bool root,
               const ShardedForm& form, std::vector<FlatEntry>& out, ValuePtr& metadata) {
  if (depth > kMaxTreeDepth) return Status(Code::kLimit, "state_dict nests too deeply");
  for (const auto& [k, v] : dict.entries) {
    if (!k || k->kind != Kind::kStr)
      return Status(Code::kInvalidArgument,
                    "a sharded checkpoint's keys are strings; one in " +
                        (prefix.empty() ? std::string("the root") : "'" + prefix + "'") + " is not");
    const std::string name = prefix + k->s;
    if (root && k->s == "__metadata__" && form.kind == hf::ShardKind::kSafetensors) {
      metadata = v;
      continue;
    }
    if (v && v->kind == Kind::kDict) {
      CKPTIO_RETURN_IF_ERROR(flatten(*v, name + ".", depth + 1, false, form, out, metadata));
    } else if (v && v->kind == Kind::kTensor) {
      out.push_back({name, v});
    } else {
      return Status(Code::kInvalidArgument,
                    "'" + name + "' is " + with_article(kind_name(v ? v->kind : Kind::kNone)) +
                        ", not a tensor: a sharded checkpoint holds tensors only");
    }
  }
  return Status::Ok();
}

// Files of the replaced directory that belong to an earlier save of this kind.
bool is_own_file(const ShardedForm& form, const std::string& name) {
  if (name == hf::single_file_name(form.kind) || name == hf::index_file_name(form.kind))
    return true;
  static const std::regex kSafetensorsShard(R"(model-\d{5}-of-\d{5}\.safetensors)");
  static const std::regex kBinShard(R"(pytorch_model-\d{5}-of-\d{5}\.bin)");
  return std::regex_match(name, form.kind == hf::ShardKind::kSafetensors ? kSafetensorsShard
                                                                          : kBinShard);
}

// The call's options without max_shard_size, which the shard's own codec does not know.
class OptionsWithout {
 public:
  OptionsWithout(const ckptio_options* options, const char* key) {
    for (size_t i = 0; options && i < options->count; ++i)
      if (std::string(options->items[i].key) != key) items_.push_back(options->items[i]);
    view_.count = items_.size();
    view_.items = items_.data();
  }
  const ckptio_options* get() const { return &view_; }

 private:
  std::vector<ckptio_option> items_;
  ckptio_options view_{};
};

}  // namespace

int32_t sharded_probe_directory(const ShardedForm& form, const char* const* names,
                                uint64_t count) {
  std::vector<std::string> listing;
  for (uint64_t i = 0; i < count; ++i)
    if (names[i]) listing.emplace_back(names[i]);
  auto entry = hf::entry_file(form.kind, listing);
  if (!entry) return 0;
  return *entry == hf::index_file_name(form.kind) ? form.index_score : form.single_score;
}

bool is_index_head(const ShardedForm& form, const uint8_t* head, size_t n) {
  auto kind = hf::probe_index_head(head, n);
  return kind && *kind == form.kind;
}

bool opens_sharded(const ShardedForm& form, const ckptio_source* source) {
  if (is_directory(source)) return true;
  uint8_t head[kHeadBytes];
  const size_t n = size_t(std::min<uint64_t>(sizeof head, source->size));
  if (source->data) return is_index_head(form, source->data, n);
  ckptio_status st = source->read_at(source->ctx, 0, head, n);
  if (st) return false;  // (a leaked status is the host's to free; none here on success)
  return is_index_head(form, head, n);
}

bool saves_sharded(const ckptio_options* options) {
  return !sdk::option(options, kMaxShardSizeOption).empty();
}

ckptio_status sharded_open(const ckptio_host_api* host, const ShardedForm& form,
                           ShardDecodeFn decode, const ckptio_source* source,
                           const ckptio_options* options, const ckptio_builder* builder,
                           ckptio_reader** out) {
  const std::string name = source->name ? source->name : "<input>";
  return sdk::guard(host, name.c_str(), [&]() -> ckptio_status {
    auto reader = std::make_unique<ckptio_reader_s>();
    reader->sources.push_back(std::make_unique<CSource>(host, source));
    const DecodedPluginOptions common = decoded_plugin_options(options);
    MemberOpener members(host, source, reader->sources);
    auto finish = [&](DecodedFile file) -> ckptio_status {
      reader->file = std::move(file);
      Status st = emit_tree(host, reader->file, builder);
      if (!st.ok()) return to_c(host, st);
      *out = reader.release();
      return nullptr;
    };

    std::string index_text, index_name = name;
    if (is_directory(source)) {
      auto entry = hf::entry_file(form.kind, listing_of(source));
      if (!entry)
        return to_c(host, Status(Code::kNotFound,
                                 name + ": holds neither " + hf::index_file_name(form.kind) +
                                     " nor " + hf::single_file_name(form.kind)));
      auto opened = members.open(*entry);
      if (!opened.ok()) return to_c(host, opened.status());
      const auto [number, src] = opened.value();
      if (*entry == hf::single_file_name(form.kind)) {
        auto decoded = decode(*src, common, options);
        if (!decoded.ok()) return to_c(host, decoded.status());
        place_in_member(decoded.value(), number);
        return finish(std::move(decoded).value());
      }
      auto text = read_all(*src);
      if (!text.ok()) return to_c(host, text.status());
      index_text = std::move(text).value();
      index_name = src->name();
    } else {
      auto text = read_all(*reader->sources[0]);
      if (!text.ok()) return to_c(host, text.status());
      index_text = std::move(text).value();
    }
    auto index = hf::parse_index(index_text.data(), index_text.size(), index_name);
    if (!index.ok()) return to_c(host, index.status());
    if (Status st = hf::check_shard_kind(index.value(), form.kind, index_name); !st.ok())
      return to_c(host, st);
    // A key filter opens only the shards that hold a selected tensor: memory and I/O follow
    // the selection (the host keeps only the selected entries of what is read).
    const sdk::KeySelection selection(options);
    std::set<std::string> wanted;
    for (const auto& [tensor, shard] : index.value().weight_map)
      if (selection.selects(tensor)) wanted.insert(shard);
    ShardMerger merger(form, index.value(), index_name);
    for (const std::string& shard : index.value().shards) {
      if (!wanted.count(shard)) continue;
      auto opened = members.open(shard);
      if (!opened.ok())
        return to_c(host, opened.status().with_context(index_name + ": shard '" + shard + "'"));
      const auto [number, src] = opened.value();
      auto decoded = decode(*src, common, options);
      if (!decoded.ok()) return to_c(host, decoded.status());
      Status st = merger.add(shard, src->name(), std::move(decoded).value(), number);
      if (!st.ok()) return to_c(host, st);
    }
    auto merged = merger.finish(wanted);
    if (!merged.ok()) return to_c(host, merged.status());
    return finish(std::move(merged).value());
  });
}

ckptio_status sharded_save(const ckptio_host_api* host, const ShardedForm& form,
                           ShardEncodeFn encode, const ckptio_tree* tree, const ckptio_sink* sink,
                           const ckptio_options* options) {
  const std::string context = sink->name ? sink->name : "<output>";
  return sdk::guard(host, context.c_str(), [&]() -> ckptio_status {
    auto fail = [&](const Status& st) { return to_c(host, st.with_context(context)); };
    if (!can_write_members(sink))
      return fail(Status(Code::kUnsupported,
                         "max_shard_size writes a directory, which this host cannot write"));
    auto max = hf::parse_size(sdk::option(options, kMaxShardSizeOption));
    if (!max.ok()) return fail(max.status());
    auto imported = import_tree(tree);
    if (!imported.ok()) return fail(imported.status());
    const Tree& whole = imported.value();
    if (!whole.root || whole.root->kind != Kind::kDict)
      return fail(Status(Code::kInvalidArgument, "a sharded checkpoint is a dict of tensors"));
    std::vector<FlatEntry> flat;
    ValuePtr metadata;
    Status st = flatten(*whole.root, "", 0, true, form, flat, metadata);
    if (!st.ok()) return fail(st);
    std::set<std::string> names;
    std::vector<hf::ShardItem> items;
    for (const FlatEntry& e : flat) {
      if (!names.insert(e.name).second)
        return fail(Status(Code::kInvalidArgument, "two tensors flatten to the name '" + e.name + "'"));
      const TensorMeta& t = e.tensor->tensor;
      items.push_back({e.name, t.storage, whole.storages[t.storage].nbytes, uint64_t(t.numel())});
    }
    const hf::ShardPlan plan = hf::plan_shards(items, max.value());
    const size_t count = plan.shards.size();
    const OptionsWithout shard_options(options, kMaxShardSizeOption);
    const StorageWriter bytes = storage_writer(host, tree);
    std::vector<std::pair<std::string, std::string>> weight_map;
    std::set<std::string> written;
    for (size_t s = 0; s < count; ++s) {
      const std::string file = count == 1 ? hf::single_file_name(form.kind)
                                          : hf::shard_file_name(form.kind, s, count);
      // The shard's own tree: its tensors in state_dict order over the storages they use.
      Tree shard;
      shard.root = Value::dict();
      std::map<uint32_t, uint32_t> renumbered;
      std::vector<uint32_t> original;
      for (size_t i : plan.shards[s]) {
        TensorMeta meta = flat[i].tensor->tensor;
        auto [it, fresh] = renumbered.emplace(meta.storage, uint32_t(original.size()));
        if (fresh) {
          original.push_back(meta.storage);
          shard.storages.push_back(whole.storages[meta.storage]);
        }
        meta.storage = it->second;
        shard.root->entries.emplace_back(Value::str(flat[i].name), Value::make_tensor(std::move(meta)));
        weight_map.emplace_back(flat[i].name, file);
      }
      if (metadata) shard.root->entries.emplace_back(Value::str("__metadata__"), metadata);
      const StorageWriter shard_bytes = [&](uint32_t index, ByteSink& out) {
        return bytes(original[index], out);
      };
      st = write_member(host, sink, file, [&](ByteSink& out) {
        return encode(out, shard, shard_bytes, context + "/" + file, shard_options.get());
      });
      if (!st.ok()) return to_c(host, st);
      written.insert(file);
    }
    if (count > 1) {
      const std::string file = hf::index_file_name(form.kind);
      const std::string text = hf::write_index(weight_map, plan.meta);
      st = write_member(host, sink, file, [&](ByteSink& out) { return out.write(text.data(), text.size()); });
      if (!st.ok()) return to_c(host, st);
      written.insert(file);
    }
    // An earlier save's shards, index or single file would contradict this one.
    st = drop_stale(host, sink, [&](const std::string& existing) {
      return !written.count(existing) && is_own_file(form, existing);
    });
    return st.ok() ? nullptr : to_c(host, st);
  });
}

}  // namespace ckptio::plugin
