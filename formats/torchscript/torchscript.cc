#include "formats/torchscript/torchscript.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "formats/pickle/storage_table.h"
#include "formats/zip/archive_records.h"
#include "formats/zip/zip_reader.h"

namespace ckptio {
namespace {

constexpr char kQTensor[] = "torch._utils._rebuild_qtensor";

std::string quote(const std::string& s) { return "'" + s + "'"; }

Status corrupt(const ByteSource& src, const std::string& what) {
  return Status(Code::kCorrupt, src.name() + ": " + what);
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const char* p) {
  size_t n = std::strlen(p);
  return s.size() >= n && s.compare(s.size() - n, n, p) == 0;
}

uint16_t le16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }

bool torchscript_record_name(const std::string& name) {
  auto slash = name.find('/');
  if (slash == std::string::npos) return false;
  std::string rest = name.substr(slash + 1);
  return rest == "constants.pkl" || rest == "bytecode.pkl" || starts_with(rest, "code/") ||
         starts_with(rest, "extra/") || starts_with(rest, "constants/") ||
         ends_with(rest, ".debug_pkl");
}

// ---- class source -----------------------------------------------------------------------

std::vector<std::string> parse_name_list(const std::string& line) {
  std::vector<std::string> out;
  auto open = line.find('[');
  if (open == std::string::npos) return out;
  for (size_t i = open + 1; i < line.size() && line[i] != ']'; ++i) {
    char q = line[i];
    if (q != '"' && q != '\'') continue;
    std::string name;
    for (++i; i < line.size() && line[i] != q; ++i) {
      if (line[i] == '\\' && i + 1 < line.size()) ++i;
      name += line[i];
    }
    out.push_back(name);
  }
  return out;
}

// ---- storages shared by the archive's pickles ---------------------------------------------

struct StorageMerge {
  std::vector<StorageInfo> storages;
  std::vector<std::string> records;  // name after the prefix, per storage
  std::unordered_map<std::string, uint32_t> by_record;
};

// Moves the storages one unpickle run registered into the archive-wide list (one entry per
// record: lite archives reference the same constants/<n>.storage from several pickles), and
// points that run's tensors at the merged indices.
Status merge_storages(const ByteSource& src, const ZipReader& zip, const std::string& dir,
                      std::vector<StorageInfo>& local, const ValuePtr& root, StorageMerge& m) {
  std::vector<uint32_t> remap(local.size());
  for (size_t i = 0; i < local.size(); ++i) {
    StorageInfo& s = local[i];
    std::string record = dir + s.key;
    if (!zip.find(record)) {
      // Storage-context keys ("<n>.storage") live under constants/ whichever pickle uses them.
      for (const char* alt : {"constants/", "data/"})
        if (zip.find(alt + s.key)) {
          record = alt + s.key;
          break;
        }
    }
    if (!zip.find(record))
      return corrupt(src, "missing record " + quote(zip.prefix() + "/" + dir + s.key) +
                              " for storage " + quote(s.key));
    auto it = m.by_record.find(record);
    if (it != m.by_record.end()) {
      if (m.storages[it->second].nbytes != s.nbytes)
        return corrupt(
            src, "record " + quote(zip.prefix() + "/" + record) + " is declared with two sizes");
      remap[i] = it->second;
      continue;
    }
    remap[i] = static_cast<uint32_t>(m.storages.size());
    m.by_record.emplace(record, remap[i]);
    s.key = record;
    m.storages.push_back(s);
    m.records.push_back(record);
  }
  for_each_tensor(root, [&](const ValuePtr& t, const std::string&) {
    if (t->tensor.storage < remap.size()) t->tensor.storage = remap[t->tensor.storage];
  });
  return Status::Ok();
}

// ---- the reader ---------------------------------------------------------------------------

class ArchiveReader {
 public:
  ArchiveReader(const ByteSource& src, const ZipReader& zip, const TorchScriptReadOptions& o)
      : src_(src), zip_(zip), opt_(o) {}

