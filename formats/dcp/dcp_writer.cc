// A one-rank DCP save (dcp_writer.h): the state dict flattened as torch's default planner
// flattens it, each leaf written as torch.save writes it, and the Metadata pickle built from
// the same value tree the pickler writes for torch.save.
#include "formats/dcp/dcp_writer.h"

#include <algorithm>
#include <unordered_set>
#include <utility>
#include <vector>

#include "formats/pickle/pickler.h"
#include "formats/zip/torch_zip.h"

namespace ckptio::dcp {
namespace {

const std::string kMetadataModule = "torch.distributed.checkpoint.metadata";
const std::string kFilesystemModule = "torch.distributed.checkpoint.filesystem";
const std::string kShardedTensorModule = "torch.distributed._shard.sharded_tensor.metadata";

// ---- the flattened state dict ---------------------------------------------------------------

struct Leaf {
  std::vector<PathComponent> path;
  std::string fqn;
  ValuePtr value;
};

std::string path_text(const std::vector<PathComponent>& path) {
  std::string out;
  for (const PathComponent& c : path) {
    if (!out.empty()) out += '.';
    out += std::holds_alternative<std::string>(c) ? std::get<std::string>(c)
                                                   : std::to_string(std::get<int64_t>(c));
  }
  return out;
}

// traverse_state_dict's _is_terminal for a list: walked when it holds a tensor, a dict or a
// list that is walked.
bool list_is_walked(const Value& list, size_t depth) {
  if (depth > kMaxTreeDepth) return false;
  for (const ValuePtr& e : list.items) {
    if (!e) continue;
    if (e->kind == Kind::kTensor || e->kind == Kind::kDict) return true;
    if (e->kind == Kind::kList && list_is_walked(*e, depth + 1)) return true;
  }
  return false;
}

class Flattener {
 public:
  explicit Flattener(std::string context) : context_(std::move(context)) {}

  Status walk(const ValuePtr& v, std::vector<PathComponent>& path, size_t depth) {
    if (depth > kMaxTreeDepth)
      return Status(Code::kInvalidArgument, context_ + ": the state dict nests too deeply");
    if (v && v->kind == Kind::kDict) {
      for (const auto& [k, child] : v->entries) {
        std::string key;
        if (k && k->kind == Kind::kStr) key = k->s;
        else if (k && k->kind == Kind::kInt) key = std::to_string(k->i);
        else
          return Status(Code::kInvalidArgument,
                        context_ + ": a key under '" + path_text(path) + "' is a " +
                            kind_name(k ? k->kind : Kind::kNone) +
                            "; a DCP checkpoint's keys are strings or ints");
        path.emplace_back(std::move(key));
        CKPTIO_RETURN_IF_ERROR(walk(child, path, depth + 1));
        path.pop_back();
      }
      return Status::Ok();
    }
    if (v && v->kind == Kind::kList && list_is_walked(*v, depth)) {
      for (size_t i = 0; i < v->items.size(); ++i) {
        path.emplace_back(static_cast<int64_t>(i));
        CKPTIO_RETURN_IF_ERROR(walk(v->items[i], path, depth + 1));
        path.pop_back();
      }
      return Status::Ok();
    }
    Leaf leaf{path, path_text(path), v ? v : Value::none()};
    if (!fqns_.insert(leaf.fqn).second)
      return Status(Code::kInvalidArgument,
                    context_ + ": two entries flatten to the key '" + leaf.fqn + "'");
    leaves_.push_back(std::move(leaf));
    return Status::Ok();
  }

  std::vector<Leaf>& leaves() { return leaves_; }

 private:
  std::string context_;
  std::unordered_set<std::string> fqns_;
  std::vector<Leaf> leaves_;
};

// ---- the items ----------------------------------------------------------------------------

class CountingSink final : public ByteSink {
 public:
  explicit CountingSink(ByteSink& out) : out_(out) {}
  Status write(const void* data, uint64_t n) override {
    count_ += n;
    return out_.write(data, n);
  }
  uint64_t count() const { return count_; }

 private:
  ByteSink& out_;
  uint64_t count_ = 0;
};

// Forwards the bytes of [begin, end) of what is written to it.
class WindowSink final : public ByteSink {
 public:
  WindowSink(ByteSink& out, uint64_t begin, uint64_t end) : out_(out), begin_(begin), end_(end) {}
  Status write(const void* data, uint64_t n) override {
    const uint64_t lo = std::max(pos_, begin_), hi = std::min(pos_ + n, end_);
    const uint64_t at = pos_;
    pos_ += n;
    if (lo >= hi) return Status::Ok();
    return out_.write(static_cast<const uint8_t*>(data) + (lo - at), hi - lo);
  }

