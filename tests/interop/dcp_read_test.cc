// torch.distributed.checkpoint (DCP) directories read by the dcp plugin (plugins/dcp/) as one
// state dict, against real torch 2.13 (CKPTIO_TEST_PYTHON) at test time
// (py/make_dcp_cases.py): dcp.save in one process (several dtypes, a 0-dim tensor, a
// transposed view, nested dicts, lists, an int, a float, None), one file per item, and 2 real
// ranks (gloo) saving DTensors sharded by rows (uneven) and by columns. ckptio::load of the
// directory and of its .metadata must equal, key for key and byte for byte, what
// format_utils.dcp_to_torch_save writes (that .pt read by ckptio's torch-zip plugin); a
// Reader assembles any byte range of a sharded tensor; a key selection opens only the files
// holding it; `ckptio inspect DIR` works; bad input (a ".." path, a missing .distcp, an item
// past its file's end, an item that is no zip, a chunk holding another tensor, the zstd
// stream transform, a stream.zstd/1 item that is no zstd stream) fails with one line naming
// the file and the key. Copies of the single-process and 2-rank cases with every item
// through the stream.zstd/1 transform read the same values.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ckptio/ckptio.h"
#include "interop_util.h"
#include "tensor_bytes.h"

namespace interop {
namespace {
namespace fs = std::filesystem;

std::string prepare(const std::string& dir) {
  RunResult made = run({kPython, py_script("make_dcp_cases.py"), "make", dir}, 300);
  if (made.exited && made.exit_code == 3 &&
      made.err.find("no torch.distributed.checkpoint.format_utils") != std::string::npos) {
    write_file(dir + "/skipped", made.err);  // a torch older than 2.5 (Debian's 1.13)
    return "";
  }
  return made.exited && made.exit_code == 0 ? "" : made.describe();
}

std::string key_text(const ckptio::ValuePtr& k) {
  if (!k) return "<null>";
  if (k->kind == ckptio::Kind::kStr) return "'" + k->s + "'";
  if (k->kind == ckptio::Kind::kInt) return std::to_string(k->i);
  return std::string("<") + ckptio::kind_name(k->kind) + ">";
}

// Differences between two values (ckptio's read of the DCP directory and of the reference
// .pt), one line each with its path. Tensors: dtype, shape and the elements' bytes; the
// flags torch.empty leaves (plain tensors, no grad) too.
void compare(const ckptio::Checkpoint& gc, const ckptio::ValuePtr& g, const ckptio::Checkpoint& wc,
             const ckptio::ValuePtr& w, const std::string& path, std::vector<std::string>& out) {
  if (!g || !w) {
    if (g != w) out.push_back(path + ": null on one side");
    return;
  }
  if (g->kind != w->kind) {
    out.push_back(path + ": " + ckptio::kind_name(g->kind) + ", want " + ckptio::kind_name(w->kind));
    return;
  }
  using ckptio::Kind;
  switch (g->kind) {
    case Kind::kNone: return;
    case Kind::kBool:
      if (g->b != w->b) out.push_back(path + ": bool differs");
      return;
    case Kind::kInt:
      if (g->i != w->i)
        out.push_back(path + ": " + std::to_string(g->i) + ", want " + std::to_string(w->i));
      return;
    case Kind::kFloat:
      if (!(g->f == w->f)) out.push_back(path + ": float differs");
      return;
    case Kind::kStr:
    case Kind::kBytes:
    case Kind::kBigInt:
    case Kind::kGlobal:
      if (g->s != w->s) out.push_back(path + ": '" + g->s + "', want '" + w->s + "'");
      return;
    case Kind::kList:
    case Kind::kTuple:
      if (g->items.size() != w->items.size()) {
        out.push_back(path + ": " + std::to_string(g->items.size()) + " items, want " +
                      std::to_string(w->items.size()));
        return;
      }
      for (size_t i = 0; i < g->items.size(); ++i)
        compare(gc, g->items[i], wc, w->items[i], path + "[" + std::to_string(i) + "]", out);
      return;
    case Kind::kDict: {
      std::vector<std::string> gk, wk;
      for (const auto& [k, v] : g->entries) gk.push_back(key_text(k));
      for (const auto& [k, v] : w->entries) wk.push_back(key_text(k));
      if (gk != wk) {
        std::string a, b;
        for (const auto& k : gk) a += k + " ";
        for (const auto& k : wk) b += k + " ";
        out.push_back(path + ": keys " + a + "want " + b);
        return;
      }
      for (size_t i = 0; i < g->entries.size(); ++i)
        compare(gc, g->entries[i].second, wc, w->entries[i].second,
                path + "[" + gk[i] + "]", out);
      return;
    }
    case Kind::kTensor: {
      const ckptio::TensorMeta &a = g->tensor, &b = w->tensor;
      if (a.dtype != b.dtype)
        out.push_back(path + ": dtype " + std::string(ckptio::dtype_name(a.dtype)) + ", want " +
                      std::string(ckptio::dtype_name(b.dtype)));
      if (a.shape != b.shape) out.push_back(path + ": shape differs");
      if (a.requires_grad != b.requires_grad || a.is_parameter != b.is_parameter)
        out.push_back(path + ": flags differ");
      auto x = tensor_bytes(gc, a), y = tensor_bytes(wc, b);
      if (!x || !y) out.push_back(path + ": bytes not loaded");
      else if (*x != *y) out.push_back(path + ": values differ");
      return;
    }
    case Kind::kObject:
      out.push_back(path + ": an object");
      return;
  }
}

std::vector<std::string> compare(const ckptio::Checkpoint& got, const ckptio::Checkpoint& want) {
  std::vector<std::string> out;
  compare(got, got.tree.root, want, want.tree.root, "root", out);
  return out;
}

// An `inspect --json` value with only the contract keys of each tensor (json_diff's).
json contract_only(const json& v) {
  if (v.is_object()) {
    if (v.size() == 1 && v.contains("tensor") && v["tensor"].is_object()) {
      json kept = json::object();
      for (const char* k : {"dtype", "shape", "device", "sha256"})
        if (v["tensor"].contains(k)) kept[k] = v["tensor"][k];
      return json{{"tensor", kept}};
    }
    json o = json::object();
    for (auto it = v.begin(); it != v.end(); ++it) o[it.key()] = contract_only(it.value());
    return o;
  }
  if (v.is_array()) {
    json a = json::array();
    for (const auto& x : v) a.push_back(contract_only(x));
    return a;
  }
  return v;
}

class DcpRead : public ::testing::Test {
 protected:
  void SetUp() override {
    if (fs::exists(work_dir() + "/skipped"))
      GTEST_SKIP() << "the tests' Python cannot make the cases: " << read_file(work_dir() + "/skipped");
    m_ = read_json(work_dir() + "/manifest.json");
  }
  bool has_case(const std::string& name) const {
    for (const auto& c : m_["cases"])
      if (c["name"] == name) return true;
    return false;
  }
  const json& case_named(const std::string& name) const {
    for (const auto& c : m_["cases"])
      if (c["name"] == name) return c;
    ADD_FAILURE() << "no case " << name;
    static const json none;
    return none;
  }
  json m_;
};

TEST_F(DcpRead, CasesAreShardedAsIntended) {
  std::printf("  torch %s\n", m_["torch"].get<std::string>().c_str());
  EXPECT_EQ(m_["torch"].get<std::string>().rfind("2.", 0), 0u);
  const json& ranks = case_named("ranks");
  EXPECT_EQ(ranks["files"], json({".metadata", "__0_0.distcp", "__1_0.distcp"}));
  EXPECT_EQ(ranks["chunks"]["rows"], 2);
  EXPECT_EQ(ranks["chunks"]["cols"], 2);
  EXPECT_EQ(ranks["chunks"]["model.ids"], 2);
  EXPECT_EQ(ranks["chunks"]["cube"], 2);
  EXPECT_EQ(ranks["chunks"]["rep"], 1);
  EXPECT_GT(case_named("per_item")["files"].size(), 10u);
  EXPECT_EQ(case_named("single")["files"], json({".metadata", "__0_0.distcp"}));
  // stream.zstd/1 (made with the zstd command: the venv lacks torch's zstandard/pyzstd).
  if (!has_case("ranks_zstd") || !has_case("single_zstd"))
    std::printf("  no stream.zstd/1 cases: no zstd command\n");
  // torch 1.13: flat keys, one file per item (LoadsLikeDcpToTorchSave reads it with the rest).
  const std::string skipped = m_["skipped_113"];
  if (!skipped.empty()) {
    std::printf("  no torch 1.13 case: %s\n", skipped.c_str());
  } else {
    const json& old = case_named("torch113");
    EXPECT_EQ(old["planner_data"], false);
    EXPECT_GT(old["files"].size(), 3u);
  }
}

TEST_F(DcpRead, LoadsLikeDcpToTorchSave) {
  for (const auto& c : m_["cases"]) {
    const std::string dir = c["dir"];
    const ckptio::Checkpoint want = ckptio::load(c["pt"].get<std::string>());
    ASSERT_EQ(want.format, "torch-zip");
    for (const std::string& path : {dir, dir + "/", dir + "/.metadata"}) {
      SCOPED_TRACE(path);
      try {
        const ckptio::Checkpoint got = ckptio::load(path);
        EXPECT_EQ(got.format, "dcp");
        auto diffs = compare(got, want);
        EXPECT_TRUE(diffs.empty()) << join(diffs);
      } catch (const ckptio::Error& e) {
        ADD_FAILURE() << "ckptio::load: " << e.what();
      }
    }
    // The same values when the single-chunk tensors alias the files' mapping.
    ckptio::LoadOptions zc;
    zc.zero_copy = true;
    try {
      auto diffs = compare(ckptio::load(dir, zc), want);
      EXPECT_TRUE(diffs.empty()) << dir << " (zero_copy): " << join(diffs);
    } catch (const ckptio::Error& e) {
      ADD_FAILURE() << "ckptio::load(zero_copy) " << dir << ": " << e.what();
    }
  }
}

// Every byte range of every tensor, sharded ones above all, read through Reader::read_range
// (the plugin's read_storage for assembled storages) equals the same range of the reference;
// in the single-process case too (a transposed view is gathered through its strides).
TEST_F(DcpRead, ReaderAssemblesAnyByteRangeOfAShardedTensor) {
  for (const std::string name : {"ranks", "single", "ranks_zstd", "single_zstd"}) {
    SCOPED_TRACE(name);
    if (name.find("zstd") != std::string::npos && !has_case(name)) continue;
    const bool ranks = name.rfind("ranks", 0) == 0;
    const bool zstd = name.find("zstd") != std::string::npos;
    const json& c = case_named(name);
    const ckptio::Checkpoint want = ckptio::load(c["pt"].get<std::string>());
    auto r = ckptio::Reader::open(c["dir"].get<std::string>());
    ASSERT_EQ(r->format(), "dcp");
    std::map<std::string, ckptio::TensorMeta> got_t, want_t;
    auto collect = [](const ckptio::Tree& t, std::map<std::string, ckptio::TensorMeta>& into) {
      ckptio::for_each_tensor(t.root, [&](const ckptio::ValuePtr& v, const std::string& path) {
        into[path] = v->tensor;
      });
    };
    collect(r->tree(), got_t);
    collect(want.tree, want_t);
    ASSERT_EQ(got_t.size(), ranks ? 6u : 17u);
    ASSERT_EQ(got_t.size(), want_t.size());
    int sharded = 0;
    for (const auto& [path, t] : got_t) {
      SCOPED_TRACE(path);
      ASSERT_TRUE(want_t.count(path));
      const std::string ref = tensor_bytes(want, want_t[path]).value_or("<unread>");
      ASSERT_EQ(r->tree().storages.at(t.storage).nbytes, ref.size());
      const bool plain = r->plain(t.storage);
      sharded += !plain;
      // A sharded tensor is assembled, a single chunk saved contiguous is read in place
      // (unless compressed).
      if (zstd)
        EXPECT_FALSE(plain);
      else if (ranks)
        EXPECT_EQ(plain, path.find("rows") == std::string::npos &&
                             path.find("cols") == std::string::npos &&
                             path.find("ids") == std::string::npos &&
                             path.find("cube") == std::string::npos);
      else
        EXPECT_EQ(plain, path.find("t_view") == std::string::npos &&
                             path.find("empty") == std::string::npos);
      const uint64_t n = ref.size();
      for (uint64_t off = 0; off < n; off += (off % 3) + 1) {
        for (uint64_t len : {uint64_t(1), uint64_t(5), uint64_t(17), n - off}) {
          if (len > n - off) continue;
          std::string buf(len, '\xEE');
          ckptio::Status st = r->read_range(t.storage, off, buf.data(), len);
          ASSERT_TRUE(st.ok()) << st.message();
          ASSERT_EQ(buf, ref.substr(off, len)) << "bytes [" << off << ", " << off + len << ")";
        }
      }
    }
    EXPECT_EQ(sharded, zstd ? int(got_t.size()) : ranks ? 4 : 2);
  }
}

// The box [offsets, offsets + sizes) of a row-major tensor's bytes.
std::string box_of(const std::string& whole, const std::vector<int64_t>& shape,
                   const std::vector<int64_t>& offsets, const std::vector<int64_t>& sizes,
                   size_t es) {
  int64_t count = 1;
  for (int64_t s : sizes) count *= s;
  std::string out;
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t k = 0; k < count; ++k) {
    int64_t at = 0;
    for (size_t d = 0; d < shape.size(); ++d) at = at * shape[d] + offsets[d] + idx[d];
    out.append(whole, size_t(at) * es, es);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < sizes[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

// Reader::read_region returns any box of a tensor (a target shard when resharding): the
// whole, halves and the middle along each dim, single elements, across chunk boundaries of
// the 2-rank case, through strides in the single-process one.
TEST_F(DcpRead, ReadRegionReturnsAnyBoxOfATensor) {
  for (const std::string name : {"ranks", "single"}) {
    SCOPED_TRACE(name);
    const json& c = case_named(name);
    const ckptio::Checkpoint want = ckptio::load(c["pt"].get<std::string>());
    std::map<std::string, ckptio::TensorMeta> want_t;
    ckptio::for_each_tensor(want.tree.root, [&](const ckptio::ValuePtr& v, const std::string& p) {
      want_t[p] = v->tensor;
    });
    auto r = ckptio::Reader::open(c["dir"].get<std::string>());
    int boxes = 0;
    ckptio::for_each_tensor(r->tree().root, [&](const ckptio::ValuePtr& v, const std::string& path) {
      SCOPED_TRACE(path);
      const ckptio::TensorMeta& t = v->tensor;
      const std::string whole = tensor_bytes(want, want_t.at(path)).value_or("");
      const size_t es = size_t(ckptio::dtype_size(t.dtype));
      std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> cases = {
          {std::vector<int64_t>(t.shape.size(), 0), t.shape}};
      for (size_t d = 0; d < t.shape.size() && t.numel() > 0; ++d) {
        if (t.shape[d] < 2) continue;
        auto off = std::vector<int64_t>(t.shape.size(), 0);
        auto size = t.shape;
        size[d] = t.shape[d] / 2;
        cases.push_back({off, size});  // the first half along d
        off[d] = 1;
        size[d] = t.shape[d] - 2 > 0 ? t.shape[d] - 2 : 1;
        cases.push_back({off, size});  // the middle along d
        auto last = t.shape;
        for (auto& x : last) x = x > 0 ? x - 1 : 0;
        cases.push_back({last, std::vector<int64_t>(t.shape.size(), 1)});  // the last element
      }
      for (const auto& [off, size] : cases) {
        std::string got(box_of(whole, t.shape, off, size, es).size(), '\xEE');
        ckptio::Status st = r->read_region(t, off, size, got.data());
        ASSERT_TRUE(st.ok()) << st.message();
        EXPECT_EQ(got, box_of(whole, t.shape, off, size, es)) << json(off).dump() << " + " << json(size).dump();
        ++boxes;
      }
    });
    EXPECT_GT(boxes, 20);
    // A box that leaves the tensor is refused in one line.
    std::optional<ckptio::TensorMeta> any;
    ckptio::for_each_tensor(r->tree().root, [&](const ckptio::ValuePtr& v, const std::string&) {
      if (!any && !v->tensor.shape.empty() && v->tensor.numel() > 0) any = v->tensor;
    });
    ASSERT_TRUE(any.has_value());
    const ckptio::TensorMeta rows = *any;
    std::vector<int64_t> past = rows.shape;
    const ckptio::Status st = r->read_region(rows, past, std::vector<int64_t>(past.size(), 1), nullptr);
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find("leaves the tensor in dim 0"), std::string::npos) << st.message();
  }
}

// A box inside rank 0's rows reads rank 0's chunk alone: with the values of rank 1's chunk
// damaged in its file, the box still reads right, and a box crossing into rank 1 does not.
TEST_F(DcpRead, ReadRegionReadsOnlyTheChunksItOverlaps) {
  const json& c = case_named("ranks");
  const ckptio::Checkpoint want = ckptio::load(c["pt"].get<std::string>());
  const ckptio::TensorMeta& rows_ref = want.tree.root->get("rows")->tensor;
  const std::string whole = tensor_bytes(want, rows_ref).value();
  ASSERT_EQ(rows_ref.shape, (std::vector<int64_t>{5, 4}));
  const std::string dir = scratch("region_damaged") + "/ckpt";
  fs::create_directories(dir);
  fs::copy(c["dir"].get<std::string>(), dir, fs::copy_options::recursive);
  // Rows 3 and 4 (5 rows over 2 ranks: 3 and 2) are rank 1's, float32, contiguous in its item.
  const std::string rank1 = read_file(dir + "/__1_0.distcp");
  const std::string theirs = whole.substr(3 * 4 * 4);
  const size_t at = rank1.find(theirs);
  ASSERT_NE(at, std::string::npos) << "rank 1's rows are not in __1_0.distcp";
  std::string damaged = rank1;
  for (size_t i = 0; i < theirs.size(); ++i) damaged[at + i] = char(~damaged[at + i]);
  write_file(dir + "/__1_0.distcp", damaged);
  auto r = ckptio::Reader::open(dir);
  const ckptio::TensorMeta rows = r->tree().root->get("rows")->tensor;
  std::string mine(2 * 4 * 4, '\0');
  ASSERT_TRUE(r->read_region(rows, {1, 0}, {2, 4}, mine.data()).ok());
  EXPECT_EQ(mine, box_of(whole, {5, 4}, {1, 0}, {2, 4}, 4));
  std::string across(3 * 4 * 4, '\0');
  ASSERT_TRUE(r->read_region(rows, {2, 0}, {3, 4}, across.data()).ok());
  EXPECT_NE(across, box_of(whole, {5, 4}, {2, 0}, {3, 4}, 4));
}

// A key selection: only the files of the selected top-level entries are opened (the others
// are deleted from a copy of the one-file-per-item case), and the tree holds the selection.
TEST_F(DcpRead, KeySelectionOpensOnlyTheSelectedItemsFiles) {
  const json& c = case_named("per_item");
  const std::string dir = scratch("selected");
  fs::copy(c["dir"].get<std::string>(), dir, fs::copy_options::recursive);
  std::set<std::string> keep;
  for (const auto& [fqn, files] : c["where"].items())
    if (fqn.rfind("nested.", 0) == 0 || fqn == "step")
      for (const auto& f : files) keep.insert(f.get<std::string>());
  int removed = 0;
  for (const auto& f : list_dir(dir))
    if (f != ".metadata" && !keep.count(f)) removed += fs::remove(dir + "/" + f);
  EXPECT_GT(removed, 10);
  ckptio::LoadOptions o;
  o.keys = {"nested", "step"};
  try {
    const ckptio::Checkpoint got = ckptio::load(dir, o);
    ASSERT_EQ(got.tree.root->kind, ckptio::Kind::kDict);
    std::vector<std::string> keys;
    for (const auto& [k, v] : got.tree.root->entries) keys.push_back(k->s);
    EXPECT_EQ(keys, (std::vector<std::string>{"nested", "step"}));
    const ckptio::Checkpoint want = ckptio::load(c["pt"].get<std::string>(), o);
    auto diffs = compare(got, want);
    EXPECT_TRUE(diffs.empty()) << join(diffs);
  } catch (const ckptio::Error& e) {
    ADD_FAILURE() << "ckptio::load with keys: " << e.what();
  }
  // Without the selection the missing files are missed, naming one.
  try {
    ckptio::load(dir);
    ADD_FAILURE() << "loaded with files missing";
  } catch (const ckptio::Error& e) {
    EXPECT_NE(std::string(e.what()).find(".distcp"), std::string::npos) << e.what();
  }
}

TEST_F(DcpRead, CliInspectsTheDirectoryAndItsMetadata) {
  for (const auto& c : m_["cases"]) {
    const std::string dir = c["dir"];
    SCOPED_TRACE(dir);
    RunResult text = ckptio_cli({"inspect", dir});
    ASSERT_TRUE(text.exited && text.exit_code == 0) << text.describe();
    EXPECT_NE(text.out.find("dcp"), std::string::npos) << text.out;
    RunResult want = ckptio_cli({"inspect", "--json", c["pt"]});
    ASSERT_TRUE(want.exited && want.exit_code == 0) << want.describe();
    for (const std::string& path : {dir, dir + "/.metadata"}) {
      RunResult got = ckptio_cli({"inspect", "--json", path});
      ASSERT_TRUE(got.exited && got.exit_code == 0) << got.describe();
      const json g = json::parse(got.out), w = json::parse(want.out);
      EXPECT_EQ(g["format"], "dcp");
      auto diffs = json_diff(g["root"], contract_only(w["root"]));
      EXPECT_TRUE(diffs.empty()) << path << ": " << diff_text(diffs);
    }
  }
}

// `ckptio convert DIR out.pt` consolidates: torch.load of ckptio's file equals torch.load of
// what dcp_to_torch_save wrote, for every case (sharded, per item, 1.13, zstd).
TEST_F(DcpRead, CliConvertConsolidatesLikeDcpToTorchSave) {
  for (const auto& c : m_["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const std::string out = scratch("consolidate_" + name) + "/out.pt";
    RunResult r = ckptio_cli({"convert", c["dir"], out});
    ASSERT_TRUE(r.exited && r.exit_code == 0) << r.describe();
    RunResult same = run({kPython, py_script("dcp_check.py"), "same", c["pt"], out}, 300);
    EXPECT_TRUE(same.exited && same.exit_code == 0) << same.describe() << same.out;
  }
}

// `ckptio convert in.pt DIR --format dcp` writes a one-rank DCP checkpoint that torch's
// dcp.load and dcp_to_torch_save read equal to the input, and ckptio reads back; saving over
// an earlier checkpoint drops its other ranks' files and keeps files that are not DCP's.
TEST_F(DcpRead, CliConvertWritesDcpThatTorchLoads) {
  for (const std::string name : {"single", "ranks"}) {
    SCOPED_TRACE(name);
    const json& c = case_named(name);
    const std::string dir = scratch("write_" + name) + "/ckpt";
    fs::create_directories(dir);  // an earlier 2-rank save at the target
    fs::copy(case_named("ranks")["dir"].get<std::string>(), dir, fs::copy_options::recursive);
    write_file(dir + "/notes.txt", "kept");
    RunResult r = ckptio_cli({"convert", c["pt"], dir, "--format", "dcp"});
    ASSERT_TRUE(r.exited && r.exit_code == 0) << r.describe();
    EXPECT_EQ(list_dir(dir), (std::vector<std::string>{".metadata", "__0_0.distcp", "notes.txt"}));
    RunResult check = run({kPython, py_script("dcp_check.py"), "check", dir, c["pt"]}, 300);
    EXPECT_TRUE(check.exited && check.exit_code == 0) << check.describe() << check.out;
    try {
      auto diffs = compare(ckptio::load(dir), ckptio::load(c["pt"].get<std::string>()));
      EXPECT_TRUE(diffs.empty()) << join(diffs);
    } catch (const ckptio::Error& e) {
      ADD_FAILURE() << e.what();
    }
  }
  // A checkpoint DCP cannot hold (its root is a list) fails in one line, leaving no
  // directory, and an earlier checkpoint at the target whole.
  const std::string root = scratch("write_refused");
  RunResult made = run({kPython, "-c", "import sys, torch; torch.save([torch.zeros(2)], sys.argv[1])",
                        root + "/list.pt"}, 120);
  ASSERT_TRUE(made.exited && made.exit_code == 0) << made.describe();
  RunResult r = ckptio_cli({"convert", root + "/list.pt", root + "/out", "--format", "dcp"});
  EXPECT_TRUE(fails_in_one_line(r, {"a DCP checkpoint's state dict is a dict"}));
  EXPECT_FALSE(fs::exists(root + "/out"));
  fs::create_directories(root + "/old");
  fs::copy(case_named("single")["dir"].get<std::string>(), root + "/old", fs::copy_options::recursive);
  r = ckptio_cli({"convert", root + "/list.pt", root + "/old", "--format", "dcp"});
  EXPECT_TRUE(fails_in_one_line(r, {"a DCP checkpoint's state dict is a dict"}));
  EXPECT_EQ(list_dir(root + "/old"), case_named("single")["files"].get<std::vector<std::string>>());
  EXPECT_EQ(list_dir(root), (std::vector<std::string>{"list.pt", "old"}));
}

TEST_F(DcpRead, BadInputFailsInOneLineNamingTheFileAndTheKey) {
  ASSERT_GE(m_["bad"].size(), 9u);
  for (const auto& b : m_["bad"]) {
    const std::string dir = b["dir"];
    SCOPED_TRACE(b["name"].get<std::string>());
    std::vector<std::string> expect = b["expect"].get<std::vector<std::string>>();
    expect.push_back(dir);
    RunResult r = ckptio_cli({"inspect", dir});
    std::printf("  %s", r.err.c_str());
    EXPECT_TRUE(fails_in_one_line(r, expect));
    try {
      ckptio::load(dir);
      ADD_FAILURE() << "loaded";
    } catch (const ckptio::Error& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
      for (const auto& f : expect) EXPECT_NE(what.find(f), std::string::npos) << f << ": " << what;
    }
  }
}

// A rank's file cut short anywhere: a one-line error naming it, never a crash.
TEST_F(DcpRead, TruncatedDistcpFailsInOneLine) {
  const json& c = case_named("ranks");
  const std::string dir = scratch("truncated");
  fs::copy(c["dir"].get<std::string>(), dir, fs::copy_options::recursive);
  const std::string file = dir + "/__1_0.distcp";
  const std::string whole = read_file(file);
  ASSERT_GT(whole.size(), 100u);
  for (size_t cut : {size_t(0), size_t(1), size_t(22), whole.size() / 3, whole.size() / 2,
                     whole.size() - 22, whole.size() - 1}) {
    SCOPED_TRACE(cut);
    write_file(file, whole.substr(0, cut));
    try {
      ckptio::load(dir);
      ADD_FAILURE() << "loaded a file cut at " << cut;
    } catch (const ckptio::Error& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
      EXPECT_NE(what.find("__1_0.distcp"), std::string::npos) << what;
    }
  }
}

}  // namespace
}  // namespace interop

int main(int argc, char** argv) { return interop::interop_main(argc, argv, interop::prepare); }
