// Interoperability with real PyTorch (Debian's 1.13 unless the build names another with
// CKPTIO_TEST_PYTHON): files written by torch.save (both formats) must inspect to the same
// value tree torch.load sees, and files ckptio writes must load in torch.load to the same
// objects, with the same storage sharing, in the same layout torch writes, and with
// weights_only=True wherever torch's own file does.
//
// The prepare step (see interop_util.h) runs py/make_cases.py, every ckptio command, and one
// Python pass over ckptio's outputs (importing torch per file would cost a second each);
// the tests then assert on what it recorded.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "interop_util.h"

namespace interop {
namespace {
namespace fs = std::filesystem;

// Must match py/make_cases.py's CASES (the CaseList test checks): CTest needs the names
// before anything runs.
const std::vector<std::string> kCases = {
    "sd_linear",
    "sd_mlp_batchnorm",
    "sd_cnn",
    "sd_lstm",
    "sd_transformer_layer",
    "sd_tied_weights",
    "sd_keep_vars",
    "opt_sgd_momentum",
    "opt_adam_amsgrad",
    "opt_rmsprop",
    "opt_adagrad",
    "general_checkpoint",
    "several_models",
    "all_dtypes",
    "views",
    "expanded",
    "view_without_base",
    "tied_same_tensor",
    "tied_two_views",
    "zero_dim_and_empty",
    "parameters",
    "bare_tensor",
    "bare_parameter",
    "bare_list_of_tensors",
    "bare_storage",
    "special_floats",
    "many_storages",
    "cuda_location",
    "big_ints",
    "unicode_text",
    "bytes_values",
    "tuples_and_keys",
    "nested_30_deep",
    "large_containers",
    "misc_objects",
    "pickle_protocol_4",
    "newer_dtypes",
};
const std::vector<std::string> kSources = {"zip", "legacy"};

std::string format_name(const std::string& src) { return "torch-" + src; }
std::string other(const std::string& src) { return src == "zip" ? "legacy" : "zip"; }

// File names under the work directory.
std::string case_file(const std::string& c, const std::string& src) {
  return work_dir() + "/cases/" + c + "." + src + ".pt";
}
std::string ref_file(const std::string& c, const std::string& src) {
  return work_dir() + "/cases/" + c + "." + src + ".ref.json";
}
// Outputs: <case>.<src>.to-<fmt>.pt, and the round trip back to <src>: <case>.<src>.rt.pt.
std::string out_file(const std::string& c, const std::string& src, const std::string& what) {
  return work_dir() + "/out/" + c + "." + src + "." + what + ".pt";
}
std::string record_file(const std::string& out_or_input, const std::string& step) {
  return out_or_input + "." + step + ".run.json";
}
std::string check_file(const std::string& out) { return out + ".check.json"; }

// The ckptio commands for one (case, source format).
void run_case(const std::string& c, const std::string& src) {
  const std::string in = case_file(c, src);
  const std::string inspect_rec = work_dir() + "/out/" + c + "." + src + ".inspect.run.json";
  record(inspect_rec, run({cli(), "inspect", in, "--json"}));
  for (const std::string fmt : {"zip", "legacy"}) {
    std::string out = out_file(c, src, "to-" + fmt);
    record(record_file(out, "convert"),
           run({cli(), "convert", in, out, "--format", format_name(fmt)}));
  }
  // Round trip through the other format: zip -> legacy -> zip, legacy -> zip -> legacy.
  std::string mid = out_file(c, src, "to-" + other(src));
  std::string back = out_file(c, src, "rt");
  if (fs::exists(mid))
    record(record_file(back, "convert"),
           run({cli(), "convert", mid, back, "--format", format_name(src)}));
}

std::string prepare(const std::string& dir) {
  fs::create_directories(dir + "/out");
  RunResult made = run({kPython, py_script("make_cases.py"), dir + "/cases"}, 600);
  if (!made.exited || made.exit_code != 0) return made.describe();
  std::vector<std::pair<std::string, std::string>> jobs;
  for (const auto& c : kCases)
    for (const auto& s : kSources) jobs.emplace_back(c, s);
  parallel_for(jobs.size(), 2, [&](size_t i) { run_case(jobs[i].first, jobs[i].second); });
  json manifest = json::array();
  for (const auto& [c, s] : jobs)
    for (const std::string what : {"to-zip", "to-legacy", "rt"}) {
      std::string out = out_file(c, s, what);
      manifest.push_back({{"file", out}, {"result", check_file(out)}});
    }
  write_file(dir + "/out/manifest.json", manifest.dump());
  RunResult checked =
      run({kPython, py_script("check_outputs.py"), dir + "/out/manifest.json"}, 600);
  if (!checked.exited || checked.exit_code != 0) return checked.describe();
  return "";
}

class Interop : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {
 protected:
  std::string c() const { return std::get<0>(GetParam()); }
  std::string src() const { return std::get<1>(GetParam()); }
  json ref() const { return read_json(ref_file(c(), src())); }

  void SetUp() override {
    json want = ref();
    if (want.contains("save_error"))
      GTEST_SKIP() << "this PyTorch cannot write and read back " << c() << " as " << src() << ": "
                   << want["save_error"].get<std::string>();
  }

