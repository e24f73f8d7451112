// Hugging Face sharded checkpoints (a directory of shards and model.safetensors.index.json
// or pytorch_model.bin.index.json, one model.safetensors or pytorch_model.bin, or the index
// file itself) against the real transformers, huggingface_hub, safetensors and torch of the
// tests' Python (CKPTIO_TEST_PYTHON; transformers 5.24 in the venv), both ways:
//   * tiny models made at test time (py/make_hf_cases.py: a Llama and a bfloat16 BERT with
//     random weights), saved by save_pretrained(max_shard_size=...) as safetensors shards,
//     and as .bin shards the way transformers 4 wrote them (5.24 writes safetensors only),
//     read by ckptio::load, a zero-copy load, a Reader reading one key, `inspect`, `verify`
//     and (with LibTorch) ckptio::load(path, TorchLoadOptions) and load_state_dict, equal
//     to what the reference libraries read;
//   * what ckptio writes (ckptio::save and `convert` with max_shard_size, over an existing
//     directory too, and `convert` taking its format from the output's name) loaded by
//     from_pretrained to the original weights and split as save_pretrained splits
//     (py/check_hf_load.py);
//   * bad input (missing shards, absent or doubled tensors, traversal, absolute names,
//     symlinks out of the directory, lying, truncated and oversized headers, broken
//     indexes): one-line ckptio::Error and exit 1 naming the file and tensor, never a crash
//     or hang; failed saves leave an existing target untouched and nothing beside it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "ckptio/ckptio.h"
#include "interop_util.h"
#include "tensor_bytes.h"
#ifdef CKPTIO_TEST_WITH_TORCH
#include <torch/torch.h>

#include "ckptio/torch.h"
#endif

namespace interop {
namespace {
namespace fs = std::filesystem;

const char kMake[] = "make_hf_cases.py";
const char kCheck[] = "check_hf_load.py";
// A hang guard, not a performance threshold: these checkpoints are a few hundred KB.
constexpr int kPyTimeoutS = 300;
constexpr int kCliTimeoutS = 60;

std::string prepare(const std::string& dir) {
  RunResult made = run({kPython, py_script(kMake), "make", dir}, 300);  // the fixture's limit
  if (made.exited && made.exit_code == 3 &&
      made.err.find("no transformers module") != std::string::npos) {
    write_file(dir + "/skipped", made.err);  // Debian's torch 1.13 Python has none
    return "";
  }
  return made.exited && made.exit_code == 0 ? "" : made.describe();
}

// ---- the reference tensors ----------------------------------------------------------------

struct Expected {
  std::string dtype;  // torch's name: "float32", "bfloat16"
  std::vector<int64_t> shape;
  std::string bytes;  // row-major, little-endian
};
using ExpectedMap = std::map<std::string, Expected>;

std::string torch_dtype_of(const std::string& st) {
  static const std::map<std::string, std::string> names = {
      {"F64", "float64"}, {"F32", "float32"}, {"F16", "float16"}, {"BF16", "bfloat16"},
      {"I64", "int64"},   {"I32", "int32"},   {"I16", "int16"},   {"I8", "int8"},
      {"U8", "uint8"},    {"BOOL", "bool"}};
  auto it = names.find(st);
  return it == names.end() ? "unknown " + st : it->second;
}

// A safetensors file the reference wrote, parsed here (not by ckptio): the expected values.
ExpectedMap read_expected(const std::string& path) {
  const std::string b = read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<uint8_t>(b.at(i));
  const json h = json::parse(b.substr(8, n));
  ExpectedMap out;
  for (const auto& [k, v] : h.items()) {
    if (k == "__metadata__") continue;
    Expected e;
    e.dtype = torch_dtype_of(v["dtype"]);
    e.shape = v["shape"].get<std::vector<int64_t>>();
    const uint64_t lo = v["data_offsets"][0], hi = v["data_offsets"][1];
    e.bytes = b.substr(8 + n + lo, hi - lo);
    out[k] = e;
  }
  return out;
}

// The root dict's string-keyed tensors (a "__metadata__" entry aside; its presence in the
// merged dict is the implementation's choice).
std::map<std::string, ckptio::TensorMeta> tensors_of(const ckptio::Tree& tree,
                                                     std::vector<std::string>* problems) {
  std::map<std::string, ckptio::TensorMeta> out;
  if (!tree.root || tree.root->kind != ckptio::Kind::kDict) {
    problems->push_back("the root is not a dict");
    return out;
  }
  for (const auto& [k, v] : tree.root->entries) {
    if (k->kind != ckptio::Kind::kStr) {
      problems->push_back(std::string("a key is a ") + ckptio::kind_name(k->kind));
      continue;
    }
    if (k->s == "__metadata__") continue;
    if (v->kind != ckptio::Kind::kTensor) {
      problems->push_back("'" + k->s + "' is a " + ckptio::kind_name(v->kind));
      continue;
    }
    if (!out.emplace(k->s, v->tensor).second) problems->push_back("'" + k->s + "' twice");
  }
  return out;
}

// Differences between a loaded checkpoint and the reference, one line each. `only`: compare
// these keys alone (the others need not have been read).
std::vector<std::string> compare(const ckptio::Checkpoint& got, const ExpectedMap& want,
                                 const std::set<std::string>* only = nullptr) {
  std::vector<std::string> diffs;
  const auto tensors = tensors_of(got.tree, &diffs);
  if (!only) {
    for (const auto& [k, t] : tensors)
      if (!want.count(k)) diffs.push_back("'" + k + "': not in the reference");
  }
  for (const auto& [k, e] : want) {
    if (only && !only->count(k)) continue;
    auto it = tensors.find(k);
    if (it == tensors.end()) {
      diffs.push_back("'" + k + "': missing");
      continue;
    }
    const ckptio::TensorMeta& t = it->second;
    const std::string dtype(ckptio::dtype_name(t.dtype));
    if (dtype != e.dtype) diffs.push_back("'" + k + "': dtype " + dtype + ", want " + e.dtype);
    if (t.shape != e.shape) diffs.push_back("'" + k + "': shape " + json(t.shape).dump() +
                                            ", want " + json(e.shape).dump());
    auto b = tensor_bytes(got, t);
    if (!b) diffs.push_back("'" + k + "': bytes not loaded or out of bounds");
    else if (*b != e.bytes) diffs.push_back("'" + k + "': values differ");
  }
  return diffs;
}

// ---- files --------------------------------------------------------------------------------

void copy_dir(const std::string& from, const std::string& to) {
  fs::create_directories(to);
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::copy_symlinks |
                         fs::copy_options::overwrite_existing);
}

// Every entry under `dir` (recursively, hidden ones included) with its bytes, or its link.
std::map<std::string, std::string> tree_of(const std::string& dir) {
  std::map<std::string, std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).string();
    if (e.is_symlink()) out[rel] = "-> " + fs::read_symlink(e.path()).string();
    else if (e.is_regular_file()) out[rel] = read_file(e.path().string());
    else out[rel] = "<dir>";
  }
  return out;
}

std::vector<std::string> names_of(const std::map<std::string, std::string>& t) {
  std::vector<std::string> out;
  for (const auto& [k, v] : t) out.push_back(k);
  return out;
}

// The weight files of a directory (shards and index), sorted, as check_hf_load.py lists them.
std::vector<std::string> weight_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& f : list_dir(dir)) {
    auto ends = [&](const std::string& s) {
      return f.size() >= s.size() && f.compare(f.size() - s.size(), s.size(), s) == 0;
    };
    if (ends(".safetensors") || ends(".bin") || ends(".index.json")) out.push_back(f);
  }
  return out;
}

