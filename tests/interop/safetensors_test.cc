// The bundled safetensors plugin (formats/safetensors, plugins/safetensors) against the real
// safetensors library of the tests' Python (CKPTIO_TEST_PYTHON; safetensors 0.8 in the
// venv), both ways: files from safetensors.torch.save_file (every dtype it writes with the
// installed torch, empty and 0-dim tensors, metadata) read by ckptio as load_file and
// safe_open read them; ckptio's conversions of torch.save files read back by load_file and
// safe_open equal to what the reference writes from the same state_dict (byte-identical
// where the reference's output is deterministic); shared storages refused, or deduplicated
// as save_model does; hostile headers refused in one line that the reference refuses too.
// py/make_safetensors_cases.py makes the cases and checks ckptio's outputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "interop_util.h"

namespace interop {
namespace {
namespace fs = std::filesystem;

const char kScript[] = "make_safetensors_cases.py";

std::vector<std::string> convert_argv(const json& c, const std::string& out) {
  std::vector<std::string> argv = {cli(), "convert", c["pt"], out, "--format", "safetensors"};
  for (const auto& o : c["options"]) {
    argv.push_back("--option");
    argv.push_back(o);
  }
  return argv;
}

std::string prepare(const std::string& dir) {
  RunResult made = run({kPython, py_script(kScript), "make", dir}, 300);
  if (made.exited && made.exit_code == 3 &&
      made.err.find("no safetensors module") != std::string::npos) {
    write_file(dir + "/skipped", made.err);  // Debian's torch 1.13 Python has none
    return "";
  }
  if (!made.exited || made.exit_code != 0) return made.describe();
  const json m = read_json(dir + "/manifest.json");
  std::vector<std::vector<std::string>> runs;
  std::vector<std::string> results;
  for (const auto& r : m["read"]) {
    const std::string f = r["file"];
    runs.push_back({cli(), "inspect", f, "--json"});
    results.push_back(f + ".json.run");
    runs.push_back({cli(), "convert", f, f + ".again.safetensors", "--format", "safetensors"});
    results.push_back(f + ".again.run");
  }
  for (const auto& c : m["convert"]) {
    const std::string out = c["out"];
    runs.push_back(convert_argv(c, out));
    results.push_back(out + ".run");
    runs.push_back(convert_argv(c, out + ".2"));
    results.push_back(out + ".2.run");
  }
  for (const auto& h : m["hostile"]) {
    const std::string f = h["file"];
    runs.push_back({cli(), "inspect", f, "--input-format", "safetensors"});
    results.push_back(f + ".run");
    runs.push_back({cli(), "inspect", f});  // detection must not crash either
    results.push_back(f + ".detect.run");
  }
  parallel_for(runs.size(), 2, [&](size_t i) { run_to(runs[i], results[i]); });
  for (const auto& r : m["read"]) {  // the rewritten file reads the same (after it exists)
    const std::string again = r["file"].get<std::string>() + ".again.safetensors";
    run_to({cli(), "inspect", again, "--json"}, again + ".json.run");
  }
  RunResult checked = run({kPython, py_script(kScript), "check", dir}, 300);
  return checked.exited && checked.exit_code == 0 ? "" : checked.describe();
}

// The value with its "__metadata__" entries sorted by key: ckptio writes them sorted, the
// reference in its hash map's order, and neither order is part of the format.
json sorted_metadata(json v) {
  if (v.is_object() && v.contains("dict") && !v["dict"].empty() &&
      v["dict"].back()[0] == "__metadata__") {
    json& entries = v["dict"].back()[1]["dict"];
    std::vector<json> items(entries.begin(), entries.end());
    std::sort(items.begin(), items.end(), [](const json& a, const json& b) { return a[0] < b[0]; });
    entries = items;
  }
  return v;
}

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    if (fs::exists(work_dir() + "/skipped"))
      GTEST_SKIP() << "the tests' Python has no safetensors module: "
                   << read_file(work_dir() + "/skipped");
    m_ = read_json(work_dir() + "/manifest.json");
  }
  json m_;
};

TEST_F(Safetensors, CasesCoverEveryDtypeTheReferenceWrites) {
  EXPECT_EQ(m_["safetensors"].get<std::string>().substr(0, 2), "0.");
  // safetensors 0.8 with torch 2.13 writes 20 dtypes (F6_* have no torch dtype).
  EXPECT_GE(m_["dtypes"].size(), 20u) << m_["dtypes"].dump();
  EXPECT_EQ(m_["read"][0]["dtypes"], m_["dtypes"]) << "dtypes.safetensors holds them all";
  EXPECT_GE(m_["hostile"].size(), 20u);
}

