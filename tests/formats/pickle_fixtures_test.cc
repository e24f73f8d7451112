// Reads pickles that real Python / PyTorch 1.13 wrote (generated at test time by
// tests/formats/py/pickle_fixtures.py, cached per script version) and compares the value
// tree with Python's own description of the object; then writes the tree back with
// pickle_plain / pickle_torch and has Python load our bytes and compare again.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "formats/pickle/pickle_opcodes.h"
#include "formats/pickle/pickler.h"
#include "formats/pickle/storage_table.h"
#include "formats/pickle/unpickler.h"
#include "support/files.h"
#include "support/process.h"

namespace ckptio {
namespace {

const char kPython[] = CKPTIO_TEST_PYTHON;

std::string script_path() {
  return std::string(CKPTIO_TEST_DATA) + "/../formats/py/pickle_fixtures.py";
}

using test_support::read_file;
using test_support::write_file;

// A shell command's stdout (its stderr goes to the test log unless it redirects it).
std::string run(const std::string& cmd) {
  test_support::RunResult r = test_support::run_shell(cmd);
  std::fputs(r.err.c_str(), stderr);
  return r.out;
}

// Generates the fixtures once per version of the script (ctest runs each test in its own
// process, so the cache lives on disk; rename() makes concurrent generation safe).
const std::string& fixtures() {
  static const std::string dir = [] {
    std::string script = read_file(script_path());
    std::string d = "/tmp/ckptio_pickle_fixtures_" + std::to_string(getuid()) + "_" +
                    std::to_string(std::hash<std::string>{}(script + kPython));
    if (access((d + "/cases.txt").c_str(), R_OK) == 0) return d;
    std::string tmp = d + ".tmp" + std::to_string(getpid());
    std::string out = run(std::string(kPython) + " " + script_path() + " gen " + tmp + " 2>&1");
    if (rename(tmp.c_str(), d.c_str()) != 0) run("rm -rf " + tmp);
    if (access((d + "/cases.txt").c_str(), R_OK) != 0)
      ADD_FAILURE() << "fixture generation failed: " << out;
    return d;
  }();
  return dir;
}

std::vector<std::string> cases(const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(read_file(fixtures() + "/cases.txt"));
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, prefix.size(), prefix) == 0) out.push_back(line);
  return out;
}

std::string hex(const std::string& s) {
  static const char k[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(k[c >> 4]);
    out.push_back(k[c & 15]);
  }
  return out;
}

std::string ints(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// The same canonical text as describe() in pickle_fixtures.py.
std::string describe(const ValuePtr& v, const std::vector<StorageInfo>& st) {
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
      uint64_t u;
      std::memcpy(&u, &v->f, 8);
      char buf[32];
      std::snprintf(buf, sizeof buf, "f%016llx", static_cast<unsigned long long>(u));
      return buf;
    }
    case Kind::kStr:
      return "s'" + hex(v->s) + "'";
    case Kind::kBytes:
      return "b'" + hex(v->s) + "'";
    case Kind::kList:
    case Kind::kTuple: {
      std::string s = v->kind == Kind::kList ? "[" : "(";
      for (size_t i = 0; i < v->items.size(); ++i) s += (i ? "," : "") + describe(v->items[i], st);
      return s + (v->kind == Kind::kList ? "]" : ")");
    }
    case Kind::kDict: {
      std::string s = v->ordered ? "O{" : "{";
      for (size_t i = 0; i < v->entries.size(); ++i)
        s += (i ? "," : "") + describe(v->entries[i].first, st) + ":" +
             describe(v->entries[i].second, st);
      s += "}";
      if (v->attrs && !v->attrs->entries.empty()) s += "@" + describe(v->attrs, st);
      return s;
    }
    case Kind::kGlobal:
      return "g(" + v->s + ")";
    case Kind::kObject:
      return "obj(" + v->s + "," + describe(v->args, st) + ")";
    case Kind::kTensor: {
      const TensorMeta& t = v->tensor;
      const StorageInfo& s = st.at(t.storage);
      std::string tail =
          ",S" + std::to_string(t.storage) + "," + std::to_string(s.nbytes) + "," + s.device + ")";
      if (t.is_storage)
        return "ST(" + std::string(dtype_name(t.dtype)) + "," + std::to_string(t.shape[0]) + tail;
      return "T(" + std::string(dtype_name(t.dtype)) + "," + ints(t.shape) + "," + ints(t.strides) +
             "," + std::to_string(t.storage_offset) + "," + std::to_string(t.requires_grad) + "," +
             std::to_string(t.is_parameter) + tail;
    }
  }
  return "?";
}

