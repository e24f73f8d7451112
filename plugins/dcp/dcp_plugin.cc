// dcp: a torch.distributed.checkpoint directory (FileSystemWriter's layout,
// formats/dcp/dcp_metadata.h, /work/shared/docs/sharded-formats.md §2) read as ONE logical
// state dict, as torch.distributed.checkpoint.format_utils.dcp_to_torch_save builds it.
//
//   <dir>/.metadata      pickled Metadata: items, their chunks, where each lies, planner_data
//   <dir>/__R_I.distcp   items back to back: each a complete torch.save zip archive at
//                        [offset, offset + length) (a tensor chunk, or a BYTE_IO object)
//
// The directory or its `.metadata` file is the source. Every file is opened through the host
// (ABI 2 open_member: the host refuses absolute names, ".." and symlinks out). At open, each
// selected item's archive is decoded over its byte range with the torch-zip codec (data.pkl
// and the zip directory only): a chunk's tensor must have the chunk's sizes and the item's
// dtype, and its bytes must exist in the file; a BYTE_IO item's value goes into the tree.
// Each tensor is presented at its GLOBAL shape, row-major, over one storage of the whole
// tensor; read_storage assembles any byte range of it by copying every chunk that meets the
// range into its box, one chunk's bytes in memory at a time. A tensor saved as one
// contiguous chunk is plain: the host reads (or maps) its bytes in the .distcp file itself.
// The tree is nested as planner_data says (dict keys and list indices, as _traverse.py's
// set_element builds it); 1.13 files have none, and their keys stay flat.
// Stream transform stream.zstd/1 (2.7+ FileSystemWriter(_extensions=[ZStandard()])): the
// item's bytes are a zstd stream of the archive, decompressed (bounded: a chunk's archive
// to its tensor's bytes plus kArchiveSlack) at open to check it, and again per read_storage
// call, one chunk at a time. Not yet: other transforms (refused, naming the item). Writing:
// dcp_save.h.
#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ckptio/plugin.hpp"
#include "formats/compress/zstd_stream.h"
#include "formats/dcp/dcp_metadata.h"
#include "formats/message_text.h"
#include "formats/zip/torch_zip.h"
#include "plugins/common/c_bridge.h"
#include "plugins/common/decoded_plugin.h"
#include "plugins/common/member_opener.h"
#include "plugins/common/option_infos.h"
#include "plugins/dcp/dcp_save.h"

namespace {

using namespace ckptio;
using namespace ckptio::plugin;

const ckptio_host_api* g_host = nullptr;

constexpr const char kMetadataName[] = ".metadata";
// A .metadata larger than this is refused before it is read (real ones are KBs to a few MB).
constexpr uint64_t kMaxMetadataBytes = uint64_t{1} << 31;

constexpr const char kZstdTransform[] = "stream.zstd/1";
// What a zstd-transformed archive may decode to beyond its tensor's bytes (data.pkl, the
// zip's records and directory), and in all for a BYTE_IO object.
constexpr uint64_t kArchiveSlack = uint64_t{1} << 20;
constexpr uint64_t kMaxZstdObjectBytes = uint64_t{256} << 20;

// Bytes [offset, offset + length) of another source, as a source of their own: a torch.save
// archive inside a .distcp file (its zip offsets count from the item's start).
class SubSource final : public ByteSource {
 public:
  SubSource(const ByteSource* base, uint64_t offset, uint64_t length, std::string name)
      : base_(base), offset_(offset), length_(length), name_(std::move(name)) {}
  uint64_t size() const override { return length_; }
  Status read_at(uint64_t offset, void* dst, uint64_t n) const override {
    if (offset > length_ || n > length_ - offset)
      return Status(Code::kCorrupt, name_ + ": truncated: wanted " + std::to_string(n) +
                                        " bytes at offset " + std::to_string(offset) +
                                        ", item has " + std::to_string(length_));
    return base_->read_at(offset_ + offset, dst, n);
  }
  const uint8_t* data() const override {
    const uint8_t* d = base_->data();
    return d ? d + offset_ : nullptr;
  }
  const std::string& name() const override { return name_; }
  uint64_t base_offset() const { return offset_; }

