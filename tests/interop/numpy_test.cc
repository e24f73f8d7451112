// numpy values inside real checkpoints (formats/pickle/pickle_numpy.h), saved at test time by
// real torch.save: numpy 2 with the tests' PyTorch (CKPTIO_TEST_PYTHON, the venv's by
// default) and numpy 1 with Debian's /usr/bin/python3 (torch 1.13, numpy 1.24) where it is
// installed. ckptio must show every numpy scalar as the number and every array as the
// tensor numpy holds (py/make_numpy_cases.py writes the reference), convert them to a
// torch-zip file that torch.load(weights_only=True) reads back equal, and refuse in one line
// what numpy pickles that is not numeric data, and every lying array state.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "interop_util.h"

namespace interop {
namespace {
namespace fs = std::filesystem;

constexpr char kSystemPython[] = "/usr/bin/python3";

// The interpreters whose numpy writes the cases: tag -> python.
struct Writer {
  const char* tag;
  std::string python;
};
std::vector<Writer> writers() { return {{"np2", kPython}, {"np1", kSystemPython}}; }

std::string converted(const std::string& file) { return file + ".to-zip.pt"; }

std::string prepare(const std::string& dir) {
  json check = json::array();
  for (const Writer& w : writers()) {
    const std::string out = dir + "/" + w.tag;
    if (std::string(w.tag) == "np1" && access(w.python.c_str(), X_OK) != 0) {
      write_file(dir + "/" + w.tag + ".skipped", w.python + " is not installed");
      continue;
    }
    RunResult made = run({w.python, py_script("make_numpy_cases.py"), out}, 300);
    if (!made.exited || made.exit_code != 0) {
      // numpy 1 is optional (Debian's python3-numpy): note why it is missing, fail otherwise.
      if (std::string(w.tag) == "np1" && made.err.find("No module named") != std::string::npos) {
        write_file(dir + "/" + w.tag + ".skipped", made.err);
        continue;
      }
      return w.tag + std::string(": ") + made.describe();
    }
    const json m = read_json(out + "/manifest.json");
    for (const auto& g : m["good"]) {
      const std::string f = g["file"];
      run_to({cli(), "inspect", f, "--json"}, f + ".json.run");
      run_to({cli(), "inspect", f}, f + ".text.run");
      run_to({cli(), "convert", f, converted(f), "--format", "torch-zip"}, f + ".convert.run");
      check.push_back({{"file", converted(f)}, {"result", converted(f) + ".check.json"}});
    }
    for (const auto& r : m["refused"]) {
      const std::string f = r["file"];
      std::vector<std::string> inspect = {cli(), "inspect", f, "--json"};
      std::vector<std::string> convert = {cli(),        "convert",  f,
                                          converted(f), "--format", "torch-zip"};
      if (r["allow_objects"].get<bool>()) {
        inspect.push_back("--allow-objects");
        convert.push_back("--allow-objects");
      }
      run_to(inspect, f + ".json.run");
      run_to(convert, f + ".convert.run");
    }
  }
  write_file(dir + "/check.json", check.dump());
  RunResult checked = run({kPython, py_script("check_outputs.py"), dir + "/check.json"}, 600);
  return checked.exited && checked.exit_code == 0 ? "" : checked.describe();
}

class Numpy : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    const std::string tag = GetParam();
    if (fs::exists(work_dir() + "/" + tag + ".skipped"))
      GTEST_SKIP() << tag << ": " << read_file(work_dir() + "/" + tag + ".skipped");
    manifest_ = read_json(work_dir() + "/" + tag + "/manifest.json");
  }
  json manifest_;
};