 private:
  ByteSink& out_;
  uint64_t begin_, end_, pos_ = 0;
};

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * std::max<int64_t>(shape[d], 1);
  return strides;
}

bool is_contiguous(const TensorMeta& t) {
  const std::vector<int64_t> want = contiguous_strides(t.shape);
  for (size_t d = 0; d < t.shape.size(); ++d)
    if (t.shape[d] > 1 && t.strides[d] != want[d]) return false;
  return true;
}

// The tensor's elements in row-major order: a window of its storage when it is contiguous,
// else gathered from a copy of the storage.
Status write_elements(const TensorMeta& t, const ckptio::StorageInfo& storage, const StorageWriter& bytes,
                      ByteSink& out) {
  const uint64_t es = uint64_t(dtype_size(t.dtype));
  const uint64_t n = uint64_t(t.numel());
  if (n == 0) return Status::Ok();
  if (is_contiguous(t)) {
    const uint64_t begin = uint64_t(t.storage_offset) * es;
    WindowSink window(out, begin, begin + n * es);
    return bytes(t.storage, window);
  }
  StringSink copy;
  CKPTIO_RETURN_IF_ERROR(bytes(t.storage, copy));
  if (copy.out.size() != storage.nbytes)
    return Status(Code::kInternal, "storage '" + storage.key + "' gave the wrong number of bytes");
  // Runs along the last dimension, then the index carried into the others.
  const size_t dims = t.shape.size();
  const int64_t run = t.shape[dims - 1];
  std::vector<int64_t> idx(dims, 0);
  std::string row(size_t(run) * es, '\0');
  for (uint64_t done = 0; done < n; done += uint64_t(run)) {
    int64_t base = t.storage_offset;
    for (size_t d = 0; d + 1 < dims; ++d) base += idx[d] * t.strides[d];
    for (int64_t i = 0; i < run; ++i)
      std::copy_n(copy.out.data() + (base + i * t.strides[dims - 1]) * es, es, row.data() + i * es);
    CKPTIO_RETURN_IF_ERROR(out.write(row.data(), row.size()));
    for (size_t d = dims - 1; d-- > 0;) {
      if (++idx[d] < t.shape[d]) break;
      idx[d] = 0;
    }
  }
  return Status::Ok();
}

bool holds_tensor(const ValuePtr& v) {
  bool found = false;
  for_each_tensor(v, [&](const ValuePtr&, const std::string&) { found = true; });
  return found;
}

}  // namespace

Result<DcpMetadata> write_dcp_items(ByteSink& data, const Tree& tree, const StorageWriter& bytes,
                                    const std::string& data_file, const std::string& context) {
  if (!tree.root || tree.root->kind != Kind::kDict)
    return Status(Code::kInvalidArgument, context + ": a DCP checkpoint's state dict is a dict");
  Flattener flat(context);
  std::vector<PathComponent> path;
  CKPTIO_RETURN_IF_ERROR(flat.walk(tree.root, path, 0));

  DcpMetadata md;
  md.package = "torch.distributed.checkpoint";
  md.version = "1.0.0";
  md.planner_data.emplace();
  CountingSink out(data);
  ZipWriteOptions zo;
  for (Leaf& leaf : flat.leaves()) {
    const uint64_t offset = out.count();
    Item item;
    item.fqn = leaf.fqn;
    MetadataIndex index;
    index.fqn = leaf.fqn;
    const std::string where = context + ": '" + leaf.fqn + "'";
    zo.context = where;
    if (leaf.value->kind == Kind::kTensor) {
      const TensorMeta& t = leaf.value->tensor;
      if (t.storage >= tree.storages.size() || !tensor_view_fits(t, tree.storages[t.storage].nbytes))
        return Status(Code::kInvalidArgument, where + ": the tensor's view lies outside its storage");
      Tree one;
      TensorMeta m;
      m.dtype = t.dtype;
      m.shape = t.shape;
      m.strides = contiguous_strides(t.shape);
      one.storages.push_back(
          {"0", t.dtype, uint64_t(t.numel()) * uint64_t(dtype_size(t.dtype)), "cpu"});
      one.root = Value::make_tensor(m);
      const ckptio::StorageInfo& source = tree.storages[t.storage];
      const StorageWriter elements = [&](uint32_t, ByteSink& sink) {
        return write_elements(t, source, bytes, sink);
      };
      CKPTIO_RETURN_IF_ERROR(write_torch_zip(out, one, elements, zo));
      item.kind = Item::Kind::kTensor;
      item.properties.dtype = t.dtype;
      item.size = t.shape;
      item.chunks.push_back({std::vector<int64_t>(t.shape.size(), 0), t.shape});
      index.offset = std::vector<int64_t>(t.shape.size(), 0);
      index.index = 0;
    } else {
      if (holds_tensor(leaf.value))
        return Status(Code::kInvalidArgument,
                      where + " is a " + kind_name(leaf.value->kind) +
                          " holding tensors, which DCP would pickle as one object; put the "
                          "tensors in a dict or a list");
      Tree one;
      one.root = leaf.value;
      const StorageWriter none = [&](uint32_t, ByteSink&) {
        return Status(Code::kInternal, where + ": an object item has no storages");
      };
      CKPTIO_RETURN_IF_ERROR(write_torch_zip(out, one, none, zo));
      item.kind = Item::Kind::kBytes;
    }
    StorageInfo info;
    info.relative_path = data_file;
    info.offset = int64_t(offset);
    info.length = int64_t(out.count() - offset);
    md.items.push_back(std::move(item));
    md.storage_data.push_back({std::move(index), std::move(info)});
    md.planner_data->push_back({leaf.fqn, std::move(leaf.path)});
  }
  return md;
}