 private:
  const ByteSource* base_;
  uint64_t offset_, length_;
  std::string name_;
};

// One saved chunk of a tensor: its box in the global tensor and its decoded archive.
struct ChunkPart {
  std::vector<int64_t> offsets, sizes;  // the box, from the metadata
  std::unique_ptr<SubSource> item;      // the archive's bytes in its .distcp member
  uint32_t member = 0;
  // stream.zstd/1: `item` is a zstd stream of the archive, which decodes to at most
  // zstd_bound bytes; extent counts in the decompressed archive.
  bool zstd = false;
  uint64_t zstd_bound = 0;
  TensorMeta view;        // the chunk's tensor in its archive (strides, storage_offset)
  StorageExtent extent;   // its storage's bytes, relative to `item`
  DType storage_dtype = DType::kUInt8;
};

// A storage of the reader: a whole tensor, row-major at its global shape.
struct GlobalTensor {
  std::string fqn;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  uint64_t nbytes = 0;
  std::vector<ChunkPart> chunks;
};

struct DcpReader {
  std::vector<std::unique_ptr<CSource>> sources;  // [0] open()'s source, then members by number
  std::vector<GlobalTensor> tensors;              // indexed as the storages
};

ckptio_reader* to_handle(DcpReader* r) { return reinterpret_cast<ckptio_reader*>(r); }
DcpReader* from_handle(ckptio_reader* r) { return reinterpret_cast<DcpReader*>(r); }

bool is_directory(const ckptio_source* s) {
  return CKPTIO_HAS_FIELD(s, ckptio_source, kind) && s->kind == CKPTIO_SOURCE_DIRECTORY;
}

// ---- probing ---------------------------------------------------------------------------------

int32_t probe_directory(uint32_t, const char* const* names, uint64_t count) {
  for (uint64_t i = 0; i < count; ++i)
    if (names[i] && std::strcmp(names[i], kMetadataName) == 0) return 95;
  return 0;
}

bool contains(const uint8_t* head, size_t n, const char* text) {
  const size_t len = std::strlen(text);
  if (n < len) return false;
  const auto* t = reinterpret_cast<const uint8_t*>(text);
  return std::search(head, head + n, t, t + len) != head + n;
}

// A pickle (protocol 2-5) whose first global is DCP's Metadata class: the head holds the
// module's name right before "Metadata" (GLOBAL "mod\nMetadata\n", or STACK_GLOBAL of two
// short strings: "mod" 0x94 0x8c 0x08 "Metadata").
int32_t probe(uint32_t, const uint8_t* head, size_t n, uint64_t) {
  if (n < 16 || head[0] != 0x80 || head[1] < 2 || head[1] > 5) return 0;
  const size_t window = std::min<size_t>(n, 160);
  for (const char* module : {"torch.distributed.checkpoint.metadata",
                             "torch.distributed._shard.checkpoint.metadata"}) {
    const std::string global = std::string(module) + "\nMetadata\n";
    const std::string stacked = std::string(module) + "\x94\x8c\x08Metadata";
    if (contains(head, window, global.c_str()) || contains(head, window, stacked.c_str()))
      return 90;
  }
  return 0;
}

// ---- open ------------------------------------------------------------------------------------

Result<std::vector<uint8_t>> read_whole(const ByteSource& src) {
  if (src.size() > kMaxMetadataBytes)
    return Status(Code::kLimit, src.name() + ": " + std::to_string(src.size()) +
                                    " bytes, more than the " + std::to_string(kMaxMetadataBytes) +
                                    " a DCP .metadata may have");
  std::vector<uint8_t> bytes(size_t(src.size()));
  CKPTIO_RETURN_IF_ERROR(src.read_at(0, bytes.data(), bytes.size()));
  return bytes;
}

struct OpenContext {
  const dcp::DcpMetadata* md = nullptr;
  std::string md_name;  // the .metadata file, for messages
  MemberOpener* members = nullptr;
  ZipReadOptions zip;
};

std::string item_label(const std::string& fqn) { return "item '" + fqn + "'"; }

// The archive of one item (a chunk, or a BYTE_IO object) over its byte range, decoded.
struct OpenedItem {
  std::unique_ptr<SubSource> item;
  uint32_t member = 0;
  bool zstd = false;
  DecodedFile file;
};

// The archive of a zstd-transformed item, decompressed (at most max_size bytes).
Result<compress::Buffer> unzstd(const SubSource& item, uint64_t max_size) {
  auto out = compress::zstd_decompress_bounded(item, max_size);
  if (out.ok()) return out;
  const std::string& why = out.status().message();
  const std::string prefix = item.name() + ": ";
  const std::string rest = why.rfind(prefix, 0) == 0 ? why.substr(prefix.size()) : why;
  return Status(out.status().code(), prefix + "its stream.zstd/1 transform: " + rest);
}

// Whether the transforms are ones this plugin undoes (none, or stream.zstd/1 alone).
Result<bool> zstd_transformed(const OpenContext& cx, const dcp::StorageInfo& info,
                              const std::string& what) {
  if (!info.transform_descriptors || info.transform_descriptors->empty()) return false;
  const auto& list = *info.transform_descriptors;
  if (list.size() == 1 && list[0] == kZstdTransform) return true;
  std::string text;
  for (const auto& d : list) text += (text.empty() ? "" : ", ") + d;
  return Status(Code::kUnsupported, cx.md_name + ": " + what + " is stored through stream "
                                        "transform " + text + ", which is not supported yet"
                                        " (only " + kZstdTransform + " alone is)");
}

// `zstd_bound`: what a zstd-transformed archive may decompress to.
Result<OpenedItem> open_item(OpenContext& cx, const dcp::StorageEntry& entry,
                             const std::string& what, uint64_t zstd_bound) {
  const dcp::StorageInfo& info = entry.info;
  CKPTIO_ASSIGN_OR_RETURN(const bool zstd, zstd_transformed(cx, info, what));
  auto opened = cx.members->open(info.relative_path);
  if (!opened.ok())
    return opened.status().with_context(cx.md_name + ": " + what + " (in '" +
                                        info.relative_path + "')");
  const auto [number, file] = opened.value();
  const uint64_t off = uint64_t(info.offset), len = uint64_t(info.length);
  if (off > file->size() || len > file->size() - off)
    return Status(Code::kCorrupt,
                  file->name() + ": " + what + " lies at bytes [" + std::to_string(off) + ", " +
                      std::to_string(off + len) + "), past the file's end (" +
                      std::to_string(file->size()) + " bytes; " + cx.md_name + ")");
  OpenedItem out;
  out.member = number;
  out.item = std::make_unique<SubSource>(
      file, off, len,
      file->name() + " (" + what + ", bytes " + std::to_string(off) + ".." +
          std::to_string(off + len) + ")");
  out.zstd = zstd;
  if (!zstd) {
    auto decoded = read_torch_zip(*out.item, cx.zip);
    if (!decoded.ok()) return decoded.status();
    out.file = std::move(decoded).value();
    return out;
  }
  // The archive is checked here and dropped: read_storage decompresses it again, so that
  // no more than one chunk's archive is held at a time.
  CKPTIO_ASSIGN_OR_RETURN(compress::Buffer archive, unzstd(*out.item, zstd_bound));
  const MemorySource plain(archive.data(), archive.size(), out.item->name() + " (decompressed)");
  auto decoded = read_torch_zip(plain, cx.zip);
  if (!decoded.ok()) return decoded.status();
  out.file = std::move(decoded).value();
  return out;
}

// The product of `shape`, nullopt when a size is negative or the product passes 2^63 - 1.
std::optional<uint64_t> checked_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return std::nullopt;
  return uint64_t(n);
}