TEST_P(Numpy, CasesComeFromTheRightNumpy) {
  // np1 is Debian's numpy 1; np2 the tests' Python's (numpy 2 in the venv). numpy 1 pickles
  // name numpy.core, numpy 2 numpy._core: the files must hold the module their numpy writes.
  const std::string version = manifest_["numpy"];
  if (GetParam() == std::string("np1")) {
    EXPECT_EQ(version[0], '1') << version;
  }
  const std::string module = manifest_["module"];
  EXPECT_EQ(module, version[0] == '1' ? "numpy.core.multiarray" : "numpy._core.multiarray");
  ASSERT_EQ(manifest_["good"].size(), 4u) << "zip, legacy, zip-p4, zip-p5";
  for (const auto& g : manifest_["good"]) {
    const std::string bytes = read_file(g["file"]);
    EXPECT_NE(bytes.find(g["format"] == "zip-p5" ? "_frombuffer" : "_reconstruct"),
              std::string::npos)
        << g["file"];
    EXPECT_NE(bytes.find(module.substr(0, module.find('.', 6))), std::string::npos) << g["file"];
  }
  EXPECT_GE(manifest_["refused"].size(), 20u);
}

TEST_P(Numpy, InspectJsonEqualsWhatNumpyHolds) {
  for (const auto& g : manifest_["good"]) {
    const std::string f = g["file"];
    const json doc = recorded_json(f + ".json.run");
    if (doc.is_null()) continue;
    EXPECT_EQ(doc["format"], g["format"] == "legacy" ? "torch-legacy" : "torch-zip") << f;
    // Not vacuous: every dtype as scalar and array, the byte-order and layout cases.
    ASSERT_GE(g["ref"]["dict"].size(), 50u);
    auto diffs = json_diff(doc["root"], g["ref"]);
    EXPECT_TRUE(diffs.empty()) << f << "\n" << diff_text(diffs);
    EXPECT_EQ(doc["storages"], g["storages"]) << f << ": one storage per array, shared kept";
  }
}

TEST_P(Numpy, ValuesTakeTheirKinds) {
  const std::string f = manifest_["good"][0]["file"];
  const json doc = recorded_json(f + ".json.run");
  ASSERT_FALSE(doc.is_null());
  const json root = doc["root"];
  EXPECT_EQ(dict_get(root, "s_b1"), true);
  EXPECT_EQ(dict_get(root, "s_i8"), -5);
  EXPECT_TRUE(dict_get(root, "s_i8").is_number_integer());
  EXPECT_EQ(dict_get(root, "s_u1"), 200);
  EXPECT_EQ(dict_get(root, "s_u8_max"), json({{"int", "18446744073709551615"}}));
  EXPECT_EQ(dict_get(root, "s_i8_min"), INT64_MIN);
  EXPECT_TRUE(dict_get(root, "s_f4").is_number_float());
  EXPECT_EQ(dict_get(root, "s_f8"), 0.1);
  EXPECT_EQ(dict_get(root, "s_nan"), json({{"float", "nan"}}));
  EXPECT_EQ(dict_get(root, "s_c16"),
            json::parse(R"({"object": "builtins.complex", "args": {"tuple": [1.5, -2.0]}})"));
  const json be = dict_get(root, "be_i4")["tensor"], le = dict_get(root, "a_i4")["tensor"];
  EXPECT_EQ(be["dtype"], "int32");
  EXPECT_EQ(be["shape"], json({2, 3}));
  EXPECT_EQ(be["sha256"], le["sha256"]) << "big-endian copy of the same values";
  const json fo = dict_get(root, "f_f8")["tensor"];
  EXPECT_EQ(fo["shape"], json({3, 4, 5}));
  EXPECT_EQ(fo["strides"], json({20, 5, 1})) << "Fortran order read into C order";
  EXPECT_EQ(dict_get(root, "zero_dim")["tensor"]["shape"], json::array());
  EXPECT_EQ(dict_get(root, "empty")["tensor"]["shape"], json({0, 4}));
  const json shared = dict_get(root, "shared");
  EXPECT_EQ(shared[0]["tensor"]["storage"], shared[1]["tensor"]["storage"]);
  EXPECT_EQ(dict_get(root, "tensor")["tensor"]["storage"], "0") << "torch's own storage record";
}