  Result<DecodedFile> read() {
    if (zip_.find("model.json") && !zip_.find("data.pkl"))
      return Status(Code::kUnsupported,
                    src_.name() +
                        ": TorchScript archive in the pre-1.3 format (model.json) is not "
                        "supported; re-save it with torch.jit.save from PyTorch 1.3 or newer");
    if (!zip_.find("constants.pkl"))
      return corrupt(
          src_, "TorchScript archive has no record " + quote(zip_.prefix() + "/constants.pkl"));
    if (!zip_.find("data.pkl"))
      return corrupt(src_,
                     "TorchScript archive has no record " + quote(zip_.prefix() + "/data.pkl"));
    CKPTIO_ASSIGN_OR_RETURN(version_, read_archive_version(src_, zip_));
    CKPTIO_ASSIGN_OR_RETURN(big_, read_archive_big_endian(src_, zip_));

    CKPTIO_ASSIGN_OR_RETURN(ValuePtr constants, unpickle_record("constants.pkl", "constants/"));
    CKPTIO_ASSIGN_OR_RETURN(ValuePtr data, unpickle_record("data.pkl", "data/"));
    CKPTIO_RETURN_IF_ERROR(fix_qtensors(constants));
    CKPTIO_RETURN_IF_ERROR(fix_qtensors(data));
    if (data->kind != Kind::kObject)
      return corrupt(src_, "record " + quote(zip_.prefix() + "/data.pkl") + " holds a " +
                               kind_name(data->kind) + ", not a TorchScript module object");

    DecodedFile out;
    if (opt_.view == TorchScriptView::kStateDict) {
      ValuePtr sd = Value::dict(/*ordered=*/true);
      CKPTIO_RETURN_IF_ERROR(state_dict(data, "", sd, 0));
      out.tree.root = sd;
    } else {
      CKPTIO_ASSIGN_OR_RETURN(out.tree.root, modules_view(data, constants));
    }
    CKPTIO_RETURN_IF_ERROR(finish(out));
    if (opt_.verify_crc)
      for (const ZipEntry& e : zip_.entries()) CKPTIO_RETURN_IF_ERROR(zip_.verify_crc(e));
    return out;
  }

 private:
  Result<ValuePtr> unpickle_record(const std::string& name, const std::string& dir) {
    const ZipEntry* e = zip_.find(name);
    const std::string context = src_.name() + ": record " + quote(e->name);
    CKPTIO_ASSIGN_OR_RETURN(std::string bytes, zip_.read(*e));
    StorageTable table(context);
    UnpickleOptions uo;
    uo.context = context;
    uo.limits = opt_.limits;
    uo.torchscript_objects = true;
    uo.persistent_load = [&table](const ValuePtr& pid) { return table.load(pid); };
    auto u = unpickle(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), uo);
    if (!u.ok()) return u.status();
    ValuePtr root = std::move(u).value().value;
    CKPTIO_RETURN_IF_ERROR(merge_storages(src_, zip_, dir, table.storages(), root, merge_));
    return root;
  }

  // Rewrites every _rebuild_qtensor object in place: args become (integer tensor, qscheme,
  // scale(s), zero point(s)[, axis]).
  Status fix_qtensors(const ValuePtr& root) {
    std::vector<ValuePtr> todo{root};
    while (!todo.empty()) {
      ValuePtr v = todo.back();
      todo.pop_back();
      if (!v || !seen_.insert(v.get()).second) continue;
      for (auto& c : v->items) todo.push_back(c);
      for (auto& [k, c] : v->entries) todo.push_back(c);
      if (v->attrs) todo.push_back(v->attrs);
      if (v->kind == Kind::kObject && v->s == kQTensor && !qtensors_.count(v.get())) {
        CKPTIO_RETURN_IF_ERROR(fix_qtensor(*v));
        qtensors_.insert(v.get());
      }
      if (v->args) todo.push_back(v->args);
      if (v->state) todo.push_back(v->state);
    }
    return Status::Ok();
  }