Result<Unpickled> load(const std::string& bytes, size_t offset = 0, StorageTable* table = nullptr) {
  UnpickleOptions o;
  o.context = "fixture";
  if (table) o.persistent_load = [table](const ValuePtr& pid) { return table->load(pid); };
  return unpickle(reinterpret_cast<const uint8_t*>(bytes.data()) + offset, bytes.size() - offset,
                  o);
}

TEST(PickleFixtures, PlainValuesAtEveryProtocol) {
  std::vector<std::string> names = cases("plain_");
  ASSERT_FALSE(names.empty());
  std::string check_args;
  for (const auto& name : names) {
    std::string expected = read_file(fixtures() + "/" + name + ".txt");
    for (int proto = 0; proto <= 5; ++proto) {
      std::string bytes = read_file(fixtures() + "/" + name + ".p" + std::to_string(proto));
      auto r = load(bytes);
      ASSERT_TRUE(r.ok()) << name << " protocol " << proto << ": " << r.status().message();
      EXPECT_EQ(r->consumed, bytes.size());
      EXPECT_EQ(describe(r->value, {}), expected) << name << " protocol " << proto;
      if (proto != 2) continue;
      // Our own protocol-2 bytes must read back to the same tree, here and in Python.
      auto ours = pickle_plain(*r->value);
      ASSERT_TRUE(ours.ok()) << ours.status().message();
      auto again = load(*ours);
      ASSERT_TRUE(again.ok()) << name << ": " << again.status().message();
      EXPECT_EQ(describe(again->value, {}), expected) << name << " (our pickle)";
      std::string path = fixtures() + "/ours_" + std::to_string(getpid()) + "_" + name + ".p";
      write_file(path, *ours);
      check_args += " " + path + " " + name;
    }
  }
  std::string out = run("FIXTURES=" + fixtures() + " " + kPython + " " + script_path() +
                        " check_plain" + check_args + " 2>&1");
  EXPECT_EQ(out, "OK\n");
  run("rm -f " + fixtures() + "/ours_" + std::to_string(getpid()) + "_*");
}

TEST(PickleFixtures, SharingSurvivesReadAndWrite) {
  std::string bytes = read_file(fixtures() + "/plain_shared.p2");
  auto r = load(bytes);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->value->items.size(), 3u);
  EXPECT_EQ(r->value->items[0], r->value->items[1]);  // one node, referenced twice
  auto ours = pickle_plain(*r->value);
  ASSERT_TRUE(ours.ok());
  auto again = load(*ours);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->value->items[0], again->value->items[1]);
}

TEST(PickleFixtures, Python2StringOpcodes) {
  for (const auto& name : cases("py2_")) {
    std::string bytes = read_file(fixtures() + "/" + name + ".p");
    auto r = load(bytes);
    ASSERT_TRUE(r.ok()) << name << ": " << r.status().message();
    EXPECT_EQ(describe(r->value, {}), read_file(fixtures() + "/" + name + ".txt")) << name;
  }
}

// A legacy torch.save file, split into its parts (formats/legacy is someone else's; this
// is the minimum to exercise the pickles).
struct Legacy {
  Tree tree;
  std::map<std::string, std::string> blobs;  // key -> raw bytes
  std::string error;
};