bool row_major(const TensorMeta& t) {
  int64_t expect = 1;
  for (size_t d = t.shape.size(); d-- > 0;) {
    if (t.shape[d] != 1 && t.strides[d] != expect) return false;
    expect *= t.shape[d];
  }
  return true;
}

Result<GlobalTensor> open_tensor(OpenContext& cx, const dcp::Item& item) {
  GlobalTensor g;
  g.fqn = item.fqn;
  g.dtype = item.properties.dtype;
  g.shape = item.size;
  const int es = dtype_size(g.dtype);
  uint64_t total = 0;  // bytes of all chunks: each one's bytes exist in its file
  for (size_t k = 0; k < item.chunks.size(); ++k) {
    const dcp::Chunk& c = item.chunks[k];
    const std::string what = item_label(item.fqn) + " chunk " + std::to_string(k) + " (offsets " +
                             ints_text(c.offsets) + ")";
    const dcp::StorageEntry* entry = cx.md->find_storage(item.fqn, &c.offsets);
    if (!entry)
      return Status(Code::kCorrupt, cx.md_name + ": " + what + " has no storage entry");
    // A zstd archive decodes to the chunk's bytes and a little more (checked_numel: the
    // chunk is inside the tensor, whose dims the decoder checked; the product may still be
    // too large, and then no archive is that big).
    const std::optional<uint64_t> chunk_numel = checked_numel(c.sizes);
    const uint64_t bound =
        chunk_numel && *chunk_numel <= (UINT64_MAX - kArchiveSlack) / uint64_t(es)
            ? *chunk_numel * uint64_t(es) + kArchiveSlack
            : UINT64_MAX;
    CKPTIO_ASSIGN_OR_RETURN(OpenedItem opened, open_item(cx, *entry, what, bound));
    const ValuePtr& root = opened.file.tree.root;
    const std::string& where = opened.item->name();
    if (!root || root->kind != Kind::kTensor)
      return Status(Code::kCorrupt, where + ": holds " +
                                        std::string(kind_name(root ? root->kind : Kind::kNone)) +
                                        ", not the chunk's tensor");
    const TensorMeta& t = root->tensor;
    if (t.shape != c.sizes)
      return Status(Code::kCorrupt, where + ": the tensor's shape " + ints_text(t.shape) +
                                        " is not the chunk's sizes " + ints_text(c.sizes));
    if (t.dtype != g.dtype)
      return Status(Code::kCorrupt, where + ": the tensor is " + std::string(dtype_name(t.dtype)) +
                                        ", the metadata says " +
                                        std::string(dtype_name(g.dtype)));
    if (t.conj || t.neg)
      return Status(Code::kUnsupported, where + ": a tensor with the conj or neg bit set");
    if (t.storage >= opened.file.tree.storages.size())
      return Status(Code::kCorrupt, where + ": the tensor's storage is missing");
    const StorageExtent& e = opened.file.extents[t.storage];
    // The view's elements must be bytes of the file (no stride-0 expansion of a few bytes
    // into a huge tensor): the host allocates the global tensor from these counts.
    const std::optional<uint64_t> counted = checked_numel(t.shape);
    const uint64_t numel = counted ? *counted : UINT64_MAX;
    if (es <= 0 || numel > e.length / uint64_t(es))
      return Status(Code::kCorrupt, where + ": the tensor's " + std::to_string(numel) +
                                        " elements are more than its storage's " +
                                        std::to_string(e.length) + " bytes hold");
    total += numel * uint64_t(es);
    ChunkPart part;
    part.offsets = c.offsets;
    part.sizes = c.sizes;
    part.member = opened.member;
    part.zstd = opened.zstd;
    part.zstd_bound = bound;
    part.view = t;
    part.extent = e;
    part.storage_dtype = opened.file.tree.storages[t.storage].dtype;
    part.item = std::move(opened.item);
    g.chunks.push_back(std::move(part));
  }
  // The chunks cover the tensor exactly (the decoder checked), so their bytes add up to it.
  const std::optional<uint64_t> numel = checked_numel(g.shape);
  if (!numel || *numel > total / uint64_t(es) || *numel * uint64_t(es) != total)
    return Status(Code::kCorrupt, cx.md_name + ": " + item_label(item.fqn) + ": its chunks hold " +
                                      std::to_string(total) + " bytes, not the " +
                                      ints_text(g.shape) + " tensor's");
  g.nbytes = total;
  return g;
}