TEST_F(Safetensors, ReadsSaveFileOutputAsLoadFileAndSafeOpen) {
  for (const auto& r : m_["read"]) {
    const std::string f = r["file"];
    const json doc = recorded_json(f + ".json.run");
    if (doc.is_null()) continue;
    EXPECT_EQ(doc["format"], "safetensors") << f;
    // In the header's order, as the file has it (load_file's reference reads the header).
    auto diffs = json_diff(doc["root"], r["load_file"]);
    EXPECT_TRUE(diffs.empty()) << f << " vs load_file\n" << diff_text(diffs);
    // safe_open's metadata() is a hash map: its order is not the file's.
    diffs = json_diff(sorted_metadata(doc["root"]), sorted_metadata(r["safe_open"]));
    EXPECT_TRUE(diffs.empty()) << f << " vs safe_open\n" << diff_text(diffs);
    const json& items = r["load_file"]["dict"];
    const bool meta = !items.empty() && items.back()[0] == "__metadata__";
    EXPECT_EQ(doc["storages"], items.size() - (meta ? 1 : 0)) << f << ": one storage per tensor";
  }
}

TEST_F(Safetensors, RewritingKeepsTensorsAndMetadata) {
  for (const auto& r : m_["read"]) {
    const std::string f = r["file"].get<std::string>() + ".again.safetensors";
    RunResult conv = recorded(r["file"].get<std::string>() + ".again.run");
    ASSERT_TRUE(conv.exited && conv.exit_code == 0) << conv.describe();
    const json doc = recorded_json(f + ".json.run");
    if (doc.is_null()) continue;
    json want = r["load_file"];
    // Metadata without "format" gains the default "format": "pt".
    if (want["dict"].empty() || want["dict"].back()[0] != "__metadata__")
      want["dict"].push_back(json::array({"__metadata__", {{"dict", json::array()}}}));
    json& meta = want["dict"].back()[1]["dict"];
    if (std::none_of(meta.begin(), meta.end(), [](const json& kv) { return kv[0] == "format"; }))
      meta.push_back(json::array({"format", "pt"}));
    auto diffs = json_diff(sorted_metadata(doc["root"]), sorted_metadata(want));
    EXPECT_TRUE(diffs.empty()) << f << "\n" << diff_text(diffs);
  }
}

TEST_F(Safetensors, ConvertedFilesLoadInSafetensorsAsTheReferenceWritesThem) {
  const json checked = read_json(work_dir() + "/check.json");
  int identical = 0;
  for (const auto& c : m_["convert"]) {
    if (c["refused"].get<bool>()) continue;
    const std::string out = c["out"];
    RunResult r = recorded(out + ".run");
    ASSERT_TRUE(r.exited && r.exit_code == 0) << r.describe();
    const json& k = checked[c["name"].get<std::string>()];
    ASSERT_TRUE(k["error"].is_null()) << out << ": " << k["error"];
    for (const char* ref : {"load_file", "safe_open"}) {
      auto diffs = json_diff(sorted_metadata(k[ref]), sorted_metadata(c["want"]));
      EXPECT_TRUE(diffs.empty()) << out << " by " << ref << "\n" << diff_text(diffs);
    }
    if (c["bytes_identical"].get<bool>()) {
      EXPECT_TRUE(k["identical"].get<bool>()) << out << " differs from " << c["ref"];
      ++identical;
    }
    EXPECT_EQ(read_file(out), read_file(out + ".2")) << out << ": deterministic";
  }
  EXPECT_GE(identical, 4) << "plain, views, nested, slices, plain with dedup";
}

TEST_F(Safetensors, SharedStoragesAndOtherValuesAreRefusedByName) {
  int refused = 0;
  for (const auto& c : m_["convert"]) {
    if (!c["refused"].get<bool>()) continue;
    ++refused;
    RunResult r = recorded(c["out"].get<std::string>() + ".run");
    ASSERT_TRUE(r.exited) << r.describe();
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(c["out"].get<std::string>()), std::string::npos) << r.err;
    for (const auto& frag : c["expect"])
      EXPECT_NE(r.err.find(frag.get<std::string>()), std::string::npos)
          << c["name"] << ": no '" << frag.get<std::string>() << "' in: " << r.err;
    EXPECT_FALSE(fs::exists(c["out"].get<std::string>())) << "no partial output";
  }
  EXPECT_EQ(refused, 3) << "tied (the reference refuses), slices with dedup (save_model"
                           " refuses), the general checkpoint";
}

TEST_F(Safetensors, HostileFilesAreRefusedInOneLine) {
  for (const auto& h : m_["hostile"]) {
    const std::string f = h["file"];
    EXPECT_TRUE(h["reference_refuses"].get<bool>()) << f << ": the reference reads it";
    RunResult r = recorded(f + ".run");
    ASSERT_TRUE(r.exited) << r.describe();  // no crash, no hang
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find(f), std::string::npos) << "names the file: " << r.err;
    for (const auto& frag : h["expect"])
      EXPECT_NE(r.err.find(frag.get<std::string>()), std::string::npos)
          << f << ": no '" << frag.get<std::string>() << "' in: " << r.err;
    RunResult d = recorded(f + ".detect.run");
    ASSERT_TRUE(d.exited) << d.describe();
    EXPECT_EQ(d.exit_code, 1) << d.describe();
    EXPECT_EQ(count_lines(d.err), 1u) << d.err;
  }
}

}  // namespace
}  // namespace interop

int main(int argc, char** argv) { return interop::interop_main(argc, argv, interop::prepare); }
