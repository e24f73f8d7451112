// What PyTorch 2.x writes that 1.13 did not, checked both ways against the torch that
// CKPTIO_TEST_PYTHON names (the venv's 2.13 by default; Debian's 1.13 skips what it cannot
// make): the records .format_version, .storage_alignment, byteorder and
// .data/serialization_id; every save option that torch offers (storage alignment, CRC32 off,
// _disable_byteorder_record, pickle protocols, buffers, non-ASCII names, a big-endian
// writer); and every dtype the running torch has, enumerated at test time. ckptio must read
// each file as torch.load does (inspect --json against the reference encoding), and what it
// writes must load in torch with weights_only=True and with mmap=True (also predicting the
// storage offsets as the .format_version record allows) to the same tensors, ties and views.
//
// The prepare step runs py/make_torch2_cases.py, every ckptio command and one Python pass
// over ckptio's outputs (py/check_torch2_outputs.py); the tests assert on what it recorded.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "ckptio/ckptio.h"
#include "interop_util.h"

namespace interop {
namespace {
namespace fs = std::filesystem;

// Must match make_torch2_cases.py's OPTION_CASES (CaseListMatches checks): CTest needs the
// names before anything runs. The dtype cases are found at run time instead.
const std::vector<std::string> kOptionCases = {
    "align_1",       "align_3",       "align_8",        "align_4096",    "align_32768",
    "align_65536",   "default_2x",    "no_crc32",       "pinned_d2h",    "no_byteorder_flag",
    "byteorder_big", "legacy_format", "protocol_1",     "protocol_3",    "protocol_5",
    "protocol_0",    "bytesio",       "non_ascii_name", "unknown_dtype",
};

std::string case_file(const std::string& c) { return work_dir() + "/cases/" + c + ".pt"; }
std::string ref_file(const std::string& c) { return work_dir() + "/cases/" + c + ".ref.json"; }
// ckptio's outputs: <case>.<what>.pt, with <output>.convert.run.json and <output>.check.json.
std::string out_file(const std::string& c, const std::string& what) {
  return work_dir() + "/out/" + c + "." + what + ".pt";
}
// A ckptio run on a case file: <case>.<step>.run.json.
std::string step_file(const std::string& c, const std::string& step) {
  return work_dir() + "/out/" + c + "." + step + ".run.json";
}

// The alignment option ckptio is asked to reproduce for an align_<N> case, or 0.
uint32_t source_alignment(const std::string& c) {
  return c.rfind("align_", 0) == 0 ? uint32_t(std::stoul(c.substr(6))) : 0;
}

// Every ckptio command for one case; the outputs the Python pass checks go to `outputs`.
void run_case(const std::string& c, std::vector<std::string>& outputs) {
  const std::string in = case_file(c);
  const json ref = read_json(ref_file(c));
  if (ref.contains("skip")) return;
  record(step_file(c, "inspect"), run({cli(), "inspect", in, "--json"}));
  record(step_file(c, "text"), run({cli(), "inspect", in}));
  record(step_file(c, "objects"), run({cli(), "inspect", in, "--json", "--allow-objects"}));
  record(step_file(c, "verify"), run({cli(), "verify", in}));
  std::vector<std::pair<std::string, std::vector<std::string>>> converts = {
      {"zip", {"--format", "torch-zip"}}};
  if (c == "legacy_format") converts.push_back({"legacy", {"--format", "torch-legacy"}});
  if (uint32_t n = source_alignment(c))
    converts.push_back(
        {"aligned", {"--format", "torch-zip", "--option", "alignment=" + std::to_string(n)}});
  for (const auto& [what, args] : converts) {
    const std::string out = out_file(c, what);
    std::vector<std::string> argv = {cli(), "convert", in, out};
    argv.insert(argv.end(), args.begin(), args.end());
    record(out + ".convert.run.json", run(argv));
    outputs.push_back(out);
  }
}

std::string prepare(const std::string& dir) {
  fs::create_directories(dir + "/out");
  RunResult made = run({kPython, py_script("make_torch2_cases.py"), dir + "/cases"}, 600);
  if (!made.exited || made.exit_code != 0) return made.describe();
  const json cases = read_json(dir + "/cases/cases.json");
  std::vector<std::string> names = cases["options"];
  for (const auto& d : cases["dtypes"]) names.push_back(d);
  std::vector<std::vector<std::string>> outputs(names.size());
  parallel_for(names.size(), 2, [&](size_t i) { run_case(names[i], outputs[i]); });
  json manifest = json::array();
  for (const auto& list : outputs)
    for (const auto& out : list)
      manifest.push_back({{"file", out}, {"result", out + ".check.json"}});
  write_file(dir + "/out/manifest.json", manifest.dump());
  RunResult checked =
      run({kPython, py_script("check_torch2_outputs.py"), dir + "/out/manifest.json"}, 600);
  if (!checked.exited || checked.exit_code != 0) return checked.describe();
  return "";
}

// What every file ckptio wrote as torch-zip must be: the records 2.x's torch.save writes
// (less its informational .data/serialization_id), in its order, every data record at a
// multiple of `alignment`, CRCs right, nothing compressed.
void expect_torch2_layout(const json& z, size_t storages, uint32_t alignment,
                          const std::string& out) {
  std::vector<std::string> want = {"data.pkl", ".format_version", ".storage_alignment",
                                   "byteorder"};
  for (size_t k = 0; k < storages; ++k) want.push_back("data/" + std::to_string(k));
  want.push_back("version");
  EXPECT_EQ(z["records"].get<std::vector<std::string>>(), want) << out;
  EXPECT_EQ(z[".format_version"], "1") << out;
  EXPECT_EQ(z[".storage_alignment"], std::to_string(alignment)) << out;
  EXPECT_EQ(z["byteorder"], "little") << out;
  EXPECT_EQ(z["version"], "3\n") << out;
  EXPECT_TRUE(z["bad_crc"].is_null()) << "CRC mismatch in record " << z["bad_crc"] << " of " << out;
  EXPECT_EQ(z["compressed"], json::array()) << out;
  for (const auto& [key, offset] : z["offsets"].items())
    EXPECT_EQ(offset.get<uint64_t>() % alignment, 0u)
        << "data/" << key << " of " << out << " at " << offset;
}

// One converted file: ckptio's convert succeeded and torch reads it back, every way, as the
// reference (torch's own file read with weights_only=False).
void expect_loads_as_reference(const std::string& out, const json& ref, bool zip,
                               uint32_t alignment) {
  RunResult conv = recorded(out + ".convert.run.json");
  ASSERT_TRUE(conv.exited && conv.exit_code == 0) << conv.describe();
  EXPECT_EQ(conv.err, "") << conv.describe();
  ASSERT_TRUE(fs::exists(out + ".check.json")) << "no Python check of " << out;
  const json check = read_json(out + ".check.json");
  ASSERT_TRUE(check["error"].is_null()) << "torch.load(" << out << ") failed:\n"
                                        << check["error"].get<std::string>();
  auto diffs = json_diff(check["root"], ref["root"]);
  EXPECT_TRUE(diffs.empty()) << "torch.load of " << out << " differs:\n" << diff_text(diffs);
  EXPECT_EQ(check["ties"], ref["ties"]) << "storage sharing changed in " << out;
  EXPECT_EQ(check["facts"], ref["facts"]) << "kinds/requires_grad/strides/offsets in " << out;
  // ckptio always writes protocol 2 with the allow-listed globals: weights_only=True (the
  // default since torch 2.6) must read it even where torch's own file (protocol 1, 5) fails.
  EXPECT_TRUE(check["weights_only"].is_null())
      << "torch.load(" << out << ", weights_only=True): " << check["weights_only"];
  if (!zip) {
    EXPECT_TRUE(check["zip"].is_null()) << out << " should be a legacy stream";
    return;
  }
  ASSERT_TRUE(check["zip"].is_object()) << out << " is not a zip file";
  expect_torch2_layout(check["zip"], check["zip"]["offsets"].size(), alignment, out);
  for (const char* how : {"mmap", "offsets"}) {
    const json& m = check[how];
    if (m.contains("skip")) continue;  // torch 1.13: no mmap, no offset prediction
    ASSERT_FALSE(m.contains("error"))
        << "torch.load(" << out << ", mmap=True"
        << (std::strcmp(how, "offsets") == 0 ? ") predicting storage offsets" : ")")
        << " failed: " << m["error"].get<std::string>();
    diffs = json_diff(m["root"], ref["root"]);
    EXPECT_TRUE(diffs.empty()) << how << " load of " << out << " differs:\n" << diff_text(diffs);
    EXPECT_EQ(m["ties"], ref["ties"]) << how << " load of " << out << ": storage sharing";
    EXPECT_EQ(m["facts"], ref["facts"]) << how << " load of " << out << ": views";
  }
}

// The inspect --json step of case `c` against its reference.
void expect_inspects_as_reference(const std::string& c, const json& ref) {
  RunResult r = recorded(step_file(c, "inspect"));
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.describe();
  EXPECT_EQ(r.err, "") << r.describe();
  const json got = json::parse(r.out);
  EXPECT_EQ(got["format"], ref["zip"].is_null() ? "torch-legacy" : "torch-zip");
  auto diffs = json_diff(got["root"], ref["root"]);
  EXPECT_TRUE(diffs.empty()) << "ckptio inspect --json " << case_file(c)
                             << " differs from torch.load:\n"
                             << diff_text(diffs);
  EXPECT_EQ(tensor_facts(got["root"]), ref["facts"])
      << "[kind, requires_grad, strides, storage_offset] per tensor of " << c;
}

// A file ckptio cannot represent: exit 1 and one line naming what (with --allow-objects too).
void expect_refused(const std::string& c, const json& ref) {
  for (const char* step : {"inspect", "objects"}) {
    RunResult r = recorded(step_file(c, step));
    EXPECT_TRUE(r.exited && r.exit_code == 1) << r.describe();
    EXPECT_EQ(count_lines(r.err), 1u) << r.describe();
    EXPECT_NE(r.err.find(ref["refuse"].get<std::string>()), std::string::npos)
        << r.describe() << "\n(want the line to name " << ref["refuse"] << ")";
    EXPECT_EQ(r.out, "") << r.describe();
  }
}

class Torch2Options : public ::testing::TestWithParam<std::string> {
 protected:
  std::string c() const { return GetParam(); }
  json ref() const { return read_json(ref_file(c())); }
  void SetUp() override {
    const json r = ref();
    if (r.contains("skip")) GTEST_SKIP() << r["skip"].get<std::string>();
  }
  bool refused() const { return ref().contains("refuse"); }
};

TEST_P(Torch2Options, InspectMatchesTorch) {
  const json r = ref();
  if (r.contains("refuse")) return expect_refused(c(), r);
  expect_inspects_as_reference(c(), r);
}

// ckptio verify (bounds, structure, CRC32 where the file has one) accepts torch's file:
// set_crc32_options(False) leaves CRC 0, which torch itself never checks either.
TEST_P(Torch2Options, VerifyAcceptsTorchFile) {
  if (refused()) GTEST_SKIP() << "refused on reading";
  RunResult r = recorded(step_file(c(), "verify"));
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.describe();
}

TEST_P(Torch2Options, ConvertLoadsInTorch) {
  if (refused()) GTEST_SKIP() << "refused on reading";
  const json r = ref();
  expect_loads_as_reference(out_file(c(), "zip"), r, true, 64);
  if (c() == "legacy_format") expect_loads_as_reference(out_file(c(), "legacy"), r, false, 0);
}

// --option alignment=N as the source had it: a power of two up to 32768 is honoured and
// recorded in .storage_alignment; torch's other alignments (3, 65536, whose padding may
// overflow the 16-bit extra field) are refused in one line.
TEST_P(Torch2Options, ConvertAtSourceAlignment) {
  const uint32_t n = source_alignment(c());
  if (n == 0) GTEST_SKIP() << "not an alignment case";
  const std::string out = out_file(c(), "aligned");
  if ((n & (n - 1)) != 0 || n > 32768) {
    RunResult conv = recorded(out + ".convert.run.json");
    EXPECT_TRUE(conv.exited && conv.exit_code == 1) << conv.describe();
    EXPECT_EQ(count_lines(conv.err), 1u) << conv.describe();
    EXPECT_NE(conv.err.find("alignment"), std::string::npos) << conv.describe();
    EXPECT_FALSE(fs::exists(out));
    return;
  }
  expect_loads_as_reference(out, ref(), true, n);
}

// The records of torch's own file: what ckptio writes is 2.x's list less the informational
// .data/serialization_id (torch 1.13 writes none of them and is not compared).
TEST_P(Torch2Options, TorchWritesTheRecordsCkptioWrites) {
  const json r = ref();
  if (refused() || r["zip"].is_null()) GTEST_SKIP() << "no zip file from torch";
  const json& z = r["zip"];
  if (z[".format_version"].is_null())
    GTEST_SKIP() << "this torch writes no .format_version (1.x): nothing to compare";
  std::vector<std::string> records;
  for (const auto& name : z["records"])
    if (name != ".data/serialization_id") records.push_back(name);
  EXPECT_NE(std::find(z["records"].begin(), z["records"].end(), ".data/serialization_id"),
            z["records"].end());
  if (c() == "no_byteorder_flag") {
    // Python skips the record, torch's C++ writer appends it last: still marked.
    ASSERT_FALSE(records.empty());
    EXPECT_EQ(records.back(), "byteorder");
    return;
  }
  json mine = z;
  mine["records"] = records;
  if (c() == "no_crc32") {
    EXPECT_FALSE(z["bad_crc"].is_null()) << "set_crc32_options(False) left CRCs in the file";
    mine["bad_crc"] = nullptr;
  }
  if (c() == "byteorder_big") {
    EXPECT_EQ(z["byteorder"], "big");
    mine["byteorder"] = "little";
  }
  expect_torch2_layout(mine, z["offsets"].size(),
                       std::stoul(z[".storage_alignment"].get<std::string>()), case_file(c()));
}

// The zero-copy load aliases the file only where a storage's bytes are 64-byte aligned in
// it and copies the others into aligned memory: a file saved with storage_alignment 8 (or 1,
// 3) must not hand out unaligned pointers, nor different bytes than a copy load.
TEST_P(Torch2Options, ZeroCopyOnlyWhereAligned) {
  const json r = ref();
  if (refused() || r["zip"].is_null()) GTEST_SKIP() << "no zip file from torch";
  std::vector<std::pair<std::string, json>> files = {{case_file(c()), r["zip"]}};
  const std::string aligned = out_file(c(), "aligned");
  if (fs::exists(aligned + ".check.json"))
    files.push_back({aligned, read_json(aligned + ".check.json")["zip"]});
  for (const auto& [path, z] : files) {
    SCOPED_TRACE(path);
    // torch 1.13 writes no .storage_alignment: 64, its fixed alignment.
    const uint64_t alignment = z[".storage_alignment"].is_null()
                                   ? 64
                                   : std::stoull(z[".storage_alignment"].get<std::string>());
    // Storages byte-swapped on read (a big-endian file) are never mapped.
    const bool big = z["byteorder"] == "big";
    ckptio::LoadOptions zc;
    zc.zero_copy = true;
    ckptio::Checkpoint mapped = ckptio::load(path, zc);
    ckptio::Checkpoint copied = ckptio::load(path);
    ASSERT_EQ(mapped.storages.size(), copied.storages.size());
    for (size_t i = 0; i < mapped.storages.size(); ++i) {
      const std::string& key = mapped.tree.storages[i].key;
      const ckptio::StorageBytes& m = mapped.storages[i];
      const ckptio::StorageBytes& p = copied.storages[i];
      ASSERT_EQ(m.size, p.size) << "storage " << key;
      if (m.size == 0) continue;
      ASSERT_TRUE(z["offsets"].contains(key)) << "no offset of data/" << key;
      const uint64_t at = z["offsets"][key];
      EXPECT_EQ(reinterpret_cast<uintptr_t>(m.data) % 64, 0u) << "storage " << key;
      if (at % 64 != 0) {
        EXPECT_FALSE(m.mapped) << "storage " << key << " at offset " << at;
      } else if (!big) {
        EXPECT_TRUE(m.mapped) << "storage " << key << " at offset " << at;
      }
      if (!big && alignment % 64 == 0) {
        EXPECT_EQ(at % alignment, 0u) << "storage " << key << " at offset " << at;
      }
      EXPECT_EQ(std::memcmp(m.data, p.data, m.size), 0) << "storage " << key;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, Torch2Options, ::testing::ValuesIn(kOptionCases),
                         [](const auto& info) { return info.param; });

// Every dtype the running torch has (a newer torch adds its new ones here by itself): read
// as torch reads it, shown in inspect's text, written back so that torch reads the same
// bits, dtype, shape and strides; the ones ckptio cannot represent refused in one line.
TEST(Torch2Dtypes, EveryDtypeRoundTrips) {
  const json cases = read_json(work_dir() + "/cases/cases.json");
  size_t checked = 0, refused = 0;
  for (const auto& name_json : cases["dtypes"]) {
    const std::string c = name_json;
    SCOPED_TRACE(c);
    const json r = read_json(ref_file(c));
    if (r.contains("skip")) {
      std::printf("  %s skipped: %s\n", c.c_str(), r["skip"].get<std::string>().c_str());
      continue;
    }
    if (r.contains("refuse")) {
      expect_refused(c, r);
      ++refused;
      continue;
    }
    expect_inspects_as_reference(c, r);
    const std::string dtype = c.substr(std::strlen("dtype_"));
    RunResult text = recorded(step_file(c, "text"));
    EXPECT_TRUE(text.exited && text.exit_code == 0) << text.describe();
    size_t shown = 0;
    const std::string mark = "tensor " + dtype + " [";
    for (size_t at = text.out.find(mark); at != std::string::npos; at = text.out.find(mark, at + 1))
      ++shown;
    EXPECT_EQ(shown, r["facts"].size())
        << "inspect's text shows " << shown << " '" << mark << "' lines:\n"
        << text.out;
    expect_loads_as_reference(out_file(c, "zip"), r, true, 64);
    ++checked;
  }
  std::printf("  %zu dtypes round-tripped, %zu refused in one line\n", checked, refused);
  EXPECT_GT(checked, 10u) << "the dtype enumeration found almost nothing";
}

// The enumeration is not silently empty: torch's dtypes since 1.13, and the 2.x ones when
// the running torch is a 2.x (float8 since 2.1, uint16 since 2.3).
TEST(Torch2Dtypes, EnumerationFindsTorchsDtypes) {
  const json cases = read_json(work_dir() + "/cases/cases.json");
  const auto names = cases["dtypes"].get<std::vector<std::string>>();
  std::vector<std::string> want = {"dtype_float32", "dtype_bfloat16", "dtype_complex64",
                                   "dtype_qint8"};
  if (cases["torch"].get<std::string>().rfind("1.", 0) != 0)
    for (const char* d : {"dtype_float8_e4m3fn", "dtype_uint16", "dtype_complex32", "dtype_bits8"})
      want.push_back(d);
  for (const auto& w : want) EXPECT_NE(std::find(names.begin(), names.end(), w), names.end()) << w;
}

TEST(Torch2Setup, CaseListMatches) {
  const json cases = read_json(work_dir() + "/cases/cases.json");
  EXPECT_EQ(cases["options"].get<std::vector<std::string>>(), kOptionCases)
      << "update kOptionCases in torch2_test.cc to match py/make_torch2_cases.py";
}

}  // namespace
}  // namespace interop

int main(int argc, char** argv) { return interop::interop_main(argc, argv, interop::prepare); }
