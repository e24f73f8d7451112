#include "formats/legacy/torch_legacy.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_map>

#include "formats/pickle/pickle_opcodes.h"
#include "formats/pickle/pickler.h"
#include "formats/pickle/storage_table.h"
#include "formats/pickle/unpickler.h"
#include "formats/zip/le.h"

namespace ckptio {
namespace {

using pickle_detail::Op;
using pickle_detail::op_byte;

// torch.serialization.MAGIC_NUMBER = 0x1950a86a20f9469cfc6c, beyond int64.
constexpr char kMagicDecimal[] = "119547037146038801333356";
// Its protocol-2+ form: LONG1, 10 bytes of little-endian two's complement.
constexpr uint8_t kMagicLong1[] = {op_byte(Op::LONG1), 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                   0x20, 0x6a, 0xa8, 0x50, 0x19};
constexpr char kMagicText[] = "L119547037146038801333356L\n";  // protocols 0 and 1
constexpr int64_t kProtocolVersion = 1001;
constexpr uint64_t kFirstWindow = 1 << 20;

Status corrupt(const ByteSource& src, const std::string& what) {
  return Status(Code::kCorrupt, src.name() + ": " + what);
}

// True when head[0..n) equals the first n bytes of `want` (a short head still matches).
bool prefix_match(const uint8_t* head, size_t n, const void* want, size_t want_n) {
  return std::memcmp(head, want, std::min(n, want_n)) == 0;
}

// The start of the file, grown on demand: the pickles have no length prefix, so a reader
// without a mapping reads a window and retries with a larger one when a pickle is cut off.
class Window {
 public:
  explicit Window(const ByteSource& src) : src_(src) {
    if (src.data()) {
      data_ = src.data();
      size_ = src.size();
    }
  }
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  bool whole() const { return size_ == src_.size(); }
  Status grow() {
    const uint64_t want = std::min<uint64_t>(src_.size(), std::max(kFirstWindow, size_ * 2));
    buf_.resize(want);
    CKPTIO_RETURN_IF_ERROR(src_.read_at(0, buf_.data(), want));
    data_ = reinterpret_cast<const uint8_t*>(buf_.data());
    size_ = want;
    return Status::Ok();
  }

 private:
  const ByteSource& src_;
  std::string buf_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

// Unpickles the pickle at `pos`, widening the window while the error says it was cut off.
// `make_options` is called per attempt so a retry starts from a fresh storage table.
template <class MakeOptions>
Result<Unpickled> unpickle_at(Window& w, uint64_t pos, MakeOptions&& make_options) {
  if (w.size() == 0 && !w.whole()) CKPTIO_RETURN_IF_ERROR(w.grow());
  for (;;) {
    const uint64_t avail = pos <= w.size() ? w.size() - pos : 0;
    Result<Unpickled> r = unpickle(w.data() + std::min(pos, w.size()), avail, make_options());
    if (r.ok() || w.whole() || r.status().message().find("truncated") == std::string::npos)
      return r;
    CKPTIO_RETURN_IF_ERROR(w.grow());
  }
}

UnpickleOptions header_options(const ByteSource& src, const LegacyReadOptions& options,
                               const char* part) {
  UnpickleOptions o;
  o.context = src.name() + ": " + part;
  o.limits = options.limits;
  return o;
}

// Forwards at most `limit` bytes and counts them: a storage writer that produces more or
// fewer bytes than the storage holds would shift every later blob.
class CountingSink final : public ByteSink {
 public:
  CountingSink(ByteSink& out, uint64_t limit) : out_(out), limit_(limit) {}
  Status write(const void* data, uint64_t n) override {
    if (n > limit_ - written)
      return Status(Code::kInternal,
                    "storage writer produced more than its " + std::to_string(limit_) + " bytes");
    CKPTIO_RETURN_IF_ERROR(out_.write(data, n));
    written += n;
    return Status::Ok();
  }
  uint64_t written = 0;

