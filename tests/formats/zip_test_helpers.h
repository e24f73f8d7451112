// Helpers shared by the zip / legacy codec tests: running the Python scripts in pyzip/ with
// Debian's torch (/usr/bin/python3), generating real torch.save fixtures once per process,
// byte sources without a mapping, and a canonical text description of a decoded file that
// matches pyzip/common.py's.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "formats/io.h"
#include "formats/zip/torch_zip.h"
#include "support/files.h"
#include "support/process.h"
#include "support/scratch.h"

namespace ckptio::testing {

inline const char* kPython = CKPTIO_TEST_PYTHON;

inline std::string pyzip_dir() { return std::string(CKPTIO_TEST_DATA) + "/../formats/pyzip"; }

struct CmdResult {
  int status = -1;
  std::string out;
};

// Runs a shell command, capturing stdout (stderr passes through to the test log).
inline CmdResult run_cmd(const std::string& cmd) {
  test_support::RunResult run = test_support::run_shell(cmd);
  std::fputs(run.err.c_str(), stderr);
  return CmdResult{run.shell_code(), std::move(run.out)};
}

inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

using test_support::read_file;
using test_support::write_file;

inline bool have_python() {
  static const bool ok =
      run_cmd(std::string(kPython) + " -c 'import zipfile' 2>/dev/null").status == 0;
  return ok;
}

// Real torch.save outputs, generated once per process by pyzip/torch_fixtures.py; empty
// when Debian's torch is unavailable (tests then skip).
inline const std::string& torch_fixtures() {
  static test_support::ScratchDir dir("zip");
  static const std::string path = [] {
    CmdResult r =
        run_cmd(std::string(kPython) + " " + pyzip_dir() + "/torch_fixtures.py " + dir.path());
    return r.status == 0 && r.out.find("ok") != std::string::npos ? dir.path() : std::string();
  }();
  return path;
}

#define CKPTIO_REQUIRE_TORCH_FIXTURES()                                              \
  do {                                                                               \
    if (::ckptio::testing::torch_fixtures().empty())                                 \
      GTEST_SKIP() << "no PyTorch (" CKPTIO_TEST_PYTHON " -c 'import torch' fails)"; \
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

// A tree for the writer tests: tied and shared tensors, a strided view with an offset, an
// empty storage, a 0-dim bfloat16 view, int keys, nested containers, and 12 storages (so the
// legacy writer's lexicographic key order "0,1,10,11,2,..." differs from numeric order).
struct SampleTree {
  Tree tree;
  std::vector<std::string> bytes;  // per storage
  std::string describe;            // pyzip/common.py describe() of the tree
};

inline SampleTree sample_tree() {
  SampleTree s;
  auto add_storage = [&s](DType dtype, std::string bytes) {
    StorageInfo info;
    info.key = "k" + std::to_string(s.tree.storages.size());
    info.dtype = dtype;
    info.nbytes = bytes.size();
    s.tree.storages.push_back(info);
    s.bytes.push_back(std::move(bytes));
    return uint32_t(s.tree.storages.size() - 1);
  };
  auto tensor = [](DType dtype, std::vector<int64_t> shape, std::vector<int64_t> strides,
                   int64_t offset, uint32_t storage) {
    TensorMeta m;
    m.dtype = dtype;
    m.shape = std::move(shape);
    m.strides = std::move(strides);
    m.storage_offset = offset;
    m.storage = storage;
    return Value::make_tensor(m);
  };
  std::string f32;
  for (int i = 0; i < 12; ++i) {
    float v = float(i) * 1.5f - 2;
    f32.append(reinterpret_cast<const char*>(&v), 4);
  }
  std::string i64;
  for (int64_t v : {int64_t(-7), int64_t(1) << 40, int64_t(3)})
    i64.append(reinterpret_cast<const char*>(&v), 8);
  const uint32_t s0 = add_storage(DType::kFloat32, f32);
  const uint32_t s1 = add_storage(DType::kInt64, i64);
  const uint32_t s2 = add_storage(DType::kBool, "");
  const uint32_t s3 = add_storage(DType::kBFloat16, std::string("\x80\x3f\x40\xc0", 4));

  auto root = Value::dict();
  auto put = [&root](const char* key, ValuePtr v) {
    root->entries.emplace_back(Value::str(key), std::move(v));
  };
  ValuePtr w = tensor(DType::kFloat32, {3, 4}, {4, 1}, 0, s0);
  put("w", w);
  put("tied", tensor(DType::kFloat32, {3, 4}, {4, 1}, 0, s0));
  put("view", tensor(DType::kFloat32, {2, 2}, {1, 4}, 5, s0));
  put("idx", tensor(DType::kInt64, {3}, {1}, 0, s1));
  put("empty", tensor(DType::kBool, {0}, {1}, 0, s2));
  put("scalar", tensor(DType::kBFloat16, {}, {}, 1, s3));
  put("shared", w);
  auto many = Value::list();
  for (int i = 0; i < 8; ++i) {
    int32_t v = 100 + i;
    many->items.push_back(
        tensor(DType::kInt32, {1}, {1}, 0,
               add_storage(DType::kInt32, std::string(reinterpret_cast<const char*>(&v), 4))));
  }
  put("many", many);
  put("epoch", Value::integer(3));
  put("lr", Value::floating(0.5));
  put("name", Value::str("x"));
  put("list", Value::list({Value::integer(1), Value::tuple({Value::integer(2), Value::none()}),
                           Value::boolean(true)}));
  auto ints = Value::dict();
  ints->entries.emplace_back(Value::integer(0), Value::str("a"));
  ints->entries.emplace_back(Value::integer(1), Value::str("b"));
  put("ints", ints);
  s.tree.root = root;
  s.describe =
      "{'w': T, 'tied': T, 'view': T, 'idx': T, 'empty': T, 'scalar': T, 'shared': T, "
      "'many': [T, T, T, T, T, T, T, T], 'epoch': 3, 'lr': 0.5, 'name': 'x', "
      "'list': [1, (2, None), True], 'ints': {0: 'a', 1: 'b'}}";
  return s;
}

// Streams a SampleTree's storages in two pieces each (exercising the record sink).
inline StorageWriter sample_writer(const SampleTree& s) {
  return [&s](uint32_t index, ByteSink& out) -> Status {
    const std::string& b = s.bytes.at(index);
    const size_t half = b.size() / 2;
    CKPTIO_RETURN_IF_ERROR(out.write(b.data(), half));
    return out.write(b.data() + half, b.size() - half);
  };
}

inline std::vector<std::string> sample_lines(const SampleTree& s) {
  return tensor_lines(s.tree, [&s](uint32_t i) { return s.bytes.at(i); });
}

// Runs pyzip/inspect_ckpt.py (with torch) on files; returns its lines.
inline std::vector<std::string> inspect_with_torch(const std::vector<std::string>& files) {
  std::string cmd = std::string(kPython) + " " + pyzip_dir() + "/inspect_ckpt.py";
  for (const std::string& f : files) cmd += " " + f;
  CmdResult r = run_cmd(cmd);
  EXPECT_EQ(r.status, 0) << r.out;
  return split_lines(r.out);
}

// The lines inspect_ckpt.py printed for one file (after its FILE| line, up to the next).
inline std::vector<std::string> section(const std::vector<std::string>& lines,
                                        const std::string& file) {
  std::vector<std::string> out;
  bool in = false;
  for (const std::string& l : lines) {
    if (l.rfind("FILE|", 0) == 0) {
      in = l == "FILE|" + file;
      continue;
    }
    if (in) out.push_back(l);
  }
  return out;
}

// Checks what inspect_ckpt.py reported for one of our files against the SampleTree.
// `floats_ok_without_weights_only`: the tree holds a Python float, which torch 1.13's
// weights_only loader cannot read even from torch.save's own files (BINFLOAT, opcode 71).
inline void expect_torch_loads_sample(const std::vector<std::string>& py, const SampleTree& s,
                                      const std::string& describe_line,
                                      bool floats_ok_without_weights_only) {
  std::vector<std::string> tensors;
  bool described = false;
  for (const std::string& l : py) {
    if (l.rfind("LOADERR|", 0) == 0) ADD_FAILURE() << l;
    if (l.rfind("WOERR|", 0) == 0) {
      EXPECT_TRUE(floats_ok_without_weights_only) << l;
      EXPECT_NE(l.find("Unsupported operand 71"), std::string::npos) << l;
    }
    if (l.rfind("D|", 0) == 0) {
      EXPECT_EQ(l, "D|" + describe_line);
      described = true;
    }
    if (l.rfind("T|", 0) == 0) tensors.push_back(l);
  }
  EXPECT_TRUE(described);
  EXPECT_EQ(tensors, sample_lines(s));
}

// The sample without its float entry: torch 1.13 loads it with weights_only=True.
inline SampleTree sample_tree_without_float() {
  SampleTree s = sample_tree();
  auto& e = s.tree.root->entries;
  e.erase(std::remove_if(e.begin(), e.end(), [](const auto& kv) { return kv.first->is_str("lr"); }),
          e.end());
  const std::string lr = "'lr': 0.5, ";
  s.describe.erase(s.describe.find(lr), lr.size());
  return s;
}

}  // namespace ckptio::testing
