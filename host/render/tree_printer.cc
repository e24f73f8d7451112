#include "host/render/tree_printer.h"

#include <cmath>
#include <cstdio>
#include <sstream>
#include <unordered_map>

namespace ckptio::host {

std::string human_bytes(uint64_t n) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

namespace {

std::string repr_float(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", f);
  // Shortest text that reads back the same double.
  for (int prec = 1; prec <= 17; ++prec) {
    char b2[32];
    std::snprintf(b2, sizeof b2, "%.*g", prec, f);
    if (std::strtod(b2, nullptr) == f) {
      std::snprintf(buf, sizeof buf, "%s", b2);
      break;
    }
  }
  std::string s = buf;
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "'";
}

class Printer {
 public:
  Printer(std::ostream& out, const Checkpoint& ckpt) : out_(out), ckpt_(ckpt) {}

  std::string inline_scalar(const Value& v) {
    switch (v.kind) {
      case Kind::kNone: return "None";
      case Kind::kBool: return v.b ? "True" : "False";
      case Kind::kInt: return std::to_string(v.i);
      case Kind::kBigInt: return v.s;
      case Kind::kFloat: return repr_float(v.f);
      case Kind::kStr: return quote(v.s);
      case Kind::kBytes:
        return "b" + quote(v.s.size() > 64 ? v.s.substr(0, 64) + "..." : v.s) + " (" +
               std::to_string(v.s.size()) + " bytes)";
      case Kind::kGlobal: return v.s;
      case Kind::kTensor: return tensor(v.tensor);
      default: return "";
    }
  }

  std::string tensor(const TensorMeta& t) {
    const StorageInfo& s = ckpt_.tree.storages.at(t.storage);
    std::ostringstream o;
    o << (t.is_storage ? "storage " : t.is_parameter ? "Parameter " : "tensor ")
      << dtype_name(t.dtype) << " [";
    for (size_t i = 0; i < t.shape.size(); ++i) o << (i ? ", " : "") << t.shape[i];
    o << "] " << s.device << " " << human_bytes(static_cast<uint64_t>(t.numel()) *
                                                dtype_size(t.dtype));
    bool contiguous = true;
    int64_t expect = 1;
    for (size_t d = t.shape.size(); d-- > 0;) {
      if (t.shape[d] != 1 && t.strides[d] != expect) contiguous = false;
      expect *= t.shape[d];
    }
    if (!contiguous) {
      o << " strides (";
      for (size_t i = 0; i < t.strides.size(); ++i) o << (i ? ", " : "") << t.strides[i];
      o << ")";
    }
    if (t.storage_offset) o << " offset " << t.storage_offset;
    if (storage_users_[t.storage] > 1) o << " (storage '" << s.key << "' shared)";
    if (t.requires_grad) o << " requires_grad";
    return o.str();
  }

  void count_storage_users(const ValuePtr& root) {
    for_each_tensor(root, [&](const ValuePtr& t, const std::string&) {
      ++storage_users_[t->tensor.storage];
    });
  }

  void line(int indent, const std::string& prefix, const ValuePtr& v, const std::string& path) {
    std::string pad(static_cast<size_t>(indent) * 2, ' ');
    const Value& n = *v;
    bool container = n.kind == Kind::kList || n.kind == Kind::kTuple || n.kind == Kind::kDict ||
                     n.kind == Kind::kObject;
    if (!container) {
      out_ << pad << prefix << inline_scalar(n) << "\n";
      return;
    }
    auto seen = first_path_.find(&n);
    if (seen != first_path_.end()) {
      out_ << pad << prefix << "<same object as " << (seen->second.empty() ? "root" : seen->second)
           << ">\n";
      return;
    }
    first_path_[&n] = path;
    if (indent > 200) {
      out_ << pad << prefix << "...\n";
      return;
    }
    switch (n.kind) {
      case Kind::kList:
      case Kind::kTuple:
        out_ << pad << prefix << kind_name(n.kind) << " (" << n.items.size() << " items)\n";
        for (size_t i = 0; i < n.items.size(); ++i) {
          std::string child = path;
          detail::append_index(child, i);
          line(indent + 1, "[" + std::to_string(i) + "] ", n.items[i], child);
        }
        break;
      case Kind::kDict:
        out_ << pad << prefix << (n.ordered ? "OrderedDict" : "dict") << " (" << n.entries.size()
             << " items)\n";
        for (const auto& [k, val] : n.entries) {
          std::string key = inline_scalar(*k);
          if (key.empty()) key = "<" + std::string(kind_name(k->kind)) + ">";
          std::string child = path + "[";
          detail::append_key_label(child, *k);
          line(indent + 1, key + ": ", val, child + "]");
        }
        if (n.attrs) line(indent + 1, "(attributes) ", n.attrs, path + ".__dict__");
        break;
      case Kind::kObject:
        out_ << pad << prefix << "object " << n.s << "\n";
        if (n.args) line(indent + 1, "args: ", n.args, path + ".args");
        if (n.state) line(indent + 1, "state: ", n.state, path + ".state");
        break;
      default:
        break;
    }
  }

 private:
  std::ostream& out_;
  const Checkpoint& ckpt_;
  std::unordered_map<const Value*, std::string> first_path_;
  std::unordered_map<uint32_t, int> storage_users_;
};

}  // namespace

void print_tree(std::ostream& out, const Checkpoint& ckpt) {
  uint64_t total = 0;
  for (const auto& s : ckpt.tree.storages) total += s.nbytes;
  out << "file:     " << ckpt.path << "\n";
  out << "format:   " << ckpt.format << " (plugin " << ckpt.plugin_path << ")\n";
  out << "storages: " << ckpt.tree.storages.size() << " (" << human_bytes(total) << ")\n";
  Printer p(out, ckpt);
  p.count_storage_users(ckpt.tree.root);
  p.line(0, "", ckpt.tree.root, "");
}

}  // namespace ckptio::host