// Where a plain tensor's bytes are in its member: one chunk, the whole tensor, contiguous,
// stored as is. nullopt otherwise (read_storage assembles it).
std::optional<uint64_t> plain_offset(const GlobalTensor& g) {
  if (g.chunks.size() != 1 || g.nbytes == 0 || g.chunks[0].zstd) return std::nullopt;
  const ChunkPart& c = g.chunks[0];
  const StorageExtent& e = c.extent;
  if (!e.plain || e.byteswap || e.method != 0 || e.bytes || e.count_prefixed) return std::nullopt;
  if (!row_major(c.view) || c.view.storage_offset < 0) return std::nullopt;
  const uint64_t start = uint64_t(c.view.storage_offset) * uint64_t(dtype_size(g.dtype));
  if (start > e.length || g.nbytes > e.length - start) return std::nullopt;
  return c.item->base_offset() + e.offset + start;
}

// ---- the nested tree (set_element) ----------------------------------------------------------

class TreeBuilder {
 public:
  TreeBuilder(std::string md_name, size_t max_list)
      : md_name_(std::move(md_name)), max_list_(max_list) {
    root_ = Value::dict();
  }
  const ValuePtr& root() const { return root_; }

  Status set(const std::string& fqn, const std::vector<dcp::PathComponent>& path, ValuePtr value) {
    auto fail = [&](const std::string& why) {
      return Status(Code::kCorrupt, md_name_ + ": planner_data path of '" + fqn + "' " + why);
    };
    if (path.empty()) return fail("is empty");
    if (path.size() > kMaxTreeDepth) return fail("nests too deeply");
    ValuePtr cur = root_;
    for (size_t i = 0; i < path.size(); ++i) {
      const bool last = i + 1 == path.size();
      ValuePtr* slot = nullptr;
      if (cur->kind == Kind::kDict) {
        slot = dict_slot(cur, path[i]);
      } else {  // a list
        if (!std::holds_alternative<int64_t>(path[i]))
          return fail("uses the string '" + std::get<std::string>(path[i]) +
                      "' as an index of a list");
        const int64_t index = std::get<int64_t>(path[i]);
        if (index < 0 || uint64_t(index) >= max_list_)
          return fail("has the list index " + std::to_string(index) + " (the checkpoint has " +
                      std::to_string(max_list_) + " items)");
        while (cur->items.size() <= size_t(index)) cur->items.push_back(Value::none());
        slot = &cur->items[size_t(index)];
      }
      if (last) {
        if (*slot && (*slot)->kind != Kind::kNone) return fail("names a place already taken");
        *slot = std::move(value);
        return Status::Ok();
      }
      if (!*slot || (*slot)->kind == Kind::kNone) {
        *slot = std::holds_alternative<std::string>(path[i + 1]) ? Value::dict() : Value::list();
      } else if ((*slot)->kind != Kind::kDict && (*slot)->kind != Kind::kList) {
        return fail("goes through a " + std::string(kind_name((*slot)->kind)));
      }
      cur = *slot;
    }
    return Status::Ok();
  }