  Status fix_qtensor(Value& q) {
    auto bad = [&](const std::string& what) {
      return corrupt(src_, std::string(kQTensor) + ": " + what);
    };
    const Value& a = *q.args;
    if (a.items.size() < 5) return bad("takes at least 5 arguments");
    const Value& st = *a.items[0];
    if (st.kind != Kind::kTensor || !st.tensor.is_storage)
      return bad("argument 1 is not a storage");
    TensorMeta t;
    t.dtype = st.tensor.dtype;
    t.storage = st.tensor.storage;
    if (a.items[1]->kind != Kind::kInt) return bad("storage offset is not an int");
    t.storage_offset = a.items[1]->i;
    for (int k : {2, 3}) {
      const Value& seq = *a.items[k];
      if (seq.kind != Kind::kTuple && seq.kind != Kind::kList)
        return bad("size/stride not a tuple");
      for (const auto& x : seq.items) {
        if (x->kind != Kind::kInt) return bad("size/stride holds a non-int");
        (k == 2 ? t.shape : t.strides).push_back(x->i);
      }
    }
    if (t.shape.size() != t.strides.size()) return bad("size and stride differ in length");
    const Value& qp = *a.items[4];
    if (qp.kind != Kind::kTuple || qp.items.empty() || qp.items[0]->kind != Kind::kGlobal)
      return bad("quantizer parameters are not (qscheme, ...)");
    std::vector<ValuePtr> args{Value::make_tensor(t)};
    for (const auto& x : qp.items) args.push_back(x);
    q.args = Value::tuple(std::move(args));
    return Status::Ok();
  }

  static std::string qtensor_desc(const Value& q) {
    std::string dtype = "?", scheme = "?";
    if (q.args && !q.args->items.empty() && q.args->items[0]->kind == Kind::kTensor)
      dtype = dtype_name(q.args->items[0]->tensor.dtype);
    if (q.args && q.args->items.size() > 1 && q.args->items[1]->kind == Kind::kGlobal) {
      scheme = q.args->items[1]->s;
      if (starts_with(scheme, "torch.")) scheme = scheme.substr(6);
    }
    return dtype + ", " + scheme;
  }

  // The class source for a qualified name "a.b.C": record code/a/b.py, block `class C`.
  const ScriptClassInfo& class_info(const std::string& qualified) {
    auto it = classes_.find(qualified);
    if (it != classes_.end()) return it->second;
    ScriptClassInfo info;
    auto dot = qualified.rfind('.');
    if (dot != std::string::npos) {
      std::string file = "code/" + qualified.substr(0, dot) + ".py";
      std::replace(file.begin() + 5, file.end() - 3, '.', '/');
      auto text = code_.find(file);
      if (text == code_.end()) {
        std::string body;
        if (const ZipEntry* e = zip_.find(file)) {
          auto r = zip_.read(*e, opt_.max_code_bytes);
          if (r.ok()) body = std::move(r).value();
        }
        text = code_.emplace(file, std::move(body)).first;
      }
      info = parse_script_class(text->second, qualified.substr(dot + 1));
    }
    return classes_.emplace(qualified, std::move(info)).first->second;
  }

  bool is_module(const ValuePtr& v) {
    if (!v || v->kind != Kind::kObject || !starts_with(v->s, "__torch__.")) return false;
    const ScriptClassInfo& c = class_info(v->s);
    if (c.found) return c.is_module;
    // No source: a module's state always holds `training`.
    return v->state && v->state->kind == Kind::kDict && v->state->get("training");
  }

  static bool contains(const std::vector<std::string>& names, const std::string& n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  }