Legacy parse_legacy(const std::string& file) {
  Legacy out;
  size_t pos = 0;
  StorageTable table("legacy");
  ValuePtr keys;
  for (int part = 0; part < 5; ++part) {
    auto r = load(file, pos, part == 3 ? &table : nullptr);
    if (!r.ok()) {
      out.error = "part " + std::to_string(part) + ": " + r.status().message();
      return out;
    }
    pos += r->consumed;
    if (part == 3) out.tree.root = r->value;
    if (part == 4) keys = r->value;
  }
  out.tree.storages = table.storages();
  std::map<std::string, const StorageInfo*> by_key;
  for (const auto& s : out.tree.storages) by_key[s.key] = &s;
  for (const auto& k : keys->items) {
    int64_t count;
    std::memcpy(&count, file.data() + pos, 8);
    pos += 8;
    size_t n = static_cast<size_t>(count) * dtype_size(by_key.at(k->s)->dtype);
    out.blobs[k->s] = file.substr(pos, n);
    pos += n;
  }
  if (pos != file.size()) out.error = "trailing bytes";
  return out;
}

std::string legacy_file(const Tree& tree, const TorchPickled& p,
                        const std::map<std::string, std::string>& blobs) {
  std::string out;
  out += *pickle_plain(*Value::big_integer("119547037146038801333356"));
  out += *pickle_plain(*Value::integer(1001));
  ValuePtr info = Value::dict();
  info->entries.emplace_back(Value::str("protocol_version"), Value::integer(1001));
  info->entries.emplace_back(Value::str("little_endian"), Value::boolean(true));
  out += *pickle_plain(*info);
  out += p.bytes;
  std::vector<std::string> keys;
  for (size_t k = 0; k < p.storage_order.size(); ++k) keys.push_back(std::to_string(k));
  std::sort(keys.begin(), keys.end());
  ValuePtr list = Value::list();
  for (const auto& k : keys) list->items.push_back(Value::str(k));
  out += *pickle_plain(*list);
  for (const auto& k : keys) {
    size_t slot = std::stoul(k);
    const std::string& data = blobs.at(tree.storages[p.storage_order[slot]].key);
    int64_t count = static_cast<int64_t>(data.size() / dtype_size(p.storage_dtype[slot]));
    out.append(reinterpret_cast<const char*>(&count), 8);
    out += data;
  }
  return out;
}

TEST(PickleFixtures, TorchLegacyFilesReadAndWriteBack) {
  std::vector<std::string> names = cases("torch_");
  ASSERT_FALSE(names.empty());
  std::string check_args;
  for (const auto& name : names) {
    std::string orig = fixtures() + "/" + name + ".pt";
    Legacy l = parse_legacy(read_file(orig));
    ASSERT_EQ(l.error, "") << name;
    std::string expected = read_file(fixtures() + "/" + name + ".txt");
    EXPECT_EQ(describe(l.tree.root, l.tree.storages), expected) << name;

    TorchPickleOptions o;
    o.legacy_ids = true;
    auto p = pickle_torch(l.tree, o);
    ASSERT_TRUE(p.ok()) << name << ": " << p.status().message();
    // Read back by ourselves: the same tree, storages renamed "0", "1", ...
    StorageTable table("ours");
    auto again = load(p->bytes, 0, &table);
    ASSERT_TRUE(again.ok()) << name << ": " << again.status().message();
    EXPECT_EQ(describe(again->value, table.storages()), expected) << name << " (ours)";

    std::string ours = fixtures() + "/ours_" + std::to_string(getpid()) + "_" + name + ".pt";
    write_file(ours, legacy_file(l.tree, *p, l.blobs));
    check_args += " " + ours + " " + orig;
  }
  std::string out =
      run(std::string(kPython) + " " + script_path() + " check_torch" + check_args + " 2>&1");
  EXPECT_EQ(out, "OK\n");
  run("rm -f " + fixtures() + "/ours_" + std::to_string(getpid()) + "_*");
}

