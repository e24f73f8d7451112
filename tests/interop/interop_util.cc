#include "interop_util.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "support/scratch.h"

namespace interop {
namespace fs = std::filesystem;

std::string cli() { return CKPTIO_CLI; }
std::string py_script(const std::string& name) {
  return std::string(CKPTIO_SOURCE_DIR) + "/tests/interop/py/" + name;
}
std::string peer_data_dir() { return std::string(CKPTIO_SOURCE_DIR) + "/tests/data/peer"; }

json RunResult::to_json() const {
  return json{{"argv", argv},     {"exited", exited},       {"exit_code", exit_code},
              {"signal", signal}, {"timed_out", timed_out}, {"stdout", out},
              {"stderr", err}};
}

RunResult RunResult::from_json(const json& j) {
  RunResult r;
  r.argv = j.at("argv").get<std::vector<std::string>>();
  r.exited = j.at("exited");
  r.exit_code = j.at("exit_code");
  r.signal = j.at("signal");
  r.timed_out = j.at("timed_out");
  r.out = j.at("stdout");
  r.err = j.at("stderr");
  return r;
}

RunResult run(const std::vector<std::string>& argv, int timeout_s) {
  return test_support::run(argv, timeout_s);
}

json read_json(const std::string& path) { return json::parse(read_file(path)); }

RunResult record(const std::string& path, const RunResult& r) {
  write_file(path, r.to_json().dump(-1, ' ', false, json::error_handler_t::replace));
  return r;
}

RunResult run_to(const std::vector<std::string>& argv, const std::string& path) {
  return record(path, run(argv));
}

RunResult recorded(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    RunResult r;
    r.err = "not run (an earlier step failed): " + path;
    return r;
  }
  return RunResult::from_json(read_json(path));
}

json recorded_json(const std::string& path) {
  const RunResult r = recorded(path);
  if (!(r.exited && r.exit_code == 0)) {
    ADD_FAILURE() << path << ": " << r.describe();
    return json();
  }
  json doc = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    ADD_FAILURE() << path << ": not JSON: " << r.out.substr(0, 300);
    return json();
  }
  return doc;
}

json dict_get(const json& value, const std::string& key) {
  if (value.is_object() && value.contains("dict"))
    for (const auto& kv : value["dict"])
      if (kv[0] == key) return kv[1];
  ADD_FAILURE() << "no key '" << key << "' in " << value.dump().substr(0, 300);
  return json();
}

RunResult ckptio_cli(std::vector<std::string> args, int timeout_s) {
  args.insert(args.begin(), cli());
  return run(args, timeout_s);
}

::testing::AssertionResult fails_in_one_line(const RunResult& r,
                                             const std::vector<std::string>& fragments) {
  if (!r.exited || r.exit_code != 1)
    return ::testing::AssertionFailure() << "want exit 1: " << r.describe();
  if (count_lines(r.err) != 1 || r.err.back() != '\n')
    return ::testing::AssertionFailure() << "want one line on stderr: " << r.describe();
  for (const auto& f : fragments)
    if (r.err.find(f) == std::string::npos)
      return ::testing::AssertionFailure() << "no '" << f << "' in: " << r.err;
  return ::testing::AssertionSuccess();
}

std::string join(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& x : lines) s += (s.empty() ? "" : "; ") + x;
  return s;
}

size_t count_lines(const std::string& text) {
  size_t n = 0;
  for (char c : text) n += c == '\n';
  if (!text.empty() && text.back() != '\n') ++n;
  return n;
}

namespace {

// The kinds the contract distinguishes; nlohmann's integer/unsigned split is not one.
std::string kind(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "bool";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "int";
    case json::value_t::number_float:
      return "float";
    case json::value_t::string:
      return "string";
    case json::value_t::array:
      return "array";
    case json::value_t::object:
      return "object";
    default:
      return "other";
  }
}

bool same_int(const json& a, const json& b) {
  bool a_neg = a.is_number_integer() && a.get<int64_t>() < 0;
  bool b_neg = b.is_number_integer() && b.get<int64_t>() < 0;
  if (a_neg || b_neg) return a_neg && b_neg && a.get<int64_t>() == b.get<int64_t>();
  return a.get<uint64_t>() == b.get<uint64_t>();
}

std::string brief(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 200 ? s.substr(0, 200) + "..." : s;
}