  Status state_dict(const ValuePtr& module, const std::string& prefix, const ValuePtr& out,
                    size_t depth) {
    if (depth > opt_.limits.max_depth)
      return Status(Code::kLimit, src_.name() + ": modules nested too deeply");
    const ScriptClassInfo& c = class_info(module->s);
    const ValuePtr& state = module->state;
    if (!state || state->kind != Kind::kDict) return Status::Ok();  // __getstate__ modules
    for (const auto* names : {&c.parameters, &c.buffers}) {
      for (const auto& name : *names) {
        ValuePtr v = state->get(name);
        if (!v || v->kind == Kind::kNone) continue;
        const std::string key = prefix + name;
        if (v->kind == Kind::kObject && v->s == kQTensor)
          return Status(Code::kUnsupported,
                        src_.name() + ": quantized tensor " + quote(key) + " (" + qtensor_desc(*v) +
                            ") is not supported in a state_dict; read the archive with "
                            "view=modules to see its integer values and quantizer parameters");
        if (v->kind != Kind::kTensor)
          return corrupt(src_, (names == &c.parameters ? "parameter " : "buffer ") + quote(key) +
                                   " is a " + kind_name(v->kind) + ", not a tensor");
        TensorMeta t = v->tensor;
        t.is_parameter = false;
        t.requires_grad = false;
        out->entries.emplace_back(Value::str(key), Value::make_tensor(t));
      }
    }
    for (const auto& [k, v] : state->entries)
      if (k->kind == Kind::kStr && is_module(v))
        CKPTIO_RETURN_IF_ERROR(state_dict(v, prefix + k->s + ".", out, depth + 1));
    return Status::Ok();
  }

  Result<ValuePtr> module_dict(const ValuePtr& module, size_t depth) {
    if (depth > opt_.limits.max_depth)
      return Status(Code::kLimit, src_.name() + ": modules nested too deeply");
    const ScriptClassInfo& c = class_info(module->s);
    ValuePtr m = Value::dict(true), params = Value::dict(true), buffers = Value::dict(true),
             subs = Value::dict(true), attrs = Value::dict(true), methods = Value::list();
    const ValuePtr& state = module->state;
    if (state && state->kind == Kind::kDict) {
      for (const auto& [k, v] : state->entries) {
        if (k->kind != Kind::kStr) {
          attrs->entries.emplace_back(k, v);
          continue;
        }
        if (contains(c.parameters, k->s) && v->kind == Kind::kTensor) {
          TensorMeta t = v->tensor;
          t.is_parameter = true;
          params->entries.emplace_back(k, Value::make_tensor(t));
        } else if (contains(c.parameters, k->s)) {
          params->entries.emplace_back(k, v);
        } else if (contains(c.buffers, k->s)) {
          buffers->entries.emplace_back(k, v);
        } else if (is_module(v)) {
          CKPTIO_ASSIGN_OR_RETURN(ValuePtr sub, module_dict(v, depth + 1));
          subs->entries.emplace_back(k, sub);
        } else {
          attrs->entries.emplace_back(k, v);
        }
      }
    } else if (state) {
      attrs->entries.emplace_back(Value::str("__getstate__"), state);
    }
    for (const auto& name : c.methods) methods->items.push_back(Value::str(name));
    m->entries.emplace_back(Value::str("class"), Value::str(module->s));
    m->entries.emplace_back(Value::str("parameters"), params);
    m->entries.emplace_back(Value::str("buffers"), buffers);
    m->entries.emplace_back(Value::str("submodules"), subs);
    m->entries.emplace_back(Value::str("attributes"), attrs);
    m->entries.emplace_back(Value::str("methods"), methods);
    return m;
  }