 private:
  // The value slot of `key` in dict `d`, a new entry (value null) when absent.
  ValuePtr* dict_slot(const ValuePtr& d, const dcp::PathComponent& key) {
    const std::string k = std::holds_alternative<std::string>(key)
                              ? "s" + std::get<std::string>(key)
                              : "i" + std::to_string(std::get<int64_t>(key));
    auto& index = keys_[d.get()];
    if (auto it = index.find(k); it != index.end()) return &d->entries[it->second].second;
    index.emplace(k, d->entries.size());
    d->entries.emplace_back(std::holds_alternative<std::string>(key)
                                ? Value::str(std::get<std::string>(key))
                                : Value::integer(std::get<int64_t>(key)),
                            nullptr);
    return &d->entries.back().second;
  }

  std::string md_name_;
  size_t max_list_;
  ValuePtr root_;
  std::unordered_map<const Value*, std::unordered_map<std::string, size_t>> keys_;
};

std::string top_level_name(const std::vector<dcp::PathComponent>& path, const std::string& fqn) {
  if (path.empty()) return fqn;
  if (std::holds_alternative<std::string>(path[0])) return std::get<std::string>(path[0]);
  return std::to_string(std::get<int64_t>(path[0]));
}

Status read_checkpoint(const ckptio_source* source, const ckptio_options* options,
                       DcpReader& reader, DecodedFile& out) {
  reader.sources.push_back(std::make_unique<CSource>(g_host, source));
  MemberOpener members(g_host, source, reader.sources);
  const ByteSource* md_src = reader.sources[0].get();
  if (is_directory(source)) {
    auto opened = members.open(kMetadataName);
    if (!opened.ok()) return opened.status();
    md_src = opened.value().second;
  }
  const std::string md_name = md_src->name();
  std::vector<uint8_t> held;
  const uint8_t* bytes = md_src->data();
  if (!bytes) {
    CKPTIO_ASSIGN_OR_RETURN(held, read_whole(*md_src));
    bytes = held.data();
  }
  auto parsed = dcp::parse_dcp_metadata(bytes, size_t(md_src->size()), md_name);
  if (!parsed.ok()) return parsed.status();
  const dcp::DcpMetadata& md = parsed.value();

  const DecodedPluginOptions common = decoded_plugin_options(options);
  OpenContext cx;
  cx.md = &md;
  cx.md_name = md_name;
  cx.members = &members;
  cx.zip.limits = common.limits;
  cx.zip.allow_objects = common.allow_objects;
  cx.zip.verify_crc = common.verify;

  std::unordered_map<std::string, const std::vector<dcp::PathComponent>*> paths;
  if (md.planner_data)
    for (const dcp::PlannerEntry& p : *md.planner_data) paths.emplace(p.fqn, &p.path);

  const sdk::KeySelection selection(options);
  TreeBuilder tree(md_name, md.items.size());
  for (const dcp::Item& item : md.items) {
    auto p = paths.find(item.fqn);
    const std::vector<dcp::PathComponent> flat = {item.fqn};
    const std::vector<dcp::PathComponent>& path = p != paths.end() ? *p->second : flat;
    if (!selection.selects(top_level_name(path, item.fqn))) continue;
    ValuePtr value;
    if (item.kind == dcp::Item::Kind::kTensor) {
      CKPTIO_ASSIGN_OR_RETURN(GlobalTensor g, open_tensor(cx, item));
      TensorMeta meta;
      meta.dtype = g.dtype;
      meta.shape = g.shape;
      meta.strides.assign(g.shape.size(), 1);
      for (size_t d = g.shape.size(); d-- > 1;)
        meta.strides[d - 1] = meta.strides[d] * std::max<int64_t>(g.shape[d], 1);
      meta.storage = uint32_t(reader.tensors.size());
      StorageInfo info{g.fqn, g.dtype, g.nbytes, "cpu"};
      StorageExtent e;
      e.length = g.nbytes;
      if (auto at = plain_offset(g)) {
        e.offset = *at;
        e.member = g.chunks[0].member;
      } else {
        e.plain = false;
      }
      out.tree.storages.push_back(std::move(info));
      out.extents.push_back(std::move(e));
      reader.tensors.push_back(std::move(g));
      value = Value::make_tensor(std::move(meta));
    } else {
      const std::string what = item_label(item.fqn);
      const dcp::StorageEntry* entry = md.find_storage(item.fqn, nullptr);
      if (!entry) return Status(Code::kCorrupt, md_name + ": " + what + " has no storage entry");
      CKPTIO_ASSIGN_OR_RETURN(OpenedItem opened,
                              open_item(cx, *entry, what, kMaxZstdObjectBytes));
      if (!opened.file.tree.storages.empty())
        return Status(Code::kUnsupported, opened.item->name() +
                                              ": a BYTE_IO object holding tensors is not "
                                              "supported yet");
      value = opened.file.tree.root ? opened.file.tree.root : Value::none();
    }
    CKPTIO_RETURN_IF_ERROR(tree.set(item.fqn, path, std::move(value)));
  }
  out.tree.root = tree.root();
  return Status::Ok();
}