TEST_P(Numpy, InspectTextShowsNumbersAndTensors) {
  for (const auto& g : manifest_["good"]) {
    RunResult r = recorded(g["file"].get<std::string>() + ".text.run");
    ASSERT_TRUE(r.exited && r.exit_code == 0) << r.describe();
    for (const char* line :
         {"'s_i8': -5\n", "'s_b1': True\n", "'s_f8': 0.1\n", "'s_u8_max': 18446744073709551615\n",
          "'s_c16': object builtins.complex", "'a_f4': tensor float32 [2, 3] cpu 24 B\n",
          "'be_c16': tensor complex128 [2, 3] cpu 96 B\n",
          "'f_be_i2': tensor int16 [2, 3, 4] cpu 48 B\n",
          "'a_u8': tensor uint64 [2, 3] cpu 48 B\n"})
      EXPECT_NE(r.out.find(line), std::string::npos) << g["file"] << ": no " << line << "\n"
                                                     << r.out.substr(0, 2000);
  }
}

// The major version of the tests' torch (CKPTIO_TEST_PYTHON).
int tests_torch_major() {
  static const int major = [] {
    RunResult r = run({kPython, "-c", "import torch; print(torch.__version__.split('.')[0])"});
    return r.exited && r.exit_code == 0 ? std::stoi(r.out) : -1;
  }();
  return major;
}

TEST_P(Numpy, ConvertedFileLoadsWithWeightsOnly) {
  // The numpy uint16/32/64 arrays become tensors of those dtypes, which torch writes and
  // reads with _rebuild_tensor_v3 from 2.3 on; torch 1.x has neither, and its weights_only
  // loader refuses every float besides. The main configuration (torch 2.13) checks this.
  if (tests_torch_major() == 1)
    GTEST_SKIP() << "torch 1.x cannot load uint16/32/64 tensors (_rebuild_tensor_v3)";
  ASSERT_GE(tests_torch_major(), 2) << "cannot tell the tests' torch version";
  for (const auto& g : manifest_["good"]) {
    const std::string f = g["file"];
    RunResult r = recorded(f + ".convert.run");
    ASSERT_TRUE(r.exited && r.exit_code == 0) << r.describe();
    const json c = read_json(converted(f) + ".check.json");
    ASSERT_TRUE(c["error"].is_null()) << c["error"];
    // torch.load(weights_only=True) of the tests' torch reads it: the arrays became torch
    // tensors and the scalars Python numbers (weights_only refuses every numpy global).
    EXPECT_TRUE(c["weights_only"].is_null()) << f << ": " << c["weights_only"];
    auto diffs = json_diff(c["root"], g["ref"]);
    EXPECT_TRUE(diffs.empty()) << f << "\n" << diff_text(diffs);
    EXPECT_EQ(read_file(converted(f)).find("numpy"), std::string::npos) << "no numpy global left";
  }
}

TEST_P(Numpy, RefusedValuesNameTheGlobalInOneLine) {
  for (const auto& c : manifest_["refused"]) {
    const std::string f = c["file"];
    for (const char* op : {".json.run", ".convert.run"}) {
      RunResult r = recorded(f + op);
      ASSERT_TRUE(r.exited) << r.describe();  // no crash, no hang
      EXPECT_EQ(r.exit_code, 1) << r.describe();
      EXPECT_EQ(count_lines(r.err), 1u) << r.err;
      EXPECT_NE(r.err.find(f), std::string::npos) << "names the file: " << r.err;
      for (const auto& fragment : c["expect"])
        EXPECT_NE(r.err.find(fragment.get<std::string>()), std::string::npos)
            << f << ": no '" << fragment.get<std::string>() << "' in: " << r.err;
    }
    EXPECT_FALSE(fs::exists(converted(f))) << "convert left an output";
  }
}

INSTANTIATE_TEST_SUITE_P(Writers, Numpy, ::testing::Values("np2", "np1"));

}  // namespace
}  // namespace interop

int main(int argc, char** argv) { return interop::interop_main(argc, argv, interop::prepare); }
