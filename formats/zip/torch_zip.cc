#include "formats/zip/torch_zip.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

#include "formats/pickle/pickler.h"
#include "formats/pickle/storage_table.h"
#include "formats/zip/archive_records.h"
#include "formats/zip/le.h"
#include "formats/zip/zip_writer.h"

namespace ckptio {
namespace {

std::string quote(const std::string& s) { return "'" + s + "'"; }

Status corrupt(const ByteSource& src, const std::string& what) {
  return Status(Code::kCorrupt, src.name() + ": " + what);
}

// Streams one storage into the open zip record, counting what the writer produced.
class RecordSink final : public ByteSink {
 public:
  explicit RecordSink(ZipWriter& zip) : zip_(zip) {}
  Status write(const void* data, uint64_t n) override {
    CKPTIO_RETURN_IF_ERROR(zip_.write(data, n));
    written += n;
    return Status::Ok();
  }
  uint64_t written = 0;

 private:
  ZipWriter& zip_;
};

}  // namespace

bool is_torchscript_archive(const ZipReader& zip) { return zip.find("constants.pkl") != nullptr; }

Result<DecodedFile> read_torch_zip(const ByteSource& src, const ZipReadOptions& options) {
  if (src.size() >= 8) {
    char head[8];
    CKPTIO_RETURN_IF_ERROR(src.read_at(0, head, sizeof head));
    if (std::memcmp(head, "PYTORCH1", 8) == 0)
      return Status(Code::kUnsupported,
                    src.name() +
                        ": archive from the PyTorch 1.0 preview ('PYTORCH1') is not "
                        "supported; re-save it with torch 1.x or newer");
  }
  CKPTIO_ASSIGN_OR_RETURN(ZipReader zip, ZipReader::open(src));
  if (is_torchscript_archive(zip))
    return Status(Code::kUnsupported,
                  src.name() +
                      ": is a TorchScript archive (torch.jit.save); read it with the "
                      "torchscript format or torch::jit::load");
  if (options.check_archive) CKPTIO_RETURN_IF_ERROR(options.check_archive(zip));
  CKPTIO_RETURN_IF_ERROR(read_archive_version(src, zip).status());
  CKPTIO_ASSIGN_OR_RETURN(const bool big, read_archive_big_endian(src, zip));

  const ZipEntry* pkl = zip.find("data.pkl");
  if (!pkl)
    return corrupt(
        src, "no record " + quote(zip.prefix() + "/data.pkl") + " (not a torch.save archive?)");
  const std::string context = src.name() + ": record " + quote(pkl->name);
  std::string pkl_buf;
  const uint8_t* pkl_data;
  if (pkl->method == 0 && src.data()) {
    pkl_data = src.data() + pkl->data_offset;  // ZipReader checked it lies in the file
  } else {
    CKPTIO_ASSIGN_OR_RETURN(pkl_buf, zip.read(*pkl));
    pkl_data = reinterpret_cast<const uint8_t*>(pkl_buf.data());
  }
  StorageTable table(context);
  UnpickleOptions uo;
  uo.context = context;
  uo.limits = options.limits;
  uo.allow_objects = options.allow_objects;
  uo.persistent_load = [&table](const ValuePtr& pid) { return table.load(pid); };
  // numpy arrays' bytes are kept in memory; the compressed variant (locate_record) has one
  // record per storage, so there they are refused.
  if (!options.locate_record)
    uo.inline_storage = [&table](DType d, std::string b) {
      return table.add_inline(d, std::move(b));
    };
  CKPTIO_ASSIGN_OR_RETURN(Unpickled u, unpickle(pkl_data, pkl->uncompressed_size, uo));

  DecodedFile out;
  out.tree.root = std::move(u.value);
  out.tree.storages = std::move(table.storages());
  out.extents.reserve(out.tree.storages.size());
  for (const StorageInfo& s : out.tree.storages) {
    if (auto bytes = table.inline_bytes(static_cast<uint32_t>(out.extents.size()))) {
      StorageExtent x;
      x.length = s.nbytes;
      x.plain = false;
      x.bytes = std::move(bytes);
      out.extents.push_back(std::move(x));
      continue;
    }
    const std::string record = zip.prefix() + "/data/" + s.key;
    const ZipEntry* e = zip.find("data/" + s.key);
    if (!e) return corrupt(src, "missing record " + quote(record) + " for storage " + s.key);
    if (options.locate_record) {
      CKPTIO_ASSIGN_OR_RETURN(StorageExtent x, options.locate_record(*e, s));
      out.extents.push_back(x);
      continue;
    }
    CKPTIO_ASSIGN_OR_RETURN(StorageExtent x, storage_extent(src, *e, s, big));
    out.extents.push_back(x);
  }

  Status bad;
  for_each_tensor(out.tree.root, [&](const ValuePtr& t, const std::string& path) {
    // The message is built only for a tensor that does not fit (per-tensor cost).
    if (bad.ok() && !tensor_view_fits(t->tensor, out.tree.storages))
      bad = check_tensor_view(t->tensor, out.tree.storages,
                              src.name() + ": tensor " + (path.empty() ? "<root>" : path));
  });
  CKPTIO_RETURN_IF_ERROR(bad);

  if (options.verify_crc)
    for (const ZipEntry& e : zip.entries()) CKPTIO_RETURN_IF_ERROR(zip.verify_crc(e));
  return out;
}

Status write_torch_zip(ByteSink& out, const Tree& tree, const StorageWriter& storage_bytes,
                       const ZipWriteOptions& options) {
  const std::string& ctx = options.context;
  auto with_ctx = [&ctx](const Status& st) { return ctx.empty() ? st : st.with_context(ctx); };
  if (options.prefix.empty() || options.prefix.find('/') != std::string::npos)
    return with_ctx(Status(Code::kInvalidArgument, "archive prefix " + quote(options.prefix) +
                                                       " must be non-empty and contain no '/'"));
  TorchPickleOptions po;
  po.context = ctx;
  CKPTIO_ASSIGN_OR_RETURN(TorchPickled p, pickle_torch(tree, po));

  ZipWriter zip(out, options.prefix, options.alignment);
  for (const auto& [name, bytes] : options.leading_records)
    CKPTIO_RETURN_IF_ERROR(with_ctx(zip.add(name, bytes.data(), bytes.size())));
  CKPTIO_RETURN_IF_ERROR(with_ctx(zip.add("data.pkl", p.bytes.data(), p.bytes.size())));
  if (!options.encode_record) {
    // torch >= 2.7's records, as it writes them. ".format_version" 1 promises what this
    // writer does anyway: data/<key> in numeric key order, each header right after the
    // previous record, so that torch.load(mmap=True) with
    // config.load.calculate_storage_offsets may predict every storage's offset from
    // ".storage_alignment" instead of reading its local header. Records that are not the
    // storage's raw bytes (encode_record: torch-zip-zstd) keep no such promise. torch 1.x
    // ignores both records.
    CKPTIO_RETURN_IF_ERROR(with_ctx(zip.add(".format_version", "1", 1)));
    const std::string alignment = std::to_string(options.alignment);
    CKPTIO_RETURN_IF_ERROR(
        with_ctx(zip.add(".storage_alignment", alignment.data(), alignment.size())));
  }
  CKPTIO_RETURN_IF_ERROR(with_ctx(zip.add("byteorder", "little", 6)));
  for (size_t k = 0; k < p.storage_order.size(); ++k) {
    const uint32_t index = p.storage_order[k];
    if (index >= tree.storages.size())
      return with_ctx(Status(Code::kInternal, "pickler returned storage index " +
                                                  std::to_string(index) + " out of range"));
    const uint64_t nbytes = tree.storages[index].nbytes;
    if (options.encode_record) {
      CKPTIO_ASSIGN_OR_RETURN(ZipWriteOptions::EncodedRecord record,
                              options.encode_record(index, tree.storages[index], storage_bytes));
      CKPTIO_RETURN_IF_ERROR(with_ctx(
          zip.add_encoded("data/" + std::to_string(k), record.bytes.data(), record.bytes.size(),
                          ZipWriter::Coding{record.method, nbytes, record.crc})));
      continue;
    }
    CKPTIO_RETURN_IF_ERROR(with_ctx(zip.begin("data/" + std::to_string(k), nbytes)));
    RecordSink sink(zip);
    CKPTIO_RETURN_IF_ERROR(storage_bytes(index, sink));
    if (sink.written != nbytes)
      return with_ctx(Status(Code::kInternal, "storage '" + tree.storages[index].key +
                                                  "' writer produced " +
                                                  std::to_string(sink.written) + " of its " +
                                                  std::to_string(nbytes) + " bytes"));
    CKPTIO_RETURN_IF_ERROR(with_ctx(zip.end()));
  }
  CKPTIO_RETURN_IF_ERROR(with_ctx(zip.add("version", "3\n", 2)));
  return with_ctx(zip.finish());
}

}  // namespace ckptio