ckptio_status open(uint32_t, const ckptio_source* source, const ckptio_options* options,
                   const ckptio_builder* builder, ckptio_reader** out) {
  const std::string name = source->name ? source->name : "<input>";
  return sdk::guard(g_host, name.c_str(), [&]() -> ckptio_status {
    auto reader = std::make_unique<DcpReader>();
    DecodedFile file;
    Status st = read_checkpoint(source, options, *reader, file);
    if (st.ok()) st = emit_tree(g_host, file, builder);
    if (!st.ok()) return to_c(g_host, st);
    *out = to_handle(reader.release());
    return nullptr;
  });
}

// ---- read_storage: a byte range of the global tensor, chunk by chunk -------------------------

// Copies the bytes of chunk `c` that fall in [lo, hi) of the row-major global tensor `g`
// into dst (which holds [lo, hi)).
Status copy_chunk(const GlobalTensor& g, const ChunkPart& c, uint64_t lo, uint64_t hi,
                  uint8_t* dst) {
  const size_t nd = g.shape.size();
  const uint64_t es = uint64_t(dtype_size(g.dtype));
  const TensorMeta& v = c.view;
  if (v.numel() == 0) return Status::Ok();
  // Rows: every index of the chunk but the last dim's; each row is a run of `run` elements,
  // contiguous in the global tensor. A 0-dim tensor is one row of one element.
  std::vector<int64_t> gstride(nd, 1);
  for (size_t d = nd; d-- > 1;) gstride[d - 1] = gstride[d] * g.shape[d];
  const int64_t run = nd ? c.sizes[nd - 1] : 1;
  const int64_t src_step = nd ? v.strides[nd - 1] : 1;
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < nd; ++d) rows *= c.sizes[d];
  std::vector<int64_t> idx(nd ? nd - 1 : 0);
  auto unravel = [&](int64_t r) {
    for (size_t d = idx.size(); d-- > 0;) {
      idx[d] = r % c.sizes[d];
      r /= c.sizes[d];
    }
  };
  auto row_start = [&](int64_t r) -> uint64_t {  // global byte of row r's first element
    unravel(r);
    int64_t e = nd ? c.offsets[nd - 1] : 0;
    for (size_t d = 0; d < idx.size(); ++d) e += (c.offsets[d] + idx[d]) * gstride[d];
    return uint64_t(e) * es;
  };
  const uint64_t row_bytes = uint64_t(run) * es;
  // Rows meeting [lo, hi): row starts rise with r, so they are one range [r0, r1).
  int64_t a = 0, b = rows;
  while (a < b) {  // first row ending after lo
    const int64_t m = a + (b - a) / 2;
    if (row_start(m) + row_bytes <= lo) a = m + 1;
    else b = m;
  }
  const int64_t r0 = a;
  b = rows;
  while (a < b) {  // first row starting at or after hi
    const int64_t m = a + (b - a) / 2;
    if (row_start(m) < hi) a = m + 1;
    else b = m;
  }
  const int64_t r1 = a;
  if (r0 >= r1) return Status::Ok();

  // The archive: in the .distcp file, or decompressed (then held until this call returns).
  compress::Buffer unzstded;
  std::optional<MemorySource> decompressed;
  const ByteSource* archive = c.item.get();
  if (c.zstd) {
    CKPTIO_ASSIGN_OR_RETURN(unzstded, unzstd(*c.item, c.zstd_bound));
    decompressed.emplace(unzstded.data(), unzstded.size(), c.item->name() + " (decompressed)");
    archive = &*decompressed;
  }
  // The chunk's bytes these rows need: for a row-major view stored as is, rows r0..r1-1
  // alone; otherwise the whole span of the view in its storage.
  const StorageExtent& e = c.extent;
  const bool direct = e.method == 0 && !e.byteswap && !e.bytes && !e.count_prefixed;
  int64_t first = v.storage_offset, last = v.storage_offset;  // elements of the storage
  if (direct && row_major(v)) {
    first = v.storage_offset + r0 * run;
    last = v.storage_offset + r1 * run - 1;
  } else {
    for (size_t d = 0; d < nd; ++d) last += (v.shape[d] - 1) * v.strides[d];
  }
  const uint64_t span = uint64_t(last - first + 1) * es;
  std::vector<uint8_t> buf;
  const uint8_t* base = nullptr;  // the bytes of element `first`
  if (direct) {
    const uint8_t* mapped = archive->data();
    if (mapped && e.offset + uint64_t(first) * es + span <= archive->size()) {
      base = mapped + e.offset + uint64_t(first) * es;
    } else {
      buf.resize(span);
      CKPTIO_RETURN_IF_ERROR(archive->read_at(e.offset + uint64_t(first) * es, buf.data(), span));
      base = buf.data();
    }
  } else {
    buf.resize(e.length);
    CKPTIO_RETURN_IF_ERROR(read_storage_bytes(*archive, e, c.storage_dtype, buf.data()));
    base = buf.data() + uint64_t(first) * es;
  }

  std::vector<int64_t> vstride(idx.size());
  for (size_t d = 0; d < idx.size(); ++d) vstride[d] = v.strides[d];
  for (int64_t r = r0; r < r1; ++r) {
    const uint64_t gs = row_start(r);  // also unravels r into idx
    int64_t src = v.storage_offset - first;
    for (size_t d = 0; d < idx.size(); ++d) src += idx[d] * vstride[d];
    const uint64_t from = std::max(gs, lo), to = std::min(gs + row_bytes, hi);
    if (from >= to) continue;
    if (src_step == 1 || run == 1) {
      std::memcpy(dst + (from - lo), base + uint64_t(src) * es + (from - gs), to - from);
      continue;
    }
    for (uint64_t x = from; x < to;) {  // element by element, a partial one at either end
      const uint64_t j = (x - gs) / es, in = (x - gs) % es;
      const uint64_t n = std::min(es - in, to - x);
      std::memcpy(dst + (x - lo), base + uint64_t(src + int64_t(j) * src_step) * es + in, n);
      x += n;
    }
  }
  return Status::Ok();
}