  Result<ValuePtr> modules_view(const ValuePtr& data, const ValuePtr& constants) {
    ValuePtr root = Value::dict(true);
    CKPTIO_ASSIGN_OR_RETURN(ValuePtr m, module_dict(data, 0));
    root->entries.emplace_back(Value::str("module"), m);
    ValuePtr consts = Value::list();
    if (constants->kind == Kind::kTuple || constants->kind == Kind::kList)
      consts->items = constants->items;
    root->entries.emplace_back(Value::str("constants"), consts);
    ValuePtr extra = Value::dict(true);
    const std::string extra_dir = zip_.prefix() + "/extra/";
    for (const ZipEntry& e : zip_.entries()) {
      if (e.name.compare(0, extra_dir.size(), extra_dir) != 0) continue;
      CKPTIO_ASSIGN_OR_RETURN(std::string bytes, zip_.read(e, opt_.limits.max_string));
      extra->entries.emplace_back(Value::str(e.name.substr(extra_dir.size())),
                                  Value::bytes(std::move(bytes)));
    }
    root->entries.emplace_back(Value::str("extra_files"), extra);
    ValuePtr archive = Value::dict(true);
    archive->entries.emplace_back(Value::str("prefix"), Value::str(zip_.prefix()));
    archive->entries.emplace_back(Value::str("version"),
                                  Value::integer(static_cast<int64_t>(version_)));
    const bool lite = zip_.find("bytecode.pkl") != nullptr;
    archive->entries.emplace_back(Value::str("lite"), Value::boolean(lite));
    if (lite) {
      if (auto v = bytecode_version())
        archive->entries.emplace_back(Value::str("bytecode_version"), Value::integer(*v));
    }
    root->entries.emplace_back(Value::str("archive"), archive);
    return root;
  }

  // bytecode.pkl is (version, (method, ...)); the version is its first int. Best effort: the
  // bytecode is not otherwise interpreted.
  std::optional<int64_t> bytecode_version() {
    const ZipEntry* e = zip_.find("bytecode.pkl");
    auto bytes = zip_.read(*e);
    if (!bytes.ok()) return std::nullopt;
    UnpickleOptions uo;
    uo.limits = opt_.limits;
    uo.torchscript_objects = true;
    StorageTable table("bytecode.pkl");
    uo.persistent_load = [&table](const ValuePtr& pid) { return table.load(pid); };
    auto u =
        unpickle(reinterpret_cast<const uint8_t*>(bytes.value().data()), bytes.value().size(), uo);
    if (!u.ok()) return std::nullopt;
    const ValuePtr& v = u.value().value;
    if (v->kind == Kind::kTuple && !v->items.empty() && v->items[0]->kind == Kind::kInt)
      return v->items[0]->i;
    return std::nullopt;
  }

  // Keeps the storages the view references (in first-use order), checks every tensor view,
  // and locates each storage's record.
  Status finish(DecodedFile& out) {
    std::unordered_map<uint32_t, uint32_t> remap;
    std::vector<ValuePtr> tensors;
    for_each_tensor(out.tree.root, [&](const ValuePtr& t, const std::string&) {
      tensors.push_back(t);
      uint32_t old = t->tensor.storage;
      if (remap.emplace(old, static_cast<uint32_t>(remap.size())).second) {
        out.tree.storages.push_back(merge_.storages.at(old));
        used_records_.push_back(merge_.records.at(old));
      }
    });
    for (const ValuePtr& t : tensors) t->tensor.storage = remap.at(t->tensor.storage);
    Status bad;
    for_each_tensor(out.tree.root, [&](const ValuePtr& t, const std::string& path) {
      if (bad.ok())
        bad = check_tensor_view(t->tensor, out.tree.storages,
                                src_.name() + ": tensor " + (path.empty() ? "<root>" : path));
    });
    CKPTIO_RETURN_IF_ERROR(bad);
    for (size_t i = 0; i < out.tree.storages.size(); ++i) {
      const StorageInfo& s = out.tree.storages[i];
      const ZipEntry* e = zip_.find(used_records_[i]);
      CKPTIO_ASSIGN_OR_RETURN(StorageExtent x, storage_extent(src_, *e, s, big_));
      out.extents.push_back(x);
    }
    return Status::Ok();
  }

  const ByteSource& src_;
  const ZipReader& zip_;
  const TorchScriptReadOptions& opt_;
  uint64_t version_ = 0;
  bool big_ = false;
  StorageMerge merge_;
  std::vector<std::string> used_records_;
  std::unordered_set<const Value*> seen_, qtensors_;
  std::unordered_map<std::string, std::string> code_;
  std::map<std::string, ScriptClassInfo> classes_;
};

}  // namespace

