// Helpers shared by the zip / legacy codec tests: running the Python scripts in pyzip/ with
// Debian's torch (/usr/bin/python3), generating real torch.save fixtures once per process,
// byte sources without a mapping, and a canonical text description of a decoded file that
// matches pyzip/common.py's.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "formats/io.h"
#include "formats/zip/torch_zip.h"

namespace ckptio::testing {

inline const char* kPython = "/usr/bin/python3";

inline std::string pyzip_dir() { return std::string(CKPTIO_TEST_DATA) + "/../formats/pyzip"; }

struct CmdResult {
  int status = -1;
  std::string out;
};

// Runs a shell command, capturing stdout (stderr passes through to the test log).
inline CmdResult run_cmd(const std::string& cmd) {
  CmdResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  r.status = pclose(p);
  return r;
}

inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

class TempDir {
 public:
  TempDir() {
    const char* base = getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/ckptio_zip_XXXXXX";
    if (mkdtemp(tmpl.data())) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline bool have_python() {
  static const bool ok =
      run_cmd(std::string(kPython) + " -c 'import zipfile' 2>/dev/null").status == 0;
  return ok;
}

// Real torch.save outputs, generated once per process by pyzip/torch_fixtures.py; empty
// when Debian's torch is unavailable (tests then skip).
inline const std::string& torch_fixtures() {
  static TempDir dir;
  static const std::string path = [] {
    CmdResult r =
        run_cmd(std::string(kPython) + " " + pyzip_dir() + "/torch_fixtures.py " + dir.path());
    return r.status == 0 && r.out.find("ok") != std::string::npos ? dir.path() : std::string();
  }();
  return path;
}

#define CKPTIO_REQUIRE_TORCH_FIXTURES()                                            \
  do {                                                                             \
    if (::ckptio::testing::torch_fixtures().empty())                               \
      GTEST_SKIP() << "Debian torch (/usr/bin/python3 -c 'import torch') missing"; \
  } while (0)

inline std::string fixture(const std::string& name) {
  return read_file(torch_fixtures() + "/" + name);
}
inline std::vector<std::string> fixture_lines(const std::string& name) {
  return split_lines(fixture(name));
}

// A source over memory that, like a pread-backed file, offers no mapping.
class UnmappedSource final : public ByteSource {
 public:
  UnmappedSource(std::string bytes, std::string name)
      : bytes_(std::move(bytes)), mem_(bytes_.data(), bytes_.size(), std::move(name)) {}
  uint64_t size() const override { return mem_.size(); }
  Status read_at(uint64_t offset, void* dst, uint64_t n) const override {
    return mem_.read_at(offset, dst, n);
  }
  const std::string& name() const override { return mem_.name(); }

 private:
  std::string bytes_;
  MemorySource mem_;
};

inline std::string hex(const uint8_t* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(digits[p[i] >> 4]);
    s.push_back(digits[p[i] & 15]);
  }
  return s;
}

template <class T>
std::string join(const std::vector<T>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

// The tensors of a tree, as pyzip/common.py tensor_lines describes them:
// T|path|dtype|shape|stride|offset|sid|hex-of-contiguous-elements.
inline std::vector<std::string> tensor_lines(
    const Tree& tree, const std::function<std::string(uint32_t storage)>& storage_bytes) {
  std::vector<std::string> lines;
  std::map<uint32_t, int> sids;
  std::map<uint32_t, std::string> cache;
  for_each_tensor(tree.root, [&](const ValuePtr& v, const std::string& path) {
    const TensorMeta& t = v->tensor;
    const StorageInfo& s = tree.storages.at(t.storage);
    std::string sid = "-";
    if (s.nbytes) sid = std::to_string(sids.emplace(t.storage, int(sids.size())).first->second);
    if (!cache.count(t.storage)) cache[t.storage] = storage_bytes(t.storage);
    const std::string& bytes = cache[t.storage];
    const int64_t numel = t.numel();
    std::string data = "-";
    if (numel > 0) {
      const size_t es = size_t(dtype_size(t.dtype));
      std::string gathered;
      std::vector<int64_t> idx(t.shape.size(), 0);
      for (int64_t n = 0; n < numel; ++n) {
        int64_t e = t.storage_offset;
        for (size_t d = 0; d < idx.size(); ++d) e += idx[d] * t.strides[d];
        gathered.append(bytes, size_t(e) * es, es);
        for (size_t d = idx.size(); d-- > 0;) {
          if (++idx[d] < t.shape[d]) break;
          idx[d] = 0;
        }
      }
      data = hex(reinterpret_cast<const uint8_t*>(gathered.data()), gathered.size());
    }
    lines.push_back("T|" + (path.empty() ? std::string("<root>") : path) + "|" +
                    std::string(dtype_name(t.dtype)) + "|" + join(t.shape) + "|" + join(t.strides) +
                    "|" + std::to_string(t.storage_offset) + "|" + sid + "|" + data);
  });
  return lines;
}

// tensor_lines of a decoded file, reading each storage through read_storage_bytes.
inline std::vector<std::string> decoded_lines(const DecodedFile& f, const ByteSource& src) {
  return tensor_lines(f.tree, [&](uint32_t i) {
    std::string bytes(f.extents.at(i).length, '\0');
    Status st = read_storage_bytes(src, f.extents[i], f.tree.storages[i].dtype, bytes.data());
    EXPECT_TRUE(st.ok()) << st.message();
    return bytes;
  });
}

// The "D|..." structure line of pyzip/common.py describe() for a decoded tree.
inline std::string describe(const ValuePtr& v) {
  auto seq = [](const std::vector<ValuePtr>& items, const char* open, const char* close) {
    std::string s = open;
    for (size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + describe(items[i]);
    return s + close;
  };
  switch (v->kind) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return v->b ? "True" : "False";
    case Kind::kInt:
      return std::to_string(v->i);
    case Kind::kBigInt:
      return v->s;
    case Kind::kFloat: {
      std::ostringstream o;
      o << v->f;
      return o.str();
    }
    case Kind::kStr:
      return "'" + v->s + "'";
    case Kind::kTensor:
      return "T";
    case Kind::kList:
      return seq(v->items, "[", "]");
    case Kind::kTuple:
      return seq(v->items, "(", ")");
    case Kind::kDict: {
      std::string s = "{";
      for (size_t i = 0; i < v->entries.size(); ++i)
        s +=
            (i ? ", " : "") + describe(v->entries[i].first) + ": " + describe(v->entries[i].second);
      return s + "}";
    }
    default:
      return std::string("<") + kind_name(v->kind) + ">";
  }
}

}  // namespace ckptio::testing