// ---- the Metadata pickle -------------------------------------------------------------------

namespace {

ValuePtr new_object(const std::string& cls, ValuePtr state) {
  return Value::object(cls, nullptr, std::move(state));
}

ValuePtr torch_size(const std::vector<int64_t>& dims) {
  std::vector<ValuePtr> items;
  for (int64_t d : dims) items.push_back(Value::integer(d));
  return Value::object("torch.Size", Value::tuple({Value::tuple(std::move(items))}));
}

void put(const ValuePtr& dict, const std::string& key, ValuePtr value) {
  dict->entries.emplace_back(Value::str(key), std::move(value));
}

ValuePtr tensor_properties(const TensorProperties& p) {
  const ValuePtr layout =
      Value::object("torch.serialization._get_layout", Value::tuple({Value::str(p.layout)}));
  const ValuePtr memory_format = Value::object(
      kShardedTensorModule + ".MEM_FORMAT_ENCODING",
      Value::tuple({Value::integer(static_cast<int64_t>(p.memory_format))}));
  return new_object(kShardedTensorModule + ".TensorProperties",
                    Value::tuple({Value::global("torch." + std::string(dtype_name(p.dtype))), layout,
                                  Value::boolean(p.requires_grad), memory_format,
                                  Value::boolean(p.pin_memory)}));
}

ValuePtr storage_metadata(const Item& item) {
  if (item.kind == Item::Kind::kBytes)
    return new_object(kMetadataModule + ".BytesStorageMetadata", nullptr);
  const ValuePtr state = Value::dict();
  put(state, "properties", tensor_properties(item.properties));
  put(state, "size", torch_size(item.size));
  const ValuePtr chunks = Value::list();
  for (const Chunk& c : item.chunks) {
    const ValuePtr cs = Value::dict();
    put(cs, "offsets", torch_size(c.offsets));
    put(cs, "sizes", torch_size(c.sizes));
    chunks->items.push_back(new_object(kMetadataModule + ".ChunkStorageMetadata", cs));
  }
  put(state, "chunks", chunks);
  return new_object(kMetadataModule + ".TensorStorageMetadata", state);
}

}  // namespace

Result<std::string> write_dcp_metadata(const DcpMetadata& md) {
  const ValuePtr items = Value::dict();
  for (const Item& item : md.items) put(items, item.fqn, storage_metadata(item));

  ValuePtr planner = Value::none();
  if (md.planner_data) {
    planner = Value::dict();
    for (const PlannerEntry& e : *md.planner_data) {
      std::vector<ValuePtr> path;
      for (const PathComponent& c : e.path)
        path.push_back(std::holds_alternative<std::string>(c) ? Value::str(std::get<std::string>(c))
                                                              : Value::integer(std::get<int64_t>(c)));
      put(planner, e.fqn, Value::tuple(std::move(path)));
    }
  }

  const ValuePtr storage = Value::dict();
  for (const StorageEntry& e : md.storage_data) {
    // As MetadataIndex.__getstate__ leaves it: offset only when set, index always.
    const ValuePtr key = Value::dict();
    put(key, "fqn", Value::str(e.index.fqn));
    if (e.index.offset) put(key, "offset", torch_size(*e.index.offset));
    put(key, "index", e.index.index ? Value::integer(*e.index.index) : Value::none());
    const ValuePtr info = Value::dict();
    put(info, "relative_path", Value::str(e.info.relative_path));
    put(info, "offset", Value::integer(e.info.offset));
    put(info, "length", Value::integer(e.info.length));
    storage->entries.emplace_back(new_object(kMetadataModule + ".MetadataIndex", key),
                                  new_object(kFilesystemModule + "._StorageInfo", info));
  }

  const ValuePtr state = Value::dict();
  put(state, "state_dict_metadata", items);
  put(state, "planner_data", planner);
  put(state, "storage_data", storage);
  put(state, "storage_meta", Value::none());
  put(state, "version", md.version ? Value::str(*md.version) : Value::none());
  const ValuePtr root = new_object(kMetadataModule + ".Metadata", state);
  return pickle_plain(*root, {kMetadataModule + ".Metadata",
                              kMetadataModule + ".TensorStorageMetadata",
                              kMetadataModule + ".BytesStorageMetadata",
                              kMetadataModule + ".ChunkStorageMetadata",
                              kMetadataModule + ".MetadataIndex",
                              kFilesystemModule + "._StorageInfo",
                              kShardedTensorModule + ".TensorProperties"});
}

}  // namespace ckptio::dcp