Result<TorchScriptView> parse_torchscript_view(const std::string& name) {
  if (name == "state_dict") return TorchScriptView::kStateDict;
  if (name == "modules") return TorchScriptView::kModules;
  return Status(Code::kInvalidArgument,
                "option view=" + name + " is not one of: state_dict, modules");
}

int torchscript_probe(const uint8_t* head, size_t n) {
  if (n < 30 || std::memcmp(head, "PK\x03\x04", 4) != 0) return 0;
  // Any local (PK\3\4) or central (PK\1\2) header within the head naming a record only
  // TorchScript archives have.
  for (size_t i = 0; i + 4 <= n; ++i) {
    if (head[i] != 'P' || head[i + 1] != 'K') continue;
    size_t name_at, name_len;
    if (head[i + 2] == 3 && head[i + 3] == 4 && i + 30 <= n) {
      name_len = le16(head + i + 26);
      name_at = i + 30;
    } else if (head[i + 2] == 1 && head[i + 3] == 2 && i + 46 <= n) {
      name_len = le16(head + i + 28);
      name_at = i + 46;
    } else {
      continue;
    }
    if (name_at + name_len > n) continue;
    std::string name(reinterpret_cast<const char*>(head + name_at), name_len);
    if (torchscript_record_name(name)) return 80;
  }
  size_t len = le16(head + 26);
  if (30 + len > n) return 0;
  std::string first(reinterpret_cast<const char*>(head + 30), len);
  auto slash = first.find('/');
  if (slash == std::string::npos || first.substr(0, slash) == "archive") return 0;
  std::string rest = first.substr(slash + 1);
  if (!starts_with(rest, "data/") || rest.size() == 5) return 0;
  for (size_t i = 5; i < rest.size(); ++i)
    if (rest[i] < '0' || rest[i] > '9') return 0;
  return 61;
}

ScriptClassInfo parse_script_class(const std::string& source, const std::string& class_name) {
  ScriptClassInfo info;
  size_t pos = 0;
  bool in_class = false;
  while (pos < source.size()) {
    size_t eol = source.find('\n', pos);
    if (eol == std::string::npos) eol = source.size();
    std::string line = source.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line[0] != ' ') {  // a top-level statement ends the previous class
      if (in_class) break;
      const std::string head = "class " + class_name;
      if (line.compare(0, head.size(), head) == 0 && line.size() > head.size() &&
          (line[head.size()] == '(' || line[head.size()] == ':')) {
        in_class = info.found = true;
        auto open = line.find('(');
        if (open != std::string::npos) {
          std::string bases = line.substr(open + 1, line.rfind(')') - open - 1);
          info.is_module = bases == "Module" || bases.find("Module") != std::string::npos;
        }
      }
      continue;
    }
    if (!in_class || line.size() < 3 || line[1] != ' ' || line[2] == ' ') continue;
    std::string body = line.substr(2);
    if (starts_with(body, "__parameters__")) {
      info.parameters = parse_name_list(body);
      info.is_module = true;
    } else if (starts_with(body, "__buffers__")) {
      info.buffers = parse_name_list(body);
    } else if (starts_with(body, "def ")) {
      size_t end = body.find('(', 4);
      if (end != std::string::npos) info.methods.push_back(body.substr(4, end - 4));
    }
  }
  return info;
}

Result<DecodedFile> read_torchscript(const ByteSource& src, const TorchScriptReadOptions& options) {
  CKPTIO_ASSIGN_OR_RETURN(ZipReader zip, ZipReader::open(src));
  if (!zip.find("constants.pkl") && !zip.find("model.json")) {
    bool has_code = false;
    for (const ZipEntry& e : zip.entries()) has_code = has_code || torchscript_record_name(e.name);
    if (!has_code) {  // a plain torch.save / torch::pickle_save archive
      ZipReadOptions zo;
      zo.limits = options.limits;
      zo.verify_crc = options.verify_crc;
      return read_torch_zip(src, zo);
    }
  }
  ArchiveReader reader(src, zip, options);
  return reader.read();
}

}  // namespace ckptio