void diff(const json& got, const json& want, const std::string& path,
          std::vector<std::string>& out) {
  if (out.size() > 100) return;
  if (kind(got) != kind(want)) {
    out.push_back(path + ": got " + brief(got) + ", want " + brief(want));
    return;
  }
  if (got.is_number_float()) {
    double g = got, w = want;
    if (!(g == w && std::signbit(g) == std::signbit(w)))
      out.push_back(path + ": got " + brief(got) + ", want " + brief(want));
    return;
  }
  if (kind(got) == "int") {
    if (!same_int(got, want)) out.push_back(path + ": got " + brief(got) + ", want " + brief(want));
    return;
  }
  if (got.is_array()) {
    if (got.size() != want.size()) {
      out.push_back(path + ": " + std::to_string(got.size()) + " items, want " +
                    std::to_string(want.size()) + ": got " + brief(got) + ", want " + brief(want));
      return;
    }
    for (size_t i = 0; i < got.size(); ++i)
      diff(got[i], want[i], path + "[" + std::to_string(i) + "]", out);
    return;
  }
  if (got.is_object()) {
    json g = got;
    if (want.size() == 1 && want.contains("tensor") && g.size() == 1 && g.contains("tensor") &&
        g["tensor"].is_object()) {
      json kept = json::object();
      for (const char* k : {"dtype", "shape", "device", "sha256"})
        if (g["tensor"].contains(k)) kept[k] = g["tensor"][k];
      g["tensor"] = kept;
    }
    std::vector<std::string> gk, wk;
    for (auto it = g.begin(); it != g.end(); ++it) gk.push_back(it.key());
    for (auto it = want.begin(); it != want.end(); ++it) wk.push_back(it.key());
    std::sort(gk.begin(), gk.end());
    std::sort(wk.begin(), wk.end());
    if (gk != wk) {
      out.push_back(path + ": got " + brief(got) + ", want " + brief(want));
      return;
    }
    for (const auto& k : wk) diff(g[k], want[k], path + "." + k, out);
    return;
  }
  if (got != want) out.push_back(path + ": got " + brief(got) + ", want " + brief(want));
}

}  // namespace

std::vector<std::string> json_diff(const json& got, const json& want, const std::string& path) {
  std::vector<std::string> out;
  diff(got, want, path, out);
  return out;
}

namespace {
void collect_facts(const json& v, json& out) {
  if (v.is_array()) {
    for (const auto& x : v) collect_facts(x, out);
    return;
  }
  if (!v.is_object()) return;
  if (v.contains("tensor")) {
    const json& t = v["tensor"];
    std::string kind = t.value("is_storage", false)  ? "storage"
                       : t.value("parameter", false) ? "parameter"
                                                     : "tensor";
    out.push_back({kind, t.value("requires_grad", false), t.value("strides", json()),
                   t.value("storage_offset", json())});
  } else if (v.contains("dict")) {
    collect_facts(v["dict"], out);  // [[k, v], ...]: keys and values in order
  } else if (v.contains("tuple")) {
    collect_facts(v["tuple"], out);
  }
}
}  // namespace

json tensor_facts(const json& value) {
  json out = json::array();
  collect_facts(value, out);
  return out;
}

std::string diff_text(const std::vector<std::string>& diffs) {
  std::string s;
  for (size_t i = 0; i < diffs.size() && i < 10; ++i) s += "  " + diffs[i] + "\n";
  if (diffs.size() > 10) s += "  ... " + std::to_string(diffs.size() - 10) + " more\n";
  return s;
}

void parallel_for(size_t n, int threads, const std::function<void(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (size_t i; (i = next++) < n;) fn(i);
    });
  for (auto& t : pool) t.join();
}

namespace {

constexpr const char* kStamp = "prepared.ok";
std::string g_work_dir;

// Prepares the work directory for a hand run of the binary (no CTest fixture).
class WorkEnvironment : public ::testing::Environment {
 public:
  explicit WorkEnvironment(PrepareFn prepare) : prepare_(std::move(prepare)) {}

  void SetUp() override {
    const char* shared = getenv("CKPTIO_INTEROP_WORK");
    if (shared && *shared) {
      g_work_dir = shared;
      ASSERT_TRUE(fs::exists(fs::path(g_work_dir) / kStamp))
          << g_work_dir << " was not prepared: see the output of the '*.prepare' CTest test";
      return;
    }
    temp_ = std::make_unique<test_support::ScratchDir>("interop");
    g_work_dir = temp_->path();
    std::string error = prepare_(g_work_dir);
    ASSERT_EQ(error, "") << "preparing " << g_work_dir;
  }

  void TearDown() override { temp_.reset(); }

 private:
  PrepareFn prepare_;
  std::unique_ptr<test_support::ScratchDir> temp_;
};

}  // namespace

const std::string& work_dir() { return g_work_dir; }

std::string scratch(const std::string& name) {
  return test_support::fresh_dir(work_dir() + "/scratch/" + name);
}

int interop_main(int argc, char** argv, PrepareFn prepare) {
  const std::string flag = "--prepare-to=";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.compare(0, flag.size(), flag) != 0) continue;
    std::string dir = a.substr(flag.size());
    if (dir.empty()) {  // or the work files would land in "/" (work_dir() + "/" + name)
      fprintf(stderr, "%s: --prepare-to= needs a directory\n", argv[0]);
      return 2;
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::create_directories(dir);
    g_work_dir = dir;
    std::string error;
    try {
      error = prepare(dir);
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty()) {
      fprintf(stderr, "prepare %s failed: %s\n", dir.c_str(), error.c_str());
      return 1;
    }
    write_file((fs::path(dir) / kStamp).string(), "ok\n");
    printf("prepared %s\n", dir.c_str());
    return 0;
  }
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new WorkEnvironment(std::move(prepare)));
  return RUN_ALL_TESTS();
}

}  // namespace interop