// Flips every byte of every occurrence of `pattern` in `file` (a tensor's bytes in a shard:
// the data changes, no length or header does). Returns how many occurrences.
int corrupt(const std::string& file, const std::string& pattern) {
  if (pattern.empty()) return 0;
  std::string b = read_file(file);
  int n = 0;
  for (size_t at = b.find(pattern); at != std::string::npos; at = b.find(pattern, at + 1)) {
    for (size_t i = 0; i < pattern.size(); ++i) b[at + i] = static_cast<char>(b[at + i] ^ 0x5A);
    ++n;
  }
  write_file(file, b);
  return n;
}

bool succeeded(const RunResult& r) { return r.exited && r.exit_code == 0; }

// ---- the fixture ----------------------------------------------------------------------------

class HfSharded : public ::testing::Test {
 protected:
  void SetUp() override {
    if (fs::exists(work_dir() + "/skipped"))
      GTEST_SKIP() << "the tests' Python has no transformers: " << read_file(work_dir() + "/skipped");
    m_ = read_json(work_dir() + "/manifest.json");
  }

  const json& case_named(const std::string& name) const {
    for (const auto& c : m_["cases"])
      if (c["name"] == name) return c;
    ADD_FAILURE() << "no case " << name;
    static const json none;
    return none;
  }
  const json& model(const std::string& name) const { return m_["models"][name]; }
  // The model's saved state_dict (what every case of it holds).
  ExpectedMap expected_of_model(const std::string& name) const {
    for (const auto& c : m_["cases"])
      if (c["model"] == name) return read_expected(c["expected"]);
    ADD_FAILURE() << "no case of model " << name;
    return {};
  }
  // config.json and generation_config.json beside the weights, as from_pretrained wants.
  void add_config(const std::string& model_name, const std::string& dir) const {
    for (const auto& f : list_dir(model(model_name)["config_dir"]))
      fs::copy_file(model(model_name)["config_dir"].get<std::string>() + "/" + f, dir + "/" + f,
                    fs::copy_options::overwrite_existing);
  }
  // py/check_hf_load.py on each job's directory, in one run (transformers is imported once):
  // per job "" when it passes, else the one line saying what differs. An empty `like`: the
  // split is not compared.
  struct HfJob {
    std::string dir, model, like;
  };
  std::vector<std::string> check_hf(const std::vector<HfJob>& jobs, const std::string& tag) const {
    const std::string d = scratch("check_hf_" + tag);
    json j = json::array();
    for (const auto& x : jobs)
      j.push_back({{"dir", x.dir}, {"model", x.model},
                   {"like", x.like.empty() ? json() : json(x.like)}});
    write_file(d + "/jobs.json", j.dump());
    RunResult r = run({kPython, py_script(kCheck), work_dir(), "--batch", d + "/jobs.json",
                       d + "/results.json"},
                      kPyTimeoutS);
    std::vector<std::string> out(jobs.size(), "check_hf_load.py failed: " + r.describe());
    if (!succeeded(r)) return out;
    const json res = read_json(d + "/results.json");
    for (size_t i = 0; i < jobs.size() && i < res.size(); ++i)
      out[i] = res[i]["ok"].get<bool>() ? "" : res[i]["error"].get<std::string>();
    return out;
  }
  // The paths one case is read from: the directory (also with a trailing '/'), the index.
  std::vector<std::string> paths_of(const json& c) const {
    std::vector<std::string> p = {c["dir"], c["dir"].get<std::string>() + "/"};
    if (!c["index"].is_null()) p.push_back(c["index"]);
    return p;
  }
  bool sharded(const json& c) const { return !c["index"].is_null(); }
  // The case's last shard: its listing is sorted, and the index sorts after the shards.
  std::string last_shard(const json& c) const {
    const auto files = c["files"].get<std::vector<std::string>>();
    return files.at(files.size() - 2);
  }

  json m_;
};

