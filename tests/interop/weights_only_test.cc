// Every global that the tests' torch.load(weights_only=True) accepts by default, each in a
// file that torch.save wrote (tests/interop/py/make_weights_only_cases.py): ckptio must read
// it as torch does (the reference encoding, tensor facts, math bits) or refuse it in one line
// that names the file, the global and why. The generator reads the allow-list from the
// installed torch, so a newer torch that accepts more fails CoversTorchsAllowList until the
// new globals get a case or a documented exclusion here.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "interop_util.h"

namespace interop {
namespace {

const json& manifest() {
  static const json m = read_json(work_dir() + "/manifest.json");
  return m;
}

// The torch version that made the files, as major * 100 + minor (2.13 -> 213).
int torch_version() {
  std::string v = manifest()["torch"];
  size_t dot = v.find('.');
  return std::stoi(v.substr(0, dot)) * 100 + std::stoi(v.substr(dot + 1));
}

std::string run_file(const std::string& dir, const std::string& name) {
  return dir + "/" + name + ".run.json";
}

// Python writes the files and the manifest; then ckptio inspects each one.
std::string prepare(const std::string& dir) {
  RunResult g = run({kPython, py_script("make_weights_only_cases.py"), dir}, 600);
  if (!g.exited || g.exit_code != 0) return g.describe();
  json m = read_json(dir + "/manifest.json");
  std::vector<json> cases;
  for (const auto& c : m["cases"])
    if (c.contains("file")) cases.push_back(c);
  parallel_for(cases.size(), 2, [&](size_t i) {
    RunResult r = run({cli(), "inspect", cases[i]["file"], "--json"});
    write_file(run_file(dir, cases[i]["name"]),
               r.to_json().dump(-1, ' ', false, json::error_handler_t::replace));
  });
  return "";
}

const json* find_case(const std::string& name) {
  for (const auto& c : manifest()["cases"])
    if (c["name"] == name) return &c;
  return nullptr;
}

// The first {"tensor": ...} object in encoding order, or null.
const json* first_tensor(const json& v) {
  if (v.is_object() && v.contains("tensor")) return &v["tensor"];
  if (v.is_array() || v.is_object())
    for (const auto& x : v) {
      if (const json* t = first_tensor(x)) return t;
    }
  return nullptr;
}

// Checks one generated case; returns false when the case was skipped (this torch cannot
// write it), with the reason in `skipped`.
bool check_case(const json& c, std::string* skipped) {
  std::string name = c["name"];
  SCOPED_TRACE("case " + name + " (torch " + manifest()["torch"].get<std::string>() + ")");
  if (c.contains("skip")) {
    *skipped = c["skip"];
    return false;
  }
  if (c.contains("error")) {
    ADD_FAILURE() << "the generator failed to write " << name << ":\n"
                  << c["error"].get<std::string>();
    return true;
  }
  RunResult r = RunResult::from_json(read_json(run_file(work_dir(), name)));
  std::string wo =
      c["torch_weights_only"].is_null() ? "reads it" : c["torch_weights_only"].get<std::string>();
  if (c["expect"] == "read") {
    // The case must exercise what torch's default weights-only load accepts (checked on the
    // torch these cases were written for; 1.13's loader refuses floats and more).
    if (torch_version() >= 213) {
      EXPECT_TRUE(c["torch_weights_only"].is_null())
          << "torch.load(weights_only=True) no longer reads " << name << ": " << wo;
    }
    if (!r.exited || r.exit_code != 0) {
      ADD_FAILURE() << "ckptio refuses what torch reads (weights_only: " << wo << "):\n"
                    << r.describe();
      return true;
    }
    json doc = json::parse(r.out);
    auto diffs = json_diff(doc["root"], c["root"]);
    EXPECT_TRUE(diffs.empty()) << "ckptio inspect --json differs from torch.load:\n"
                               << diff_text(diffs);
    EXPECT_EQ(tensor_facts(doc["root"]), c["facts"])
        << "[kind, requires_grad, strides, storage_offset] per tensor";
    if (c.contains("tensor_keys")) {
      const json* t = first_tensor(doc["root"]);
      if (!t) {
        ADD_FAILURE() << "no tensor in " << r.out.substr(0, 300);
      } else {
        for (const auto& [k, v] : c["tensor_keys"].items())
          EXPECT_EQ(t->value(k, json(false)), v) << "tensor key '" << k << "' in " << t->dump();
      }
    }
    return true;
  }
  // Refused: exit 1 and one line naming the file, the global and why; nothing on stdout.
  EXPECT_TRUE(r.exited && r.exit_code == 1) << r.describe();
  EXPECT_EQ(count_lines(r.err), 1u) << r.describe();
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find(c["file"].get<std::string>()), std::string::npos)
      << "the message does not name the file: " << r.err;
  bool named = false;
  for (const auto& g : c["refused_global"]) named = named || r.err.find(g) != std::string::npos;
  EXPECT_TRUE(named) << "the message names none of " << c["refused_global"].dump() << ": " << r.err;
  EXPECT_NE(r.err.find(c["reason"].get<std::string>()), std::string::npos)
      << "the message lacks the reason '" << c["reason"].get<std::string>() << "': " << r.err
      << "(torch's weights-only load: " << wo << ")";
  return true;
}

// One test per kind of object. The generated families below (one case per allow-listed
// global, dtype, storage class, layout) are checked in loops instead.
const std::vector<std::string> kKinds = {
    // read as data
    "dense_v2", "dense_v2_legacy", "parameter", "parameter_with_state", "tensor_with_attr",
    "conj_bit", "neg_bit", "rebuild_tensor_v1", "size", "device", "counter", "set", "complex",
    "bytes", "bytearray", "dtype_values", "parameter_reduce", "storage_untyped", "storage_typed",
    // refused by name, with the reason
    "tensor_subclass", "qtensor_per_tensor", "qtensor_per_channel", "sparse_coo", "sparse_csr",
    "sparse_csc", "sparse_bsr", "sparse_bsc", "nested", "nested_jagged", "meta", "wrapper_subclass",
    "device_from_cpu", "device_from_numpy", "call_FloatTensor", "call_sparse_FloatTensor",
    "call_Tensor", "newobj_Tensor_set", "call_UntypedStorage"};
const std::vector<std::string> kFamilies = {"ref_", "tensor_", "storage_", "layout_"};

bool in_family(const std::string& name, const std::string& family) {
  if (std::find(kKinds.begin(), kKinds.end(), name) != kKinds.end()) return false;
  return name.compare(0, family.size(), family) == 0;
}

class WeightsOnlyKind : public ::testing::TestWithParam<std::string> {};

TEST_P(WeightsOnlyKind, ReadOrRefusedWithReason) {
  const json* c = find_case(GetParam());
  ASSERT_NE(c, nullptr) << "the generator wrote no case " << GetParam();
  std::string skipped;
  if (!check_case(*c, &skipped)) GTEST_SKIP() << skipped;
}

INSTANTIATE_TEST_SUITE_P(WeightsOnly, WeightsOnlyKind, ::testing::ValuesIn(kKinds),
                         [](const auto& info) { return info.param; });

class WeightsOnlyFamily : public ::testing::TestWithParam<std::string> {};

// ref_: every allow-listed global saved as a plain reference (a class, function, dtype or
// qscheme is a value too). tensor_: a tensor of every dtype. storage_: storages saved directly,
// both formats. layout_: every layout through _get_layout.
TEST_P(WeightsOnlyFamily, EachReadOrRefusedWithReason) {
  size_t checked = 0;
  std::vector<std::string> skips;
  for (const auto& c : manifest()["cases"]) {
    if (!in_family(c["name"], GetParam())) continue;
    std::string skipped;
    if (check_case(c, &skipped))
      ++checked;
    else
      skips.push_back(c["name"].get<std::string>() + ": " + skipped);
  }
  // Not "[  SKIPPED ]": CTest would take the whole family for skipped.
  for (const auto& s : skips) std::cout << "not written by this torch: " << s << "\n";
  if (checked == 0) GTEST_SKIP() << "this torch writes no case of the family";
}

INSTANTIATE_TEST_SUITE_P(WeightsOnly, WeightsOnlyFamily, ::testing::ValuesIn(kFamilies),
                         [](const auto& info) {
                           return info.param.substr(0, info.param.size() - 1);
                         });

// Allow-listed globals no case exercises, each with why (none for torch 2.13: a global that
// is only reachable through a call still gets a ref_ case saving it as a reference).
const std::map<std::string, std::string> kExcluded = {};

TEST(WeightsOnly, CoversTorchsAllowList) {
  std::set<std::string> covered;
  for (const auto& c : manifest()["cases"])
    for (const auto& g : c["covers"]) covered.insert(g);
  for (const auto& g : manifest()["allow_list"]) {
    if (covered.count(g) || kExcluded.count(g)) continue;
    ADD_FAILURE() << "torch " << manifest()["torch"].get<std::string>() << " accepts GLOBAL "
                  << g.get<std::string>()
                  << " by default, but no case in make_weights_only_cases.py covers it";
  }
  EXPECT_GE(manifest()["allow_list"].size(), 5u) << "could not read torch's allow-list";
}

// Every case the generator wrote is checked by a test here.
TEST(WeightsOnly, EveryCaseIsChecked) {
  for (const auto& c : manifest()["cases"]) {
    std::string name = c["name"];
    bool family = false;
    for (const auto& f : kFamilies) family = family || in_family(name, f);
    EXPECT_TRUE(family || std::find(kKinds.begin(), kKinds.end(), name) != kKinds.end())
        << "case " << name << " belongs to no test: add it to kKinds";
  }
}

}  // namespace
}  // namespace interop

int main(int argc, char** argv) { return interop::interop_main(argc, argv, interop::prepare); }
