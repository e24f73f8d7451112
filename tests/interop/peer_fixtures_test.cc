// Real checkpoints written by other people's PyTorch (1.6 .. 2.7, both formats, pickle
// protocols 1, 2 and 5; see tests/data/peer/PROVENANCE.md). Every one must inspect with
// exit 0 to what the tests' PyTorch (Debian's 1.13 by default) loads from it, convert to both
// formats so that torch loads the same objects back, and show the facts its MANIFEST entry
// states.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "interop_util.h"

namespace interop {
namespace {
namespace fs = std::filesystem;

const std::vector<std::string> kFixtures = {
    "bumblebee/noncontiguous_tensor.zip.pt",
    "bumblebee/pytorch_model.bin",
    "bumblebee/storage_view.legacy.pt",
    "bumblebee/tensors.legacy.pt",
    "bumblebee/tensors.zip.pt",
    "burn/batch_norm2d.pt",
    "burn/bfloat16.pt",
    "burn/checkpoint.pt",
    "burn/complex_nested.pt",
    "burn/complex_structure.pt",
    "burn/empty.pt",
    "burn/float16.pt",
    "burn/legacy_shared_storage.pt",
    "burn/parameter.pt",
    "burn/scalar.pt",
    "burn/special_values.pt",
    "candle/fortran_tensor_3d.pth",
    "gopickle/tensor_bfloat16_proto5.pt",
    "gopickle/tensor_float16_proto1.pt",
    "gopickle/tensor_int64_proto5_zip.pt",
    "picklejl/linear_state.bin",
    "picklejl/offset-strides.bin",
    "pybridge/adam_load.pth",
    "pybridge/sgd_load.pth",
    "rtorch/state_dict.pth",
    "text/glove.test_twitter.27B.200d.pt",
    "text/t5.small.model.output.pt",
};

std::string fixture_path(const std::string& f) { return peer_data_dir() + "/" + f; }
std::string flat(std::string f) {
  std::replace(f.begin(), f.end(), '/', '_');
  return f;
}
std::string ref_file(const std::string& f) { return work_dir() + "/" + flat(f) + ".ref.json"; }
std::string out_file(const std::string& f, const std::string& fmt) {
  return work_dir() + "/" + flat(f) + ".to-" + fmt + ".pt";
}

// Python loads every fixture, and every ckptio conversion of it, in one process.
std::string prepare(const std::string& dir) {
  json manifest = json::array();
  for (const auto& f : kFixtures) {
    manifest.push_back({{"file", fixture_path(f)}, {"result", ref_file(f)}});
    for (const char* fmt : {"zip", "legacy"}) {
      std::string out = out_file(f, fmt);
      RunResult r =
          run({cli(), "convert", fixture_path(f), out, "--format", std::string("torch-") + fmt});
      write_file(out + ".run.json",
                 r.to_json().dump(-1, ' ', false, json::error_handler_t::replace));
      manifest.push_back({{"file", out}, {"result", out + ".check.json"}});
    }
  }
  write_file(dir + "/manifest.json", manifest.dump());
  RunResult checked = run({kPython, py_script("check_outputs.py"), dir + "/manifest.json"}, 600);
  return checked.exited && checked.exit_code == 0 ? "" : checked.describe();
}

json tensor(const json& v) {
  if (v.is_object() && v.contains("tensor")) return v["tensor"];
  ADD_FAILURE() << "not a tensor: " << v.dump().substr(0, 300);
  return json::object();
}

// Facts from tests/data/peer's MANIFEST descriptions, checked on ckptio's JSON. They include
// what the Python comparison cannot see: strides, offsets and storage keys.
using Facts = std::function<void(const json& doc)>;
const std::map<std::string, Facts>& facts() {
  static const std::map<std::string, Facts> kFacts = {
      {"burn/bfloat16.pt",
       [](const json& d) {
         json t = tensor(dict_get(d["root"], "tensor"));
         EXPECT_EQ(t["dtype"], "bfloat16");
         EXPECT_EQ(t["shape"], json({3}));
       }},
      {"burn/float16.pt",
       [](const json& d) {
         json t = tensor(dict_get(d["root"], "tensor"));
         EXPECT_EQ(t["dtype"], "float16");
         EXPECT_EQ(t["shape"], json({3}));
       }},
      {"burn/scalar.pt",
       [](const json& d) {
         EXPECT_EQ(tensor(dict_get(d["root"], "tensor"))["shape"], json::array());
       }},
      {"burn/empty.pt",
       [](const json& d) { EXPECT_EQ(tensor(dict_get(d["root"], "tensor"))["shape"], json({0})); }},
      {"burn/parameter.pt",
       [](const json& d) {
         json t = tensor(dict_get(d["root"], "param"));
         EXPECT_EQ(t["shape"], json({3, 3}));
         EXPECT_EQ(t.value("parameter", false), true) << "torch._utils._rebuild_parameter";
       }},
      {"burn/batch_norm2d.pt",
       [](const json& d) {
         json t = tensor(dict_get(d["root"], "norm1.num_batches_tracked"));
         EXPECT_EQ(t["dtype"], "int64");
         EXPECT_EQ(t["shape"], json::array());
         EXPECT_EQ(d["storages"], 5);
       }},
      {"burn/complex_nested.pt", [](const json& d) { EXPECT_EQ(d["storages"], 23); }},
      {"burn/checkpoint.pt",
       [](const json& d) {
         EXPECT_EQ(dict_get(d["root"], "epoch"), 42);
         EXPECT_EQ(dict_get(d["root"], "loss"), 0.123);
       }},
      {"burn/legacy_shared_storage.pt",
       [](const json& d) {
         EXPECT_EQ(d["format"], "torch-legacy");
         EXPECT_EQ(tensor(dict_get(d["root"], "view2"))["shape"], json({20}));
       }},
      {"bumblebee/noncontiguous_tensor.zip.pt",
       [](const json& d) {
         json t = tensor(d["root"]);
         EXPECT_EQ(t["dtype"], "int64");
         EXPECT_EQ(t["shape"], json({2, 2, 3}));
         EXPECT_EQ(t["strides"], json({1, 6, 2}));
       }},
      {"candle/fortran_tensor_3d.pth",
       [](const json& d) {
         json t = tensor(dict_get(d["root"], "tensor_fortran"));
         EXPECT_EQ(t["shape"], json({2, 3, 4}));
         EXPECT_EQ(t["strides"], json({1, 2, 6})) << "column-major";
       }},
      {"picklejl/offset-strides.bin",
       [](const json& d) {
         json w0 = tensor(dict_get(d["root"], "weight0")),
              w1 = tensor(dict_get(d["root"], "weight1"));
         EXPECT_EQ(w0["strides"], json({100, 10, 1}));
         EXPECT_EQ(w1["shape"], json({4, 5}));
         EXPECT_EQ(w1["strides"], json({48, 3}));
         EXPECT_EQ(w1["storage_offset"], 137);
         EXPECT_EQ(w0["storage"], w1["storage"]) << "one 300-element storage";
         EXPECT_EQ(d["storages"], 1);
       }},
      {"bumblebee/storage_view.legacy.pt",
       [](const json& d) {
         // Two raw FloatStorage views of one base storage (legacy view_metadata).
         ASSERT_TRUE(d["root"].contains("tuple"));
         ASSERT_EQ(d["root"]["tuple"].size(), 2u);
         for (const auto& s : d["root"]["tuple"]) {
           EXPECT_EQ(tensor(s).value("is_storage", false), true);
           EXPECT_EQ(tensor(s)["dtype"], "float32");
         }
       }},
      {"bumblebee/tensors.zip.pt",
       [](const json& d) {
         std::vector<std::string> dtypes;
         for (const auto& t : d["root"]) dtypes.push_back(tensor(t)["dtype"]);
         EXPECT_EQ(dtypes, (std::vector<std::string>{"float64", "float32", "float16", "int64",
                                                     "int32", "int16", "int8", "uint8", "bool",
                                                     "bfloat16", "complex128", "complex64"}));
         EXPECT_EQ(d["storages"], 12);
       }},
      {"gopickle/tensor_float16_proto1.pt",
       [](const json& d) {
         EXPECT_EQ(d["format"], "torch-legacy") << "protocol 1: no PROTO opcode";
         EXPECT_EQ(tensor(d["root"])["dtype"], "float16");
       }},
      {"gopickle/tensor_bfloat16_proto5.pt",
       [](const json& d) { EXPECT_EQ(tensor(d["root"])["shape"], json({4})); }},
      {"gopickle/tensor_int64_proto5_zip.pt",
       [](const json& d) {
         EXPECT_EQ(d["format"], "torch-zip");
         EXPECT_EQ(tensor(d["root"])["dtype"], "int64");
       }},
      {"rtorch/state_dict.pth",
       [](const json& d) {
         // Early zip files name storages by memory address.
         std::set<std::string> keys = {tensor(dict_get(d["root"], "ones"))["storage"],
                                       tensor(dict_get(d["root"], "twos"))["storage"]};
         EXPECT_EQ(keys, (std::set<std::string>{"140641661000752", "140641875883712"}));
       }},
      {"text/glove.test_twitter.27B.200d.pt",
       [](const json& d) {
         // PyTorch 0.2: torch._utils._rebuild_tensor (v1).
         ASSERT_TRUE(d["root"].contains("tuple"));
         EXPECT_EQ(tensor(d["root"]["tuple"][1])["shape"], json({7, 200}));
         EXPECT_EQ(d["root"]["tuple"][2], 200);
       }},
      {"bumblebee/pytorch_model.bin", [](const json& d) { EXPECT_EQ(d["storages"], 22); }},
      {"pybridge/adam_load.pth", [](const json& d) { EXPECT_EQ(d["storages"], 14); }},
  };
  return kFacts;
}

class PeerFixture : public ::testing::TestWithParam<std::string> {
 protected:
  std::string f() const { return GetParam(); }
};

TEST_P(PeerFixture, InspectMatchesTorch) {
  RunResult r = run({cli(), "inspect", fixture_path(f()), "--json"});
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.describe();
  json doc = json::parse(r.out);
  auto it = facts().find(f());
  if (it != facts().end()) it->second(doc);
  json ref = read_json(ref_file(f()));
  // Every fixture here loads in torch 1.13 today; one that stops loading must come with facts.
  if (!ref["error"].is_null()) {
    EXPECT_NE(it, facts().end()) << "this PyTorch cannot load " << f()
                                 << " and no facts check it:\n"
                                 << ref["error"].get<std::string>();
    return;
  }
  auto diffs = json_diff(doc["root"], ref["root"]);
  EXPECT_TRUE(diffs.empty()) << "ckptio inspect --json " << f() << " differs from torch.load:\n"
                             << diff_text(diffs);
  EXPECT_EQ(tensor_facts(doc["root"]), ref["facts"])
      << "[kind, requires_grad, strides, storage_offset] per tensor";
}

// Storage *views* (legacy view_metadata: a window into another storage) exist only in old
// legacy files; neither format torch writes today can express them, and ckptio refuses to
// write them rather than silently un-share the bytes.
const std::set<std::string> kNotWritable = {"bumblebee/storage_view.legacy.pt"};

TEST_P(PeerFixture, ConvertsToBothFormats) {
  json ref = read_json(ref_file(f()));
  if (!ref["error"].is_null()) GTEST_SKIP() << "this PyTorch cannot load the original";
  for (const std::string fmt : {"zip", "legacy"}) {
    std::string out = out_file(f(), fmt);
    RunResult r = RunResult::from_json(read_json(out + ".run.json"));
    if (kNotWritable.count(f())) {
      EXPECT_TRUE(r.exited && r.exit_code == 1) << r.describe();
      EXPECT_EQ(count_lines(r.err), 1u) << r.describe();
      EXPECT_NE(r.err.find("view"), std::string::npos) << r.describe();
      EXPECT_FALSE(fs::exists(out)) << "a refused convert left " << out;
      continue;
    }
    EXPECT_TRUE(r.exited && r.exit_code == 0) << r.describe();
    if (!fs::exists(out + ".check.json")) continue;
    json check = read_json(out + ".check.json");
    if (!check["error"].is_null()) {
      ADD_FAILURE() << "torch.load(" << out << "):\n" << check["error"].get<std::string>();
      continue;
    }
    auto diffs = json_diff(check["root"], ref["root"]);
    EXPECT_TRUE(diffs.empty()) << "torch.load of " << out << " differs from the original:\n"
                               << diff_text(diffs);
    EXPECT_EQ(check["ties"], ref["ties"]) << "storage sharing changed in " << out;
    EXPECT_EQ(check["facts"], ref["facts"]) << "tensor kinds/strides/offsets changed in " << out;
    EXPECT_EQ(check["zip"].is_null(), fmt == "legacy");
    // What torch reads of the original with weights_only=True (the default since 2.6), it
    // must read of ckptio's conversion.
    if (ref["weights_only"].is_null()) {
      EXPECT_TRUE(check["weights_only"].is_null())
          << "torch.load(" << out << ", weights_only=True) fails, yet reads the original: "
          << check["weights_only"].get<std::string>();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Peer, PeerFixture, ::testing::ValuesIn(kFixtures), [](const auto& info) {
  std::string n = info.param;
  for (char& ch : n)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
});

// A TorchScript archive is a zip with code/ and constants.pkl: not a torch.save file. The
// torchscript plugin claims it; read as torch-zip, the CLI says what it is in one line rather
// than failing somewhere inside the pickle.
TEST(PeerTorchScript, ReadByTheTorchScriptPluginAndRefusedAsTorchZip) {
  std::string path = fixture_path("rtorch/linear_2021.pt");
  RunResult r = run({cli(), "inspect", path, "--json"});
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.describe();
  EXPECT_NE(r.out.find("\"format\":\"torchscript\""), std::string::npos) << r.describe();

  r = run({cli(), "inspect", path, "--input-format", "torch-zip"});
  EXPECT_TRUE(r.exited && r.exit_code == 1) << r.describe();
  EXPECT_EQ(count_lines(r.err), 1u) << r.describe();
  EXPECT_NE(r.err.find("TorchScript"), std::string::npos) << r.describe();
  EXPECT_EQ(r.out, "");
}

}  // namespace
}  // namespace interop

int main(int argc, char** argv) { return interop::interop_main(argc, argv, interop::prepare); }