TEST_F(HfSharded, CasesAreShardedAsIntended) {
  std::printf("  transformers %s, safetensors %s, torch %s, huggingface_hub %s\n  %s\n",
              m_["versions"]["transformers"].get<std::string>().c_str(),
              m_["versions"]["safetensors"].get<std::string>().c_str(),
              m_["versions"]["torch"].get<std::string>().c_str(),
              m_["versions"]["huggingface_hub"].get<std::string>().c_str(),
              m_["bin_by"].get<std::string>().c_str());
  int st_sharded = 0, bin_sharded = 0, single = 0;
  for (const auto& c : m_["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const auto files = c["files"].get<std::vector<std::string>>();
    EXPECT_EQ(weight_files(c["dir"]), files);
    if (sharded(c)) {
      EXPECT_GE(files.size(), 3u) << "two shards and the index at least";
      (c["kind"] == "safetensors" ? st_sharded : bin_sharded)++;
    } else {
      EXPECT_EQ(files.size(), 1u);
      ++single;
    }
  }
  EXPECT_GE(st_sharded, 3);
  EXPECT_GE(bin_sharded, 2);
  EXPECT_EQ(single, 2);
  // The splitter's quirk is in the cases: BERT's position embedding, bigger than 40KB, has
  // a shard of its own before the shard it interrupted.
  EXPECT_EQ(case_named("bert_st_sharded")["weight_map"]["embeddings.position_embeddings.weight"],
            "model-00001-of-00006.safetensors");
  EXPECT_EQ(case_named("bert_st_sharded")["weight_map"]["embeddings.word_embeddings.weight"],
            "model-00002-of-00006.safetensors");
}

TEST_F(HfSharded, LoadsEveryCaseFromItsDirectoryOrIndex) {
  for (const auto& c : m_["cases"]) {
    const ExpectedMap want = read_expected(c["expected"]);
    ASSERT_FALSE(want.empty());
    for (const auto& path : paths_of(c)) {
      SCOPED_TRACE(path);
      try {
        const ckptio::Checkpoint got = ckptio::load(path);
        EXPECT_EQ(got.format, c["format"].get<std::string>());
        auto diffs = compare(got, want);
        EXPECT_TRUE(diffs.empty()) << join(diffs);
      } catch (const ckptio::Error& e) {
        ADD_FAILURE() << "ckptio::load: " << e.what();
      }
    }
  }
}

// A model downloaded by huggingface_hub sits in its cache as symlinks from
// <repo>/snapshots/<revision>/ into <repo>/blobs/: read in place, as from a plain directory.
// A link elsewhere out of the snapshot is still refused.
TEST_F(HfSharded, ReadsAHubCacheSnapshotWhoseFilesLinkIntoItsBlobs) {
  const json& c = case_named("llama_st_sharded");
  const std::string repo = scratch("hub_cache") + "/models--tiny--llama";
  const std::string snapshot = repo + "/snapshots/0123abcd";
  fs::create_directories(repo + "/blobs");
  fs::create_directories(snapshot);
  int n = 0;
  for (const auto& f : list_dir(c["dir"])) {
    const std::string blob = "blob" + std::to_string(n++);
    fs::copy_file(c["dir"].get<std::string>() + "/" + f, repo + "/blobs/" + blob);
    fs::create_symlink("../../blobs/" + blob, snapshot + "/" + f);
  }
  try {
    const ckptio::Checkpoint got = ckptio::load(snapshot);
    auto diffs = compare(got, read_expected(c["expected"]));
    EXPECT_TRUE(diffs.empty()) << join(diffs);
  } catch (const ckptio::Error& e) {
    ADD_FAILURE() << "ckptio::load of a hub cache snapshot: " << e.what();
  }
  // The same snapshot with one shard linked to a file beside the repository, not a blob.
  const std::string shard = c["weight_map"].begin().value().get<std::string>();
  fs::copy_file(repo + "/blobs/" + fs::read_symlink(snapshot + "/" + shard).filename().string(),
                repo + "/../stray.safetensors");
  fs::remove(snapshot + "/" + shard);
  fs::create_symlink("../../../stray.safetensors", snapshot + "/" + shard);
  try {
    ckptio::load(snapshot);
    ADD_FAILURE() << "a link out of the repository was followed";
  } catch (const ckptio::Error& e) {
    EXPECT_EQ(e.code(), ckptio::Code::kForbidden) << e.what();
    EXPECT_NE(std::string(e.what()).find(shard), std::string::npos) << e.what();
  }
}

TEST_F(HfSharded, ReaderOpensDirectoriesAndIndexes) {
  for (const auto& c : m_["cases"]) {
    for (const auto& path : paths_of(c)) {
      SCOPED_TRACE(path);
      try {
        auto r = ckptio::Reader::open(path);
        EXPECT_EQ(r->format(), c["format"].get<std::string>());
        std::vector<std::string> problems;
        const auto tensors = tensors_of(r->tree(), &problems);
        EXPECT_TRUE(problems.empty()) << join(problems);
        std::set<std::string> names;
        for (const auto& [k, t] : tensors) names.insert(k);
        std::set<std::string> want;
        for (const auto& [k, f] : c["weight_map"].items()) want.insert(k);
        EXPECT_EQ(names, want);
        // Storage bytes are read on demand: nothing yet.
        const ckptio::Checkpoint none = r->checkpoint();
        for (const auto& s : none.storages) EXPECT_EQ(s.data, nullptr);
      } catch (const ckptio::Error& e) {
        ADD_FAILURE() << "Reader::open: " << e.what();
      }
    }
  }
}

TEST_F(HfSharded, ZeroCopyLoadsTheSameValues) {
  for (const auto& c : m_["cases"]) {
    const ExpectedMap want = read_expected(c["expected"]);
    for (const auto& path : {c["dir"].get<std::string>(), paths_of(c).back()}) {
      SCOPED_TRACE(path);
      ckptio::LoadOptions zc;
      zc.zero_copy = true;
      try {
        const ckptio::Checkpoint got = ckptio::load(path, zc);
        auto diffs = compare(got, want);
        EXPECT_TRUE(diffs.empty()) << join(diffs);
        size_t mapped = 0;
        for (size_t i = 0; i < got.storages.size(); ++i) {
          const auto& s = got.storages[i];
          if (s.size == 0) continue;
          EXPECT_EQ(reinterpret_cast<uintptr_t>(s.data) % 64, 0u)
              << "storage " << i << " (" << got.tree.storages[i].key << ")";
          mapped += s.mapped;
        }
        std::printf("  %s: %zu of %zu storages mapped\n", path.c_str(), mapped,
                    got.storages.size());
      } catch (const ckptio::Error& e) {
        ADD_FAILURE() << "ckptio::load(zero_copy): " << e.what();
      }
    }
  }
}

// safetensors aligns its data to 8 bytes only: with zero_copy_alignment 1 every storage of a
// safetensors shard maps (each is aligned to its element size in these models), as safe_open
// maps them; an alignment that is not a power of two is refused.
TEST_F(HfSharded, ZeroCopyAlignmentMapsSafetensorsShards) {
  int checked = 0;
  for (const auto& c : m_["cases"]) {
    if (c["kind"] != "safetensors") continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    const ExpectedMap want = read_expected(c["expected"]);
    ckptio::LoadOptions zc;
    zc.zero_copy = true;
    zc.zero_copy_alignment = 1;
    try {
      const ckptio::Checkpoint got = ckptio::load(c["dir"], zc);
      auto diffs = compare(got, want);
      EXPECT_TRUE(diffs.empty()) << join(diffs);
      size_t mapped = 0, nonempty = 0;
      for (size_t i = 0; i < got.storages.size(); ++i) {
        const auto& s = got.storages[i];
        if (s.size == 0) continue;
        ++nonempty;
        mapped += s.mapped;
        const int es = ckptio::dtype_size(got.tree.storages[i].dtype);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(s.data) % static_cast<uintptr_t>(es), 0u)
            << got.tree.storages[i].key;
      }
      EXPECT_EQ(mapped, nonempty);
      ++checked;
    } catch (const ckptio::Error& e) {
      ADD_FAILURE() << e.what();
    }
  }
  EXPECT_GE(checked, 3);
  ckptio::LoadOptions bad;
  bad.zero_copy = true;
  bad.zero_copy_alignment = 3;
  try {
    ckptio::load(case_named("llama_st_sharded")["dir"], bad);
    ADD_FAILURE() << "alignment 3 was taken";
  } catch (const ckptio::Error& e) {
    EXPECT_NE(std::string(e.what()).find("is not a power of two"), std::string::npos) << e.what();
  }
}

// A Reader reading one key reads that key's shard only: with every other shard's tensor
// bytes flipped (headers and lengths intact), the key still reads right and the other
// storages stay unread; reading everything then shows the damage (safetensors: different
// values; .bin: a CRC error with verify).
TEST_F(HfSharded, ReaderReadingOneKeyReadsOnlyItsShard) {
  int checked = 0;
  for (const auto& c : m_["cases"]) {
    if (!sharded(c)) continue;
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const ExpectedMap want = read_expected(c["expected"]);
    const std::string dir = scratch("one_key_" + name);
    copy_dir(c["dir"], dir);
    // The key: the first (by name) of the last shard.
    const std::string keep = last_shard(c);
    std::string key;
    std::set<std::string> damaged_keys;
    std::set<std::string> damaged_files;
    for (const auto& [k, f] : c["weight_map"].items()) {
      if (f == keep) {
        if (key.empty()) key = k;
      } else {
        damaged_keys.insert(k);
        damaged_files.insert(f.get<std::string>());
      }
    }
    ASSERT_FALSE(key.empty());
    ASSERT_FALSE(damaged_files.empty());
    for (const auto& k : damaged_keys) {
      const std::string f = dir + "/" + c["weight_map"][k].get<std::string>();
      // A tensor of the kept shard with the same bytes would be damaged too: none here.
      EXPECT_GE(corrupt(f, want.at(k).bytes), 1) << k << " not found in " << f;
    }
    try {
      auto r = ckptio::Reader::open(dir);
      std::vector<std::string> problems;
      const auto tensors = tensors_of(r->tree(), &problems);
      ASSERT_TRUE(tensors.count(key)) << join(problems);
      const uint32_t index = tensors.at(key).storage;
      const ckptio::StorageBytes sb = r->storage(index);
      ASSERT_NE(sb.data, nullptr);
      const ckptio::Checkpoint part = r->checkpoint();
      const std::set<std::string> only = {key};
      auto diffs = compare(part, want, &only);
      EXPECT_TRUE(diffs.empty()) << join(diffs);
      for (const auto& k : damaged_keys) {
        if (!tensors.count(k)) continue;
        EXPECT_EQ(part.storages.at(tensors.at(k).storage).data, nullptr)
            << "'" << k << "' (another shard) was read for '" << key << "'";
      }
    } catch (const ckptio::Error& e) {
      ADD_FAILURE() << "reading '" << key << "' alone: " << e.what();
    }
    // The damage is visible to a whole load (the test above could fail): other values, and
    // for .bin shards a CRC error when verifying (verify checks every record at open).
    try {
      const ckptio::Checkpoint all = ckptio::load(dir);
      auto diffs = compare(all, want);
      std::set<std::string> differing;
      for (const auto& d : diffs) differing.insert(d.substr(1, d.find("'", 1) - 1));
      EXPECT_EQ(differing, damaged_keys) << join(diffs);
    } catch (const ckptio::Error& e) {
      ADD_FAILURE() << "ckptio::load of the damaged copy: " << e.what();
    }
    if (c["kind"] == "bin") {
      ckptio::LoadOptions opts;
      opts.verify = true;
      try {
        ckptio::load(dir, opts);
        ADD_FAILURE() << "ckptio::load(verify) read damaged .bin shards";
      } catch (const ckptio::Error& e) {
        const std::string msg = e.what();
        EXPECT_TRUE(std::any_of(damaged_files.begin(), damaged_files.end(),
                                [&](const std::string& f) { return msg.find(f) != std::string::npos; }))
            << "names no damaged shard: " << msg;
      }
    }
    ++checked;
  }
  EXPECT_GE(checked, 5);
}