ckptio_status read_storage(ckptio_reader* handle, uint32_t index, uint64_t offset, void* dst,
                           uint64_t n) {
  return sdk::guard(g_host, "read_storage", [&]() -> ckptio_status {
    const DcpReader* reader = from_handle(handle);
    if (index >= reader->tensors.size())
      return g_host->make_status(CKPTIO_INVALID_ARGUMENT, "read_storage: no such storage");
    const GlobalTensor& g = reader->tensors[index];
    if (offset > g.nbytes || n > g.nbytes - offset)
      return g_host->make_status(CKPTIO_INVALID_ARGUMENT, "read_storage: range out of bounds");
    auto* out = static_cast<uint8_t*>(dst);
    for (const ChunkPart& c : g.chunks) {
      Status st = copy_chunk(g, c, offset, offset + n, out);
      if (!st.ok()) return to_c(g_host, st.with_context("item '" + g.fqn + "'"));
    }
    return nullptr;
  });
}

void close(ckptio_reader* handle) { delete from_handle(handle); }

const ckptio_option_info* options(uint32_t, uint32_t* count) {
  *count = uint32_t(kDecodedReadOptions.size());
  return kDecodedReadOptions.data();
}

const ckptio_format_info kFormat = {
    "dcp", "torch.distributed.checkpoint directory (.metadata + __R_I.distcp), read as one "
    "state dict; written as one rank's", "", CKPTIO_CAN_READ | CKPTIO_CAN_WRITE};

ckptio_status save(uint32_t, const ckptio_tree* tree, const ckptio_sink* sink,
                   const ckptio_options* options) {
  return dcp_save(g_host, tree, sink, options);
}

const ckptio_plugin_api* make_api(const ckptio_host_api* host) {
  g_host = host;
  static const ckptio_plugin_api api = {sizeof(ckptio_plugin_api),
                                        CKPTIO_ABI_VERSION,
                                        "dcp",
                                        "0.1.0",
                                        1,
                                        &kFormat,
                                        probe,
                                        open,
                                        read_storage,
                                        close,
                                        save,
                                        options,
                                        nullptr,
                                        probe_directory};
  return &api;
}

}  // namespace

CKPTIO_DEFINE_PLUGIN(make_api)