  // A convert step succeeded and torch.load reads its output to the reference objects.
  void expect_loads_as_original(const std::string& out, const std::string& fmt) {
    RunResult conv = recorded(record_file(out, "convert"));
    ASSERT_TRUE(conv.exited && conv.exit_code == 0) << conv.describe();
    EXPECT_EQ(conv.err, "") << conv.describe();
    ASSERT_TRUE(fs::exists(check_file(out))) << "no Python check of " << out;
    json check = read_json(check_file(out));
    ASSERT_TRUE(check["error"].is_null()) << "torch.load(" << out << ") failed:\n"
                                          << check["error"].get<std::string>();
    json want = ref();
    auto diffs = json_diff(check["root"], want["root"]);
    EXPECT_TRUE(diffs.empty()) << "torch.load of " << out << " differs from the original:\n"
                               << diff_text(diffs);
    // Storage sharing: per tensor, the first tensor with the same storage.
    EXPECT_EQ(check["ties"], want["ties"]) << "storage sharing changed in " << out;
    // Parameter-ness, requires_grad, strides and offsets are outside the JSON contract.
    EXPECT_EQ(check["facts"], want["facts"]) << "tensor kinds/requires_grad/strides/offsets "
                                                "changed in "
                                             << out;
    // torch.load's default is weights_only=True since PyTorch 2.6: whatever torch reads of
    // its own file that way, it must read of ours.
    if (want["weights_only"].is_null()) {
      EXPECT_TRUE(check["weights_only"].is_null())
          << "torch.load(" << out << ", weights_only=True) fails, yet reads torch's own file: "
          << check["weights_only"].get<std::string>();
    }
    if (fmt == "zip") {
      ASSERT_FALSE(check["zip"].is_null()) << out << " is not a zip file";
      const json& z = check["zip"];
      ASSERT_FALSE(z.contains("error")) << z["error"].get<std::string>();
      EXPECT_TRUE(z["bad_crc"].is_null()) << "CRC mismatch in record " << z["bad_crc"];
      EXPECT_EQ(z["compressed"], json::array()) << "records not stored";
      EXPECT_EQ(z["misaligned"], json::array()) << "data not 64-byte aligned";
    } else {
      EXPECT_TRUE(check["zip"].is_null()) << out << " should be a legacy stream, not a zip";
    }
  }
};

TEST_P(Interop, Inspect) {
  RunResult r = recorded(work_dir() + "/out/" + c() + "." + src() + ".inspect.run.json");
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.describe();
  EXPECT_EQ(r.err, "") << r.describe();
  json got = json::parse(r.out);
  json want = ref();
  EXPECT_EQ(got["format"], format_name(src()));
  EXPECT_EQ(got["path"], case_file(c(), src()));
  EXPECT_EQ(got["storages"], want["storages"]) << "storage count";
  auto diffs = json_diff(got["root"], want["root"]);
  EXPECT_TRUE(diffs.empty()) << "ckptio inspect --json " << case_file(c(), src())
                             << " differs from torch.load:\n"
                             << diff_text(diffs);
  // ckptio's extra tensor keys against what torch.load built.
  EXPECT_EQ(tensor_facts(got["root"]), want["facts"])
      << "[kind, requires_grad, strides, storage_offset] per tensor";
}

TEST_P(Interop, ConvertToZip) { expect_loads_as_original(out_file(c(), src(), "to-zip"), "zip"); }

// Why this PyTorch cannot write and read back case `c` in the legacy format itself (the
// 2.x dtypes: its legacy loader has no UntypedStorage), or "" when it can.
std::string legacy_unreadable(const std::string& c) {
  json legacy = read_json(ref_file(c, "legacy"));
  return legacy.contains("save_error") ? legacy["save_error"].get<std::string>() : "";
}

TEST_P(Interop, ConvertToLegacy) {
  const std::string out = out_file(c(), src(), "to-legacy");
  if (std::string why = legacy_unreadable(c()); !why.empty()) {
    // Then ckptio refuses in one line rather than write a file torch.load cannot read.
    RunResult conv = recorded(record_file(out, "convert"));
    EXPECT_TRUE(conv.exited && conv.exit_code == 1) << conv.describe();
    EXPECT_EQ(count_lines(conv.err), 1u) << conv.describe();
    EXPECT_NE(conv.err.find("torch-legacy"), std::string::npos) << conv.describe();
    EXPECT_FALSE(fs::exists(out)) << "torch cannot read " << c() << " back from legacy: " << why;
    return;
  }
  expect_loads_as_original(out, "legacy");
}

// zip -> legacy -> zip (and legacy -> zip -> legacy) keeps everything torch.load sees.
TEST_P(Interop, RoundTrip) {
  if (std::string why = legacy_unreadable(c()); !why.empty())
    GTEST_SKIP() << "no legacy step for " << c() << ": " << why;
  expect_loads_as_original(out_file(c(), src(), "rt"), src());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, Interop, ::testing::Combine(::testing::ValuesIn(kCases), ::testing::ValuesIn(kSources)),
    [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param); });

TEST(InteropSetup, CaseListMatchesMakeCases) {
  json made = read_json(work_dir() + "/cases/cases.json");
  EXPECT_EQ(made.get<std::vector<std::string>>(), kCases)
      << "update kCases in interop_test.cc to match py/make_cases.py";
}

}  // namespace
}  // namespace interop

int main(int argc, char** argv) { return interop::interop_main(argc, argv, interop::prepare); }