// LoadOptions::keys opens only the shards that hold the selection: every other shard is
// replaced by garbage that no header parse survives, and the selection still loads (a whole
// load of the same directory fails, so the test can fail).
TEST_F(HfSharded, KeyFilterOpensOnlyTheShardsHoldingTheSelection) {
  int checked = 0;
  for (const auto& c : m_["cases"]) {
    if (!sharded(c)) continue;
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const ExpectedMap want = read_expected(c["expected"]);
    const std::string keep = last_shard(c);
    std::set<std::string> in_keep;
    std::string other_key;
    for (const auto& [k, f] : c["weight_map"].items())
      if (f == keep) in_keep.insert(k);
      else if (other_key.empty()) other_key = k;
    ASSERT_GE(in_keep.size(), 1u);
    ASSERT_FALSE(other_key.empty());
    const std::string key = *in_keep.begin();
    const std::string dir = scratch("key_filter_" + name);
    copy_dir(c["dir"], dir);
    for (const auto& f : c["files"].get<std::vector<std::string>>())
      if (f != keep && f.find(".index.json") == std::string::npos) write_file(dir + "/" + f, "garbage");
    for (const std::string& path : paths_of(c)) {
      const std::string p = path.find(c["dir"].get<std::string>()) == 0
                                ? dir + path.substr(c["dir"].get<std::string>().size())
                                : path;
      SCOPED_TRACE(p);
      ckptio::LoadOptions opts;
      opts.keys = {key};
      try {
        const ckptio::Checkpoint got = ckptio::load(p, opts);
        std::vector<std::string> problems;
        const auto tensors = tensors_of(got.tree, &problems);
        EXPECT_EQ(tensors.size(), 1u) << join(problems);
        EXPECT_EQ(got.tree.storages.size(), 1u);
        const std::set<std::string> only = {key};
        auto diffs = compare(got, want, &only);
        EXPECT_TRUE(diffs.empty()) << join(diffs);
      } catch (const ckptio::Error& e) {
        ADD_FAILURE() << "loading '" << key << "' alone: " << e.what();
      }
    }
    try {
      ckptio::load(dir);
      ADD_FAILURE() << "a whole load read the garbage shards";
    } catch (const ckptio::Error& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
    // A key in a garbage shard fails naming that shard.
    ckptio::LoadOptions other;
    other.keys = {key, other_key};
    try {
      ckptio::load(dir, other);
      ADD_FAILURE() << "'" << other_key << "' loaded from a garbage shard";
    } catch (const ckptio::Error& e) {
      EXPECT_NE(std::string(e.what()).find(c["weight_map"][other_key].get<std::string>()),
                std::string::npos) << e.what();
    }
    ++checked;
  }
  EXPECT_GE(checked, 5);
}

// A key ending in '.' selects every entry it begins, from a directory and from one file
// (whose storages are renumbered); a key that selects nothing fails naming it; the selection
// saves as a checkpoint of its own.
TEST_F(HfSharded, KeyFilterSelectsByNameAndPrefix) {
  const json& c = case_named("llama_st_sharded");
  const ExpectedMap want = read_expected(c["expected"]);
  const std::string prefix = "model.layers.0.";
  std::set<std::string> selected;
  for (const auto& [k, e] : want)
    if (k.compare(0, prefix.size(), prefix) == 0) selected.insert(k);
  ASSERT_GE(selected.size(), 3u);
  for (const std::string& path : {c["dir"].get<std::string>(), model("llama")["pt"].get<std::string>()}) {
    SCOPED_TRACE(path);
    ckptio::LoadOptions opts;
    opts.keys = {prefix, "model.norm.weight"};
    std::set<std::string> expect = selected;
    expect.insert("model.norm.weight");
    try {
      const ckptio::Checkpoint got = ckptio::load(path, opts);
      std::vector<std::string> problems;
      std::set<std::string> names;
      for (const auto& [k, t] : tensors_of(got.tree, &problems)) names.insert(k);
      EXPECT_EQ(names, expect) << join(problems);
      EXPECT_LE(got.tree.storages.size(), expect.size());
      auto diffs = compare(got, want, &expect);
      EXPECT_TRUE(diffs.empty()) << join(diffs);
      const std::string out = scratch("key_prefix_save") + "/part.safetensors";
      ckptio::SaveOptions so;
      so.format = "safetensors";
      ckptio::save(out, got, so);
      const ckptio::Checkpoint again = ckptio::load(out);
      diffs = compare(again, want, &expect);
      EXPECT_TRUE(diffs.empty()) << join(diffs);
    } catch (const ckptio::Error& e) {
      ADD_FAILURE() << e.what();
    }
    opts.keys = {"model.layers.0", "model.norm.weight"};  // no '.': a name, which no tensor has
    try {
      ckptio::load(path, opts);
      ADD_FAILURE() << "'model.layers.0' selected something";
    } catch (const ckptio::Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("'model.layers.0'"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
  // The CLI's --key: inspect shows the selection, convert writes it alone.
  const std::string out = scratch("key_cli") + "/layer0.safetensors";
  RunResult r = ckptio_cli({"convert", c["dir"], out, "--key", prefix});
  ASSERT_TRUE(succeeded(r)) << r.describe();
  try {
    const ckptio::Checkpoint got = ckptio::load(out);
    std::vector<std::string> problems;
    std::set<std::string> names;
    for (const auto& [k, t] : tensors_of(got.tree, &problems)) names.insert(k);
    EXPECT_EQ(names, selected);
    auto diffs = compare(got, want, &selected);
    EXPECT_TRUE(diffs.empty()) << join(diffs);
  } catch (const ckptio::Error& e) {
    ADD_FAILURE() << e.what();
  }
  r = ckptio_cli({"inspect", c["dir"], "--json", "--key", "model.norm.weight"});
  ASSERT_TRUE(succeeded(r)) << r.describe();
  EXPECT_NE(r.out.find("model.norm.weight"), std::string::npos);
  EXPECT_EQ(r.out.find("model.layers.0."), std::string::npos);
  r = ckptio_cli({"inspect", c["dir"], "--key", "nope"});
  EXPECT_TRUE(r.exited && r.exit_code == 1) << r.describe();
  EXPECT_NE(r.err.find("'nope'"), std::string::npos) << r.err;
}

// `ckptio convert model.pt out_dir --format F --option max_shard_size=S` writes what
// save_pretrained writes for that size; from_pretrained loads it to the original weights.
TEST_F(HfSharded, CliConvertWritesShardsFromPretrainedLoads) {
  struct Run {
    std::string model, format, size, like;
  };
  const std::vector<Run> runs = {
      {"llama", "safetensors", "100KB", "llama_st_sharded"},
      {"llama", "safetensors", "200KB", "llama_st_2shards"},
      {"bert", "safetensors", "40KB", "bert_st_sharded"},
      {"llama", "safetensors", "2GB", "llama_st_single"},
      {"llama", "torch-zip", "100KB", "llama_bin_sharded"},
      {"bert", "torch-zip", "40KB", "bert_bin_sharded"},
      {"llama", "torch-zip", "2GB", "llama_bin_single"},
  };
  const std::string root = scratch("cli_convert");
  std::vector<std::string> outs(runs.size());
  std::vector<RunResult> converted(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    const Run& r = runs[i];
    outs[i] = root + "/" + r.like;
    converted[i] = ckptio_cli({"convert", model(r.model)["pt"], outs[i], "--format", r.format,
                               "--option", "max_shard_size=" + r.size});
  }
  std::vector<HfJob> jobs;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (succeeded(converted[i]) && fs::is_directory(outs[i])) add_config(runs[i].model, outs[i]);
    jobs.push_back({outs[i], runs[i].model, runs[i].like});
  }
  const auto checked = check_hf(jobs, "cli_convert");
  for (size_t i = 0; i < runs.size(); ++i) {
    SCOPED_TRACE(outs[i]);
    ASSERT_TRUE(succeeded(converted[i])) << converted[i].describe();
    ASSERT_TRUE(fs::is_directory(outs[i]));
    EXPECT_EQ(checked[i], "");
    // ckptio reads back what it wrote.
    try {
      auto diffs = compare(ckptio::load(outs[i]), expected_of_model(runs[i].model));
      EXPECT_TRUE(diffs.empty()) << join(diffs);
    } catch (const ckptio::Error& e) {
      ADD_FAILURE() << e.what();
    }
  }
}

// Any readable form converts to any writable one: sharded directories and indexes to one
// file, and to shards of the other kind.
TEST_F(HfSharded, CliConvertsShardsToOtherForms) {
  const std::string root = scratch("cli_from_shards");
  for (const char* name : {"llama_st_sharded", "llama_bin_sharded", "bert_st_sharded"}) {
    const json& c = case_named(name);
    const ExpectedMap want = read_expected(c["expected"]);
    for (const auto& [in, out, fmt] : std::vector<std::tuple<std::string, std::string, std::string>>{
             {c["dir"], root + "/" + name + ".pt", "torch-zip"},
             {c["index"], root + "/" + name + ".idx.safetensors", "safetensors"},
             {c["dir"], root + "/" + name + ".legacy.pt", "torch-legacy"}}) {
      SCOPED_TRACE(in + " -> " + out);
      RunResult r = ckptio_cli({"convert", in, out, "--format", fmt});
      ASSERT_TRUE(succeeded(r)) << r.describe();
      ASSERT_TRUE(fs::is_regular_file(out));
      try {
        auto diffs = compare(ckptio::load(out), want);
        EXPECT_TRUE(diffs.empty()) << join(diffs);
      } catch (const ckptio::Error& e) {
        ADD_FAILURE() << e.what();
      }
    }
    // safetensors shards -> .bin shards and back, with the same split.
    const std::string other = root + "/" + name + ".other";
    const bool st = c["kind"] == "safetensors";
    RunResult r = ckptio_cli({"convert", c["dir"], other, "--format", st ? "torch-zip" : "safetensors",
                              "--option", "max_shard_size=" + c["max_shard_size"].get<std::string>()});
    ASSERT_TRUE(succeeded(r)) << r.describe();
    try {
      const ckptio::Checkpoint back = ckptio::load(other);
      EXPECT_EQ(back.format, st ? "torch-zip" : "safetensors");
      auto diffs = compare(back, want);
      EXPECT_TRUE(diffs.empty()) << join(diffs);
    } catch (const ckptio::Error& e) {
      ADD_FAILURE() << e.what();
    }
  }
}

// ckptio::save with max_shard_size: of a torch.save'd state_dict (the model's order, so the
// split must be save_pretrained's), and of a loaded sharded checkpoint (whatever order the
// merged dict has: from_pretrained must load it, the split is reported only).
TEST_F(HfSharded, SaveWritesShardsFromPretrainedLoads) {
  struct Save {
    std::string model, input, format, size, like;
    bool compare_split;
  };
  std::vector<Save> saves = {
      {"llama", model("llama")["pt"], "safetensors", "100KB", "llama_st_sharded", true},
      {"bert", model("bert")["pt"], "safetensors", "40KB", "bert_st_sharded", true},
      {"llama", model("llama")["pt"], "torch-zip", "100KB", "llama_bin_sharded", true},
      {"bert", model("bert")["pt"], "torch-zip", "40KB", "bert_bin_sharded", true},
      {"llama", model("llama")["pt"], "safetensors", "50GB", "llama_st_single", true},
      {"llama", case_named("llama_st_sharded")["dir"], "safetensors", "100KB", "llama_st_sharded", false},
      {"bert", case_named("bert_bin_sharded")["index"], "safetensors", "40KB", "bert_st_sharded", false},
      {"llama", case_named("llama_bin_sharded")["dir"], "torch-zip", "100KB", "llama_bin_sharded", false},
  };
  const std::string root = scratch("api_save");
  std::vector<std::string> outs(saves.size()), errors(saves.size());
  for (size_t i = 0; i < saves.size(); ++i) {
    const Save& s = saves[i];
    outs[i] = root + "/" + std::to_string(i) + "_" + s.like;
    try {
      const ckptio::Checkpoint in = ckptio::load(s.input);
      ckptio::SaveOptions so;
      so.format = s.format;
      so.plugin_options = {{"max_shard_size", s.size}};
      ckptio::save(outs[i], in, so);
    } catch (const ckptio::Error& e) {
      errors[i] = e.what();
    }
  }
  // Each directory checked, and those whose split is only reported checked again with it.
  std::vector<HfJob> jobs;
  for (size_t i = 0; i < saves.size(); ++i) {
    if (errors[i].empty() && fs::is_directory(outs[i])) add_config(saves[i].model, outs[i]);
    jobs.push_back({outs[i], saves[i].model, saves[i].compare_split ? saves[i].like : ""});
  }
  for (size_t i = 0; i < saves.size(); ++i)
    if (!saves[i].compare_split) jobs.push_back({outs[i], saves[i].model, saves[i].like});
  const auto checked = check_hf(jobs, "api_save");
  for (size_t i = 0, again = saves.size(); i < saves.size(); ++i) {
    SCOPED_TRACE(saves[i].input + " -> " + outs[i]);
    ASSERT_EQ(errors[i], "");
    ASSERT_TRUE(fs::is_directory(outs[i]));
    EXPECT_EQ(checked[i], "");
    if (!saves[i].compare_split) {
      const std::string& split = checked[again++];
      std::printf("  %s saved again: %s\n", saves[i].input.c_str(),
                  split.empty() ? "split as save_pretrained splits the model"
                                : ("split differently: " + split).c_str());
    }
    // No index for one shard; the index otherwise.
    const json& like = case_named(saves[i].like);
    const auto files = weight_files(outs[i]);
    EXPECT_EQ(files.size(), like["files"].size()) << join(files);
  }
}

// Saving over a directory: files that are not weights (config.json, README.md) are kept
// byte for byte, an earlier save's shards and index are gone, and the result loads.
TEST_F(HfSharded, SavingOverADirectoryKeepsOtherFilesAndDropsStaleShards) {
  const std::string root = scratch("save_over");
  const std::string dir = root + "/model";
  copy_dir(case_named("llama_st_sharded")["dir"], dir);  // 4 shards, index, configs
  write_file(dir + "/README.md", "# a tiny llama\n");
  write_file(dir + "/model-00007-of-00009.safetensors", "stale");  // an older save's
  const auto before = tree_of(dir);
  ckptio::Checkpoint in;
  try {
    in = ckptio::load(model("llama")["pt"]);
  } catch (const ckptio::Error& e) {
    FAIL() << e.what();
  }
  const ExpectedMap want = expected_of_model("llama");
  auto save = [&](const std::string& size, const std::string& format) {
    ckptio::SaveOptions so;
    so.format = format;
    if (!size.empty()) so.plugin_options = {{"max_shard_size", size}};
    try {
      ckptio::save(dir, in, so);
    } catch (const ckptio::Error& e) {
      ADD_FAILURE() << "saving " << format << " " << size << " over " << dir << ": " << e.what();
    }
  };
  // Each state is checked by transformers at the end, from a copy.
  const std::string states = scratch("save_over_states");
  std::vector<HfJob> jobs;
  auto check_later = [&](const std::string& like) {
    const std::string copy = states + "/" + std::to_string(jobs.size()) + "_" + like;
    copy_dir(dir, copy);
    jobs.push_back({copy, "llama", like});
  };
  auto kept = [&]() {
    for (const char* f : {"config.json", "generation_config.json", "README.md"}) {
      ASSERT_TRUE(fs::exists(dir + "/" + f)) << f << " was removed";
      EXPECT_EQ(read_file(dir + "/" + f), before.at(f)) << f << " changed";
    }
    EXPECT_EQ(list_dir(root), std::vector<std::string>{"model"}) << "a temporary beside it";
  };

  save("200KB", "safetensors");  // 4 shards -> 2
  kept();
  EXPECT_EQ(weight_files(dir), (std::vector<std::string>{"model-00001-of-00002.safetensors",
                                                         "model-00002-of-00002.safetensors",
                                                         "model.safetensors.index.json"}));
  check_later("llama_st_2shards");

  save("50GB", "safetensors");  // 2 shards -> one file, and no index naming the old shards
  kept();
  EXPECT_EQ(weight_files(dir), std::vector<std::string>{"model.safetensors"});
  try {
    auto diffs = compare(ckptio::load(dir), want);
    EXPECT_TRUE(diffs.empty()) << join(diffs);
  } catch (const ckptio::Error& e) {
    ADD_FAILURE() << e.what();
  }
  check_later("llama_st_single");

  save("100KB", "safetensors");  // one file -> 4 shards again: model.safetensors must go
  kept();
  EXPECT_EQ(weight_files(dir), case_named("llama_st_sharded")["files"].get<std::vector<std::string>>());
  check_later("llama_st_sharded");

  // The CLI does the same over the directory.
  write_file(dir + "/model-00003-of-00003.safetensors", "stale");
  RunResult r = ckptio_cli({"convert", model("llama")["pt"], dir, "--format", "safetensors", "--option",
                  "max_shard_size=200KB"});
  ASSERT_TRUE(succeeded(r)) << r.describe();
  kept();
  EXPECT_EQ(weight_files(dir), (std::vector<std::string>{"model-00001-of-00002.safetensors",
                                                         "model-00002-of-00002.safetensors",
                                                         "model.safetensors.index.json"}));
  check_later("llama_st_2shards");

  const auto checked = check_hf(jobs, "save_over");
  for (size_t i = 0; i < jobs.size(); ++i) EXPECT_EQ(checked[i], "") << jobs[i].dir;
}

// `convert` without --format: the output's name decides, and stderr says what it chose.
TEST_F(HfSharded, ConvertWithoutFormatTakesItFromTheName) {
  const std::string root = scratch("convert_by_name");
  const std::string pt = model("llama")["pt"];
  const ExpectedMap want = expected_of_model("llama");
  auto format_of = [](const std::string& path) -> std::string {
    RunResult r = ckptio_cli({"inspect", path, "--json"});
    if (!succeeded(r)) return "inspect failed: " + r.err;
    json doc = json::parse(r.out, nullptr, false);
    return doc.is_discarded() ? "not JSON" : doc.value("format", "no format");
  };
  for (const auto& [name, fmt] : std::vector<std::pair<std::string, std::string>>{
           {"x.safetensors", "safetensors"}, {"x.pt", "torch-zip"}, {"x.pth", "torch-zip"},
           {"x.bin", "torch-zip"}, {"x.ckpt", "torch-zip"}}) {
    const std::string out = root + "/" + name;
    RunResult r = ckptio_cli({"convert", pt, out});
    ASSERT_TRUE(succeeded(r)) << r.describe();
    EXPECT_NE(r.err.find(fmt), std::string::npos) << name << ": stderr does not say " << fmt
                                                   << ": " << r.err;
    ASSERT_TRUE(fs::is_regular_file(out)) << name;
    EXPECT_EQ(format_of(out), fmt) << name;
  }
  // A name ending in '/' and an existing directory: safetensors shards (one file at the
  // default 50GB), and with max_shard_size the shards save_pretrained writes.
  fs::create_directories(root + "/existing");
  for (const auto& [arg, dir, size, like] :
       std::vector<std::tuple<std::string, std::string, std::string, std::string>>{
           {root + "/new/", root + "/new", "", "llama_st_single"},
           {root + "/existing", root + "/existing", "", "llama_st_single"},
           {root + "/sharded/", root + "/sharded", "100KB", "llama_st_sharded"}}) {
    SCOPED_TRACE(arg);
    std::vector<std::string> argv = {"convert", pt, arg};
    if (!size.empty()) {
      argv.push_back("--option");
      argv.push_back("max_shard_size=" + size);
    }
    RunResult r = ckptio_cli(argv);
    ASSERT_TRUE(succeeded(r)) << r.describe();
    EXPECT_NE(r.err.find("safetensors"), std::string::npos) << "stderr: " << r.err;
    ASSERT_TRUE(fs::is_directory(dir));
    EXPECT_EQ(weight_files(dir), case_named(like)["files"].get<std::vector<std::string>>());
    EXPECT_EQ(format_of(dir), "safetensors");
    try {
      auto diffs = compare(ckptio::load(dir), want);
      EXPECT_TRUE(diffs.empty()) << join(diffs);
    } catch (const ckptio::Error& e) {
      ADD_FAILURE() << e.what();
    }
  }
  // Any other name is an error that writes nothing.
  for (const std::string name : {"x.unknown", "plain_name"}) {
    RunResult r = ckptio_cli({"convert", pt, root + "/" + name});
    EXPECT_TRUE(fails_in_one_line(r, {name})) << name;
    EXPECT_FALSE(fs::exists(root + "/" + name)) << name;
  }
}

// The root of `inspect --json`, its entries sorted by key, a "__metadata__" entry dropped.
json sorted_root(json v) {
  if (!v.is_object() || !v.contains("dict")) return v;
  std::vector<json> items;
  for (const auto& kv : v["dict"])
    if (kv[0] != "__metadata__") items.push_back(kv);
  std::sort(items.begin(), items.end(), [](const json& a, const json& b) { return a[0] < b[0]; });
  v["dict"] = items;
  return v;
}

TEST_F(HfSharded, InspectAndVerifyTakeDirectoriesAndIndexes) {
  for (const auto& c : m_["cases"]) {
    const json want = sorted_root(read_json(c["inspect"]));
    for (const auto& path : paths_of(c)) {
      SCOPED_TRACE(path);
      RunResult j = ckptio_cli({"inspect", path, "--json"});
      ASSERT_TRUE(succeeded(j)) << j.describe();
      json doc = json::parse(j.out, nullptr, false);
      ASSERT_FALSE(doc.is_discarded()) << j.out.substr(0, 300);
      EXPECT_EQ(doc["format"], c["format"].get<std::string>());
      auto diffs = json_diff(sorted_root(doc["root"]), want);
      EXPECT_TRUE(diffs.empty()) << diff_text(diffs);
      RunResult t = ckptio_cli({"inspect", path});
      ASSERT_TRUE(succeeded(t)) << t.describe();
      EXPECT_NE(t.out.find(c["format"].get<std::string>()), std::string::npos) << t.out.substr(0, 300);
      for (const auto& [k, f] : c["weight_map"].items())
        EXPECT_NE(t.out.find(k), std::string::npos) << "inspect shows no '" << k << "'";
      RunResult v = ckptio_cli({"verify", path});
      EXPECT_TRUE(succeeded(v)) << v.describe();
    }
  }
}

// verify on a directory checks every shard and names the damaged one.
TEST_F(HfSharded, VerifyNamesTheDamagedShard) {
  {
    const json& c = case_named("llama_bin_sharded");
    const std::string dir = scratch("verify_bin");
    copy_dir(c["dir"], dir);
    const ExpectedMap want = read_expected(c["expected"]);
    const std::string shard = "pytorch_model-00002-of-00004.bin";
    std::string key;
    for (const auto& [k, f] : c["weight_map"].items())
      if (f == shard && key.empty()) key = k;
    ASSERT_GE(corrupt(dir + "/" + shard, want.at(key).bytes), 1);
    RunResult v = ckptio_cli({"verify", dir});
    EXPECT_TRUE(v.exited && v.exit_code == 1) << v.describe();
    EXPECT_TRUE(v.err.find(shard) != std::string::npos || v.out.find(shard) != std::string::npos)
        << "names no " << shard << ": " << v.describe() << v.out;
    RunResult i = ckptio_cli({"verify", dir + "/pytorch_model.bin.index.json"});
    EXPECT_TRUE(i.exited && i.exit_code == 1) << i.describe();
  }
  {
    const json& c = case_named("llama_st_sharded");
    const std::string dir = scratch("verify_st");
    copy_dir(c["dir"], dir);
    const std::string shard = "model-00003-of-00004.safetensors";
    write_file(dir + "/" + shard, read_file(dir + "/" + shard) + std::string(8, '\0'));
    RunResult v = ckptio_cli({"verify", dir});
    EXPECT_TRUE(v.exited && v.exit_code == 1) << v.describe();
    EXPECT_TRUE(v.err.find(shard) != std::string::npos || v.out.find(shard) != std::string::npos)
        << "names no " << shard << ": " << v.describe() << v.out;
  }
}

#ifdef CKPTIO_TEST_WITH_TORCH
// A module with a parameter at every dotted key (nested submodules by name).
std::shared_ptr<torch::nn::Module> module_for(const ExpectedMap& want,
                                              const std::map<std::string, torch::Dtype>& dtypes) {
  auto root = std::make_shared<torch::nn::Module>();
  for (const auto& [key, e] : want) {
    std::vector<std::string> parts;
    for (size_t at = 0;;) {
      size_t dot = key.find('.', at);
      parts.push_back(key.substr(at, dot == std::string::npos ? std::string::npos : dot - at));
      if (dot == std::string::npos) break;
      at = dot + 1;
    }
    torch::nn::Module* m = root.get();
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      auto children = m->named_children();
      if (auto* child = children.find(parts[i])) {
        m = child->get();
      } else {
        m = m->register_module(parts[i], std::make_shared<torch::nn::Module>()).get();
      }
    }
    m->register_parameter(parts.back(), torch::zeros(e.shape, dtypes.at(e.dtype)));
  }
  return root;
}

std::string bytes_of(const torch::Tensor& t) {
  torch::Tensor c = t.detach().contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

TEST_F(HfSharded, LibTorchLoadAndLoadStateDictTakeDirectories) {
  const std::map<std::string, torch::Dtype> dtypes = {{"float32", torch::kFloat32},
                                                      {"bfloat16", torch::kBFloat16}};
  for (const auto& c : m_["cases"]) {
    const ExpectedMap want = read_expected(c["expected"]);
    for (const auto& path : {c["dir"].get<std::string>(), paths_of(c).back()}) {
      SCOPED_TRACE(path);
      try {
        ckptio::TorchCheckpoint tc = ckptio::load(path, ckptio::TorchLoadOptions{});
        const ckptio::StateDict sd = tc.state_dict();
        std::set<std::string> keys;
        for (const auto& item : sd) {
          if (item.key() == "__metadata__") continue;
          keys.insert(item.key());
          auto it = want.find(item.key());
          if (it == want.end()) continue;
          EXPECT_EQ(item.value().scalar_type(), dtypes.at(it->second.dtype)) << item.key();
          EXPECT_EQ(item.value().sizes().vec(), it->second.shape) << item.key();
          EXPECT_TRUE(bytes_of(item.value()) == it->second.bytes) << item.key() << " differs";
        }
        std::set<std::string> want_keys;
        for (const auto& [k, e] : want) want_keys.insert(k);
        EXPECT_EQ(keys, want_keys);

        auto module = module_for(want, dtypes);
        const ckptio::LoadStateDictReport rep = ckptio::load_state_dict(*module, path);
        EXPECT_TRUE(rep.ok());
        EXPECT_EQ(rep.read_in_place.size(), want.size())
            << "CPU tensors of the checkpoint's dtype are read in place";
        for (const auto& item : module->named_parameters()) {
          auto it = want.find(item.key());
          ASSERT_NE(it, want.end()) << item.key();
          EXPECT_TRUE(bytes_of(item.value()) == it->second.bytes) << item.key() << " differs";
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    }
  }
}
#endif

// ---- bad input ------------------------------------------------------------------------------

class HfShardedBadInput : public HfSharded, public ::testing::WithParamInterface<std::string> {};

// Each fails with exit 1 and one line (inspect, verify, convert: no output left), and in
// process with one ckptio::Error, naming the file and the tensor.
TEST_P(HfShardedBadInput, FailsInOneLineNamingTheFileAndTensor) {
  const json* bad = nullptr;
  for (const auto& b : m_["bad"])
    if (b["name"] == GetParam()) bad = &b;
  ASSERT_NE(bad, nullptr) << "make_hf_cases.py made no case " << GetParam();
  const std::string path = (*bad)["path"];
  const auto expect = (*bad)["expect"].get<std::vector<std::string>>();
  const auto any = (*bad)["expect_any"].get<std::vector<std::string>>();
  const bool lenient = bad->value("lenient", false);
  auto names_one = [&](const std::string& msg) {
    return any.empty() || std::any_of(any.begin(), any.end(), [&](const std::string& f) {
             return msg.find(f) != std::string::npos;
           });
  };

  RunResult r = ckptio_cli({"inspect", path});
  ASSERT_TRUE(r.exited) << "crashed or hung: " << r.describe();  // before loading in-process
  if (lenient && succeeded(r)) {
    std::printf("  %s: read without an error\n", GetParam().c_str());
  } else {
    EXPECT_TRUE(fails_in_one_line(r, expect));
    EXPECT_TRUE(names_one(r.err)) << "names none of " << join(any) << ": " << r.err;
  }
  RunResult v = ckptio_cli({"verify", path});
  ASSERT_TRUE(v.exited) << "crashed or hung: " << v.describe();
  if (!lenient) {
    EXPECT_EQ(v.exit_code, 1) << v.describe();
  }

  const std::string out_dir = scratch("bad_" + GetParam());
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {"convert", path, out_dir + "/out.safetensors", "--format", "safetensors"},
           {"convert", path, out_dir + "/shards", "--format", "safetensors", "--option",
            "max_shard_size=1KB"}}) {
    RunResult c = ckptio_cli(argv);
    ASSERT_TRUE(c.exited) << "crashed or hung: " << c.describe();
    if (lenient) continue;
    EXPECT_TRUE(fails_in_one_line(c, expect));
    EXPECT_EQ(list_dir(out_dir), std::vector<std::string>{}) << "convert left something";
  }

  try {
    ckptio::Checkpoint got = ckptio::load(path);
    if (!lenient) ADD_FAILURE() << "ckptio::load(" << path << ") succeeded";
  } catch (const ckptio::Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    for (const auto& f : expect) EXPECT_NE(msg.find(f), std::string::npos) << "no '" << f << "' in: " << msg;
    EXPECT_TRUE(names_one(msg)) << "names none of " << join(any) << ": " << msg;
  }
  try {
    auto reader = ckptio::Reader::open(path);
    // Reading every storage must fail where opening did not.
    std::vector<uint32_t> all(reader->tree().storages.size());
    for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
    reader->read_storages(all);
    if (!lenient) ADD_FAILURE() << "Reader read every storage of " << path;
  } catch (const ckptio::Error& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

const char* const kBadCases[] = {
    "missing_shard", "missing_shard_via_index", "index_names_absent_tensor",
    "tensor_in_two_shards", "shard_holds_unindexed_tensor", "traversal", "traversal_inner",
    "absolute", "symlink_outside", "symlink_dir_outside", "lying_header_length",
    "lying_header_offsets", "truncated_shard", "truncated_header", "header_over_limit",
    "index_not_json", "index_weight_map_not_object", "index_file_not_string",
    "bin_missing_shard", "bin_missing_shard_via_index", "bin_traversal",
    "bin_index_names_absent_tensor", "bin_truncated_shard"};

INSTANTIATE_TEST_SUITE_P(Cases, HfShardedBadInput,
                         ::testing::ValuesIn(std::vector<std::string>(std::begin(kBadCases),
                                                                      std::end(kBadCases))),
                         [](const auto& info) { return info.param; });

TEST_F(HfSharded, EveryBadCaseIsTested) {
  std::set<std::string> tested(std::begin(kBadCases), std::end(kBadCases));
  for (const auto& b : m_["bad"]) EXPECT_TRUE(tested.count(b["name"])) << b["name"] << " untested";
}

// ---- failed saves ---------------------------------------------------------------------------

// A save that fails after it started (a tensor safetensors cannot hold in the last shard, a
// non-tensor value, storages never read) leaves the existing target directory as it was and
// nothing beside it; over no target it leaves nothing at all.
TEST_F(HfSharded, FailedSaveLeavesTheTargetUnchanged) {
  ckptio::Checkpoint base;
  try {
    base = ckptio::load(model("llama")["pt"]);
  } catch (const ckptio::Error& e) {
    FAIL() << e.what();
  }
  // A complex128 tensor last: safetensors has no such dtype.
  ckptio::Checkpoint complex = base;
  complex.tree.root = std::make_shared<ckptio::Value>(*base.tree.root);
  {
    auto buf = std::make_shared<std::vector<uint8_t>>(4 * 16, 0x11);
    ckptio::TensorMeta t;
    t.dtype = ckptio::DType::kComplex128;
    t.shape = {4};
    t.strides = {1};
    t.storage = static_cast<uint32_t>(complex.tree.storages.size());
    complex.tree.storages.push_back({"complex", ckptio::DType::kComplex128, 64, "cpu"});
    ckptio::StorageBytes sb;
    sb.data = buf->data();
    sb.size = buf->size();
    sb.owner = buf;
    complex.storages.push_back(sb);
    complex.tree.root->entries.emplace_back(ckptio::Value::str("zz.complex"),
                                            ckptio::Value::make_tensor(t));
  }
  ckptio::Checkpoint not_tensor = base;
  not_tensor.tree.root = std::make_shared<ckptio::Value>(*base.tree.root);
  not_tensor.tree.root->entries.emplace_back(ckptio::Value::str("zz.step"),
                                             ckptio::Value::integer(7));
  // Only the first storage read: the later shards have no bytes to write.
  ckptio::Checkpoint unread;
  try {
    auto reader = ckptio::Reader::open(model("llama")["pt"]);
    reader->storage(0);
    unread = reader->checkpoint();
  } catch (const ckptio::Error& e) {
    FAIL() << e.what();
  }

  struct Failing {
    std::string what;
    const ckptio::Checkpoint* ckpt;
    std::string format;
  };
  const std::vector<Failing> failing = {{"complex128", &complex, "safetensors"},
                                        {"int value", &not_tensor, "safetensors"},
                                        {"unread storages", &unread, "safetensors"},
                                        {"unread storages", &unread, "torch-zip"}};
  for (const auto& f : failing) {
    for (bool existing : {true, false}) {
      SCOPED_TRACE(f.what + " as " + f.format + (existing ? " over a directory" : " to a new one"));
      const std::string root = scratch("failed_save");
      const std::string dir = root + "/model";
      if (existing) copy_dir(case_named("llama_st_sharded")["dir"], dir);
      const auto before = tree_of(root);
      ckptio::SaveOptions so;
      so.format = f.format;
      so.plugin_options = {{"max_shard_size", "100KB"}};
      try {
        ckptio::save(dir, *f.ckpt, so);
        ADD_FAILURE() << "the save succeeded";
      } catch (const ckptio::Error& e) {
        std::printf("  %s as %s: %s\n", f.what.c_str(), f.format.c_str(), e.what());
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(dir), std::string::npos) << "names no " << dir << ": " << e.what();
      }
      const auto after = tree_of(root);
      EXPECT_EQ(names_of(after), names_of(before));
      EXPECT_TRUE(after == before) << "the target's files changed";
    }
  }
}

// A parent the saver cannot write: no temporary directory can be made beside the target, so
// the save fails, and the target, which the saver may write, must not have been written in
// place. As root (permissions stop no write) the CLI runs as nobody through setpriv, owning
// the target but not its parent.
void chown_tree(const std::string& dir, uid_t uid, gid_t gid) {
  ASSERT_EQ(::lchown(dir.c_str(), uid, gid), 0) << dir;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    ASSERT_EQ(::lchown(e.path().c_str(), uid, gid), 0) << e.path();
}

TEST_F(HfSharded, FailedSaveUnderAReadOnlyParentLeavesTheTargetUnchanged) {
  const std::string pt = model("llama")["pt"];
  const std::string root = scratch("failed_save_ro");
  const std::string dir = root + "/model";
  copy_dir(case_named("llama_st_sharded")["dir"], dir);
  write_file(dir + "/model-00007-of-00009.safetensors", "stale");  // a save would drop it
  const auto before = tree_of(root);
  if (::geteuid() != 0) {
    ckptio::Checkpoint base;
    try {
      base = ckptio::load(pt);
    } catch (const ckptio::Error& e) {
      FAIL() << e.what();
    }
    ASSERT_EQ(::chmod(root.c_str(), 0555), 0);
    ckptio::SaveOptions so;
    so.format = "safetensors";
    so.plugin_options = {{"max_shard_size", "200KB"}};
    try {
      ckptio::save(dir, base, so);
      ADD_FAILURE() << "saved under a read-only parent";
    } catch (const ckptio::Error& e) {
      std::printf("  %s\n", e.what());
      EXPECT_NE(std::string(e.what()).find(dir), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
    ::chmod(root.c_str(), 0755);
  } else {
    const char* setpriv = "/usr/bin/setpriv";
    if (::access(setpriv, X_OK) != 0)
      GTEST_SKIP() << "running as root without " << setpriv << ": a read-only parent stops no"
                   << " write of root's";
    const uid_t nobody = 65534;
    chown_tree(dir, nobody, nobody);
    RunResult r = run({setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", cli(),
                       "convert", pt, dir, "--format", "safetensors", "--option",
                       "max_shard_size=200KB"},
                      kCliTimeoutS);
    std::printf("  %s", r.err.c_str());
    chown_tree(dir, 0, 0);
    EXPECT_TRUE(fails_in_one_line(r, {dir}));
  }
  EXPECT_TRUE(tree_of(root) == before) << "the target's files changed: now "
                                       << join(names_of(tree_of(root)));
  EXPECT_EQ(list_dir(root), std::vector<std::string>{"model"}) << "a temporary beside it";
}

}  // namespace
}  // namespace interop

int main(int argc, char** argv) { return interop::interop_main(argc, argv, interop::prepare); }