 private:
  ByteSink& out_;
  uint64_t limit_;
};

}  // namespace

bool looks_like_torch_legacy(const uint8_t* head, size_t n) {
  if (n < 2) return false;
  // PROTO n (protocol 2+); protocol 4+ may put a FRAME first.
  if (head[0] == op_byte(Op::PROTO)) {
    if (head[1] < 2 || head[1] > 5) return false;
    size_t pos = 2;
    if (n > pos && head[pos] == op_byte(Op::FRAME)) pos += 9;  // FRAME + 8-byte length
    if (n <= pos) return true;
    return prefix_match(head + pos, n - pos, kMagicLong1, sizeof kMagicLong1);
  }
  return n >= 4 && prefix_match(head, n, kMagicText, sizeof kMagicText - 1);
}

Result<DecodedFile> read_torch_legacy(const ByteSource& src, const LegacyReadOptions& options) {
  const uint64_t size = src.size();
  if (size >= 262) {
    char ustar[5];
    CKPTIO_RETURN_IF_ERROR(src.read_at(257, ustar, 5));
    if (std::memcmp(ustar, "ustar", 5) == 0)
      return Status(Code::kUnsupported,
                    src.name() +
                        ": ancient tar-format checkpoint (PyTorch < 0.4) is not "
                        "supported; re-save it with torch 1.x");
  }
  Window w(src);
  uint64_t pos = 0;

  // A: the magic number.
  CKPTIO_ASSIGN_OR_RETURN(Unpickled a, unpickle_at(w, pos, [&] {
                            return header_options(src, options, "magic number pickle");
                          }));
  if (a.value->kind != Kind::kBigInt || a.value->s != kMagicDecimal)
    return corrupt(src, "Invalid magic number; corrupt file?");
  pos += a.consumed;

  // B: protocol version.
  CKPTIO_ASSIGN_OR_RETURN(Unpickled b, unpickle_at(w, pos, [&] {
                            return header_options(src, options, "protocol version pickle");
                          }));
  if (b.value->kind != Kind::kInt)
    return corrupt(
        src, "protocol version is a " + std::string(kind_name(b.value->kind)) + ", not an int");
  if (b.value->i != kProtocolVersion)
    return Status(Code::kUnsupported, src.name() + ": legacy protocol version " +
                                          std::to_string(b.value->i) +
                                          " is not supported (expected 1001)");
  pos += b.consumed;

  // C: sys_info. torch.load ignores it, and so do we: 'little_endian' describes the writing
  // host only, since the storage blobs are little-endian on disk whatever the host (the
  // writer swaps on big-endian hosts, spec 1.1).
  CKPTIO_ASSIGN_OR_RETURN(Unpickled c, unpickle_at(w, pos, [&] {
                            return header_options(src, options, "sys_info pickle");
                          }));
  if (c.value->kind != Kind::kDict) return corrupt(src, "sys_info is not a dict");
  pos += c.consumed;

  // D: the object. The storage table is rebuilt on every attempt.
  std::unique_ptr<StorageTable> table;
  CKPTIO_ASSIGN_OR_RETURN(Unpickled d, unpickle_at(w, pos, [&] {
                            table = std::make_unique<StorageTable>(src.name() + ": main pickle");
                            table->allow_module_classes(options.allow_objects);
                            UnpickleOptions o = header_options(src, options, "main pickle");
                            o.allow_objects = options.allow_objects;
                            StorageTable* t = table.get();
                            o.persistent_load = [t](const ValuePtr& pid) { return t->load(pid); };
                            o.inline_storage = [t](DType d, std::string b) {
                              return t->add_inline(d, std::move(b));  // numpy arrays
                            };
                            return o;
                          }));
  pos += d.consumed;
  DecodedFile out;
  out.tree.root = std::move(d.value);
  out.tree.storages = std::move(table->storages());

  // E: the storage keys, in the order the blobs follow.
  CKPTIO_ASSIGN_OR_RETURN(Unpickled e, unpickle_at(w, pos, [&] {
                            return header_options(src, options, "storage key list pickle");
                          }));
  pos += e.consumed;
  if (e.value->kind != Kind::kList) return corrupt(src, "storage key list is not a list");
  std::unordered_map<std::string, uint32_t> index;
  out.extents.resize(out.tree.storages.size());
  std::vector<bool> listed(out.tree.storages.size(), false);
  for (uint32_t i = 0; i < out.tree.storages.size(); ++i) {
    if (auto bytes = table->inline_bytes(i)) {  // a numpy array's, from the pickle: not listed
      out.extents[i].length = out.tree.storages[i].nbytes;
      out.extents[i].plain = false;
      out.extents[i].bytes = std::move(bytes);
      listed[i] = true;
      continue;
    }
    index[out.tree.storages[i].key] = i;
  }
  std::vector<uint32_t> order;
  order.reserve(e.value->items.size());
  for (const ValuePtr& k : e.value->items) {
    if (!k || k->kind != Kind::kStr)
      return corrupt(src, "storage key list holds a non-string entry");
    auto it = index.find(k->s);
    if (it == index.end())
      return corrupt(src,
                     "storage key list names storage '" + k->s + "' that the object does not use");
    if (listed[it->second])
      return corrupt(src, "storage key list names storage '" + k->s + "' twice");
    listed[it->second] = true;
    order.push_back(it->second);
  }
  for (uint32_t i = 0; i < listed.size(); ++i)
    if (!listed[i])
      return corrupt(src, "storage '" + out.tree.storages[i].key +
                              "' is used by the object but has no data in the file");

  // F: per key, an int64 LE element count and the bytes.
  for (uint32_t i : order) {
    const StorageInfo& s = out.tree.storages[i];
    if (options.defer_storage_headers) {
      if (pos > size || size - pos < 8 || size - pos - 8 < s.nbytes)
        return corrupt(src, "truncated: storage '" + s.key + "' needs 8 + " +
                                std::to_string(s.nbytes) + " bytes at offset " +
                                std::to_string(pos) + ", file has " + std::to_string(size));
      // Not plain: a host reading plain extents straight from the file would skip the count
      // check, so every read goes through the plugin's read_storage, which makes it.
      StorageExtent x;
      x.offset = pos + 8;
      x.length = s.nbytes;
      x.plain = false;
      x.count_prefixed = true;
      out.extents[i] = x;
      pos += 8 + s.nbytes;
      continue;
    }
    uint8_t count_le[8];
    if (pos > size || size - pos < 8)
      return corrupt(src, "truncated: storage '" + s.key + "' header at offset " +
                              std::to_string(pos) + " is past the end of the file (" +
                              std::to_string(size) + " bytes)");
    CKPTIO_RETURN_IF_ERROR(src.read_at(pos, count_le, 8));
    const uint64_t count = le::u64(count_le);
    uint64_t nbytes;
    if (__builtin_mul_overflow(count, uint64_t(dtype_size(s.dtype)), &nbytes) || nbytes != s.nbytes)
      return corrupt(src, "storage " + s.key + " has wrong byte size: the file holds " +
                              std::to_string(count) + " elements of " +
                              std::string(dtype_name(s.dtype)) + ", the object declares " +
                              std::to_string(s.nbytes) + " bytes");
    pos += 8;
    if (size - pos < nbytes)
      return corrupt(src, "truncated: storage '" + s.key + "' needs " + std::to_string(nbytes) +
                              " bytes at offset " + std::to_string(pos) + ", file has " +
                              std::to_string(size));
    StorageExtent x;
    x.offset = pos;
    x.length = nbytes;
    out.extents[i] = x;  // plain
    pos += nbytes;
  }

  Status bad;
  for_each_tensor(out.tree.root, [&](const ValuePtr& t, const std::string& path) {
    if (bad.ok() && !tensor_view_fits(t->tensor, out.tree.storages))  // message only if needed
      bad = check_tensor_view(t->tensor, out.tree.storages,
                              src.name() + ": tensor " + (path.empty() ? "<root>" : path));
  });
  CKPTIO_RETURN_IF_ERROR(bad);
  return out;
}

Status write_torch_legacy(ByteSink& out, const Tree& tree, const StorageWriter& storage_bytes,
                          const LegacyWriteOptions& options) {
  const std::string& ctx = options.context;
  auto with_ctx = [&ctx](const Status& st) { return ctx.empty() ? st : st.with_context(ctx); };
  auto put = [&out](const std::string& bytes) { return out.write(bytes.data(), bytes.size()); };

  CKPTIO_ASSIGN_OR_RETURN(std::string magic, pickle_plain(*Value::big_integer(kMagicDecimal)));
  CKPTIO_ASSIGN_OR_RETURN(std::string proto, pickle_plain(*Value::integer(kProtocolVersion)));
  // sys_info exactly as torch writes it: struct '=h','=i','=l' standard sizes.
  auto sys_info = Value::dict();
  sys_info->entries.emplace_back(Value::str("protocol_version"), Value::integer(kProtocolVersion));
  sys_info->entries.emplace_back(Value::str("little_endian"), Value::boolean(true));
  auto sizes = Value::dict();
  sizes->entries.emplace_back(Value::str("short"), Value::integer(2));
  sizes->entries.emplace_back(Value::str("int"), Value::integer(4));
  sizes->entries.emplace_back(Value::str("long"), Value::integer(4));
  sys_info->entries.emplace_back(Value::str("type_sizes"), sizes);
  CKPTIO_ASSIGN_OR_RETURN(std::string info, pickle_plain(*sys_info));

  TorchPickleOptions po;
  po.legacy_ids = true;
  po.context = ctx;
  CKPTIO_ASSIGN_OR_RETURN(TorchPickled p, pickle_torch(tree, po));
  if (p.storage_dtype.size() != p.storage_order.size())
    return with_ctx(Status(Code::kInternal, "pickler returned mismatched storage lists"));

  // Keys are decimal positions in storage_order; torch writes them sorted as strings.
  std::vector<std::string> keys;
  keys.reserve(p.storage_order.size());
  for (size_t k = 0; k < p.storage_order.size(); ++k) keys.push_back(std::to_string(k));
  std::sort(keys.begin(), keys.end());
  auto key_list = Value::list();
  for (const std::string& k : keys) key_list->items.push_back(Value::str(k));
  CKPTIO_ASSIGN_OR_RETURN(std::string key_pickle, pickle_plain(*key_list));

  for (const std::string* part : {&magic, &proto, &info, &p.bytes, &key_pickle})
    CKPTIO_RETURN_IF_ERROR(put(*part));

  for (const std::string& key : keys) {
    const size_t k = std::stoul(key);
    const uint32_t index = p.storage_order[k];
    if (index >= tree.storages.size())
      return with_ctx(Status(Code::kInternal, "pickler returned storage index " +
                                                  std::to_string(index) + " out of range"));
    const StorageInfo& s = tree.storages[index];
    const uint64_t elem = uint64_t(dtype_size(p.storage_dtype[k]));
    if (elem == 0 || s.nbytes % elem != 0)
      return with_ctx(Status(Code::kInvalidArgument,
                             "storage '" + s.key + "' has " + std::to_string(s.nbytes) +
                                 " bytes, not a whole number of " +
                                 std::string(dtype_name(p.storage_dtype[k])) + " elements"));
    std::string count;
    le::put64(count, s.nbytes / elem);
    CKPTIO_RETURN_IF_ERROR(put(count));
    CountingSink sink(out, s.nbytes);
    CKPTIO_RETURN_IF_ERROR(storage_bytes(index, sink));
    if (sink.written != s.nbytes)
      return with_ctx(Status(Code::kInternal, "storage '" + s.key + "' writer produced " +
                                                  std::to_string(sink.written) + " of its " +
                                                  std::to_string(s.nbytes) + " bytes"));
  }
  return Status::Ok();
}

}  // namespace ckptio