TEST(PickleFixtures, TorchFilesWeRefuseSayWhy) {
  std::vector<std::string> names = cases("err_");
  ASSERT_FALSE(names.empty());
  for (const auto& name : names) {
    std::string file = read_file(fixtures() + "/" + name + ".pt");
    std::string spec = read_file(fixtures() + "/" + name + ".txt");
    std::string code = spec.substr(0, spec.find('\n'));
    std::string fragment = spec.substr(spec.find('\n') + 1);
    size_t pos = 0;
    for (int part = 0; part < 3; ++part) {
      auto r = load(file, pos);
      ASSERT_TRUE(r.ok()) << name << ": " << r.status().message();
      pos += r->consumed;
    }
    StorageTable table("legacy");
    auto r = load(file, pos, &table);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(code_name(r.status().code()), code) << name << ": " << r.status().message();
    EXPECT_NE(r.status().message().find(fragment), std::string::npos)
        << name << ": " << r.status().message();
    EXPECT_EQ(r.status().message().rfind("fixture: ", 0), 0u) << r.status().message();
  }
}

// The opcode table that the reader and writer share is checked against Python's own
// (pickletools.opcodes): byte, name, argument encoding and protocol of every opcode, and
// no opcode more or less.
TEST(PickleFixtures, OpcodeTableMatchesPickletools) {
  const std::string script =
      "import pickletools as p\n"
      "counted = {p.TAKEN_FROM_ARGUMENT1: 'counted 1', p.TAKEN_FROM_ARGUMENT4: 'counted_i32 4',\n"
      "           p.TAKEN_FROM_ARGUMENT4U: 'counted 4', p.TAKEN_FROM_ARGUMENT8U: 'counted 8'}\n"
      "for o in p.opcodes:\n"
      "    a = o.arg\n"
      "    if a is None: kind = 'none'\n"
      "    elif a.name == 'stringnl_noescape_pair': kind = 'two_lines'\n"
      "    elif a.n == p.UP_TO_NEWLINE: kind = 'line'\n"
      "    elif a.n > 0: kind = 'fixed %d' % a.n\n"
      "    else: kind = counted[a.n]\n"
      "    print(ord(o.code), o.name, kind, o.proto)\n";
  const std::string path = "/tmp/ckptio_pickle_opcodes_" + std::to_string(getpid()) + ".py";
  write_file(path, script);
  std::istringstream py(run(std::string(kPython) + " " + path + " 2>&1"));
  std::remove(path.c_str());

  auto kind = [](const pickle_detail::OpInfo& i) -> std::string {
    switch (i.arg) {
      case pickle_detail::OpArg::kNone:
        return "none";
      case pickle_detail::OpArg::kFixed:
        return "fixed " + std::to_string(i.width);
      case pickle_detail::OpArg::kCounted:
        return "counted " + std::to_string(i.width);
      case pickle_detail::OpArg::kCountedI32:
        return "counted_i32 " + std::to_string(i.width);
      case pickle_detail::OpArg::kLine:
        return "line";
      case pickle_detail::OpArg::kTwoLines:
        return "two_lines";
    }
    return "?";
  };
  size_t seen = 0;
  for (std::string line; std::getline(py, line);) {
    std::istringstream fields(line);
    int code = -1;
    std::string name;
    ASSERT_TRUE(fields >> code >> name && code >= 0 && code < 256) << "Python said: " << line;
    const pickle_detail::OpInfo* i = pickle_detail::op_info(static_cast<uint8_t>(code));
    if (!i) {
      ADD_FAILURE() << "the table lacks " << name << " (" << code << ")";
      continue;
    }
    EXPECT_EQ(std::to_string(code) + " " + i->name + " " + kind(*i) + " " +
                  std::to_string(i->proto),
              line);
    ++seen;
  }
  EXPECT_GT(seen, 0u) << "no output from " << kPython;
  EXPECT_EQ(seen, std::size(pickle_detail::kOpcodes));
  size_t named = 0;
  for (int b = 0; b < 256; ++b) named += pickle_detail::op_info(static_cast<uint8_t>(b)) != nullptr;
  EXPECT_EQ(named, std::size(pickle_detail::kOpcodes)) << "two entries share an opcode byte";
}

}  // namespace
}  // namespace ckptio
