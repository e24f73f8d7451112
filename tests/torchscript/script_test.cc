// TorchScript end to end, against real PyTorch 1.13: archives made at test time by
// py/make_scripted.py (torch.jit.script and torch.jit.trace of a model with a submodule,
// BatchNorm buffers, a tensor buffer, an exported method and an extra file; a lite .ptl; a
// module with a quantized buffer), plus the peer fixtures in tests/data/peer.
//
//   Cli.*        `ckptio inspect` (text and --json) shows the module tree; `ckptio convert
//                ... --format torch-zip|torch-legacy` gives a state_dict that Python's
//                model.load_state_dict(strict=True) accepts with equal values; quantized
//                tensors and malformed archives fail cleanly (exit 1, one message).
//   Runnable.*   ckptio::load_script_module: forward() equals Python's output; extra files;
//                map_location.
//   WeightSwap.* a new state_dict (torch-legacy file from Python) loaded into the scripted
//                module through ckptio's load_state_dict, saved with save_script_module:
//                Python's torch.jit.load sees the new weights and outputs.
//
// The work directory comes from CKPTIO_TS_WORK (the torchscript_script_test.prepare fixture)
// or is made here when unset.
#include "ckptio/script.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "ckptio/torch.h"
#include "interop/interop_util.h"
#include "support/scratch.h"

namespace {

namespace fs = std::filesystem;
using interop::json;

const std::string& work() {
  static const std::string dir = [] {
    if (const char* env = std::getenv("CKPTIO_TS_WORK")) return std::string(env);
    static test_support::ScratchDir scratch("ts");
    const std::string d = scratch.path();
    auto r = interop::run({interop::kPython, CKPTIO_TS_PY, "prepare", d}, 300);
    if (!r.exited || r.exit_code != 0) throw std::runtime_error(r.describe());
    return d;
  }();
  return dir;
}
std::string w(const std::string& name) { return work() + "/" + name; }
std::string peer(const std::string& name) {
  return std::string(CKPTIO_SOURCE_DIR) + "/tests/data/peer/" + name;
}

interop::RunResult ckptio(std::vector<std::string> args) {
  args.insert(args.begin(), interop::cli());
  return interop::run(args);
}
interop::RunResult python(const std::vector<std::string>& args) {
  std::vector<std::string> argv{interop::kPython, CKPTIO_TS_PY};
  argv.insert(argv.end(), args.begin(), args.end());
  return interop::run(argv, 300);
}

torch::Tensor read_f32(const std::string& path, std::vector<int64_t> shape) {
  std::string bytes = interop::read_file(path);
  auto t = torch::empty(shape, torch::kFloat32);
  EXPECT_EQ(bytes.size(), static_cast<size_t>(t.numel()) * 4) << path;
  std::memcpy(t.data_ptr<float>(), bytes.data(), bytes.size());
  return t;
}
torch::Tensor input() { return read_f32(w("input.f32"), {5, 4}); }

std::vector<std::string> state_dict_keys() {
  std::vector<std::string> out;
  const json doc = interop::read_json(w("state_dict.json"));
  for (const auto& k : doc.at("keys")) out.push_back(k.get<std::string>());
  return out;
}

// ---- CLI ------------------------------------------------------------------------------------

TEST(Cli, InspectShowsTheModuleTree) {
  auto r = ckptio({"inspect", w("scripted.pt")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  for (const char* want :
       {"format:   torchscript", "'class': '__torch__.Net'", "'submodules':",
        "'running_mean': tensor float32 [3]", "'weight': Parameter float32 [3, 4]", "[0] 'forward'",
        "[1] 'embed'", "'meta.json': b'{\"trained\": \"yes\"}'", "'note': 'hi'", "'lite': False"})
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
}

// The value at a string key of a JSON-encoded dict ({"dict": [[k, v], ...]}).
json at(const json& dict, const std::string& key) {
  for (const auto& kv : dict.at("dict"))
    if (kv[0] == key) return kv[1];
  ADD_FAILURE() << "no key " << key;
  return json();
}

TEST(Cli, InspectJsonEncodesModulesAsDicts) {
  auto r = ckptio({"inspect", "--json", w("scripted.pt")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  json doc = json::parse(r.out);
  EXPECT_EQ(doc["format"], "torchscript");
  json m = at(doc["root"], "module");
  EXPECT_EQ(at(m, "class"), "__torch__.Net");
  json bn = at(at(at(at(m, "submodules"), "sub"), "submodules"), "bn");
  json rm = at(at(bn, "buffers"), "running_mean");
  EXPECT_EQ(rm["tensor"]["dtype"], "float32");
  EXPECT_EQ(rm["tensor"]["shape"], json::array({3}));
  EXPECT_EQ(rm["tensor"]["sha256"].get<std::string>().size(), 64u);
  json w8 = at(at(at(at(at(m, "submodules"), "sub"), "submodules"), "fc"), "parameters");
  EXPECT_EQ(at(w8, "weight")["tensor"]["parameter"], true);
  EXPECT_EQ(at(m, "methods"), json::array({"forward", "embed"}));
  EXPECT_EQ(at(at(doc["root"], "extra_files"), "meta.json")["bytes"], "eyJ0cmFpbmVkIjogInllcyJ9");
}

TEST(Cli, ConvertGivesAStateDictPythonLoads) {
  for (const char* in : {"scripted.pt", "traced.pt", "lite.ptl"}) {
    for (const char* fmt : {"torch-zip", "torch-legacy"}) {
      std::string out = w(std::string("sd_") + in + "." + fmt + ".pt");
      auto r = ckptio({"convert", w(in), out, "--format", fmt});
      ASSERT_EQ(r.exit_code, 0) << r.describe();
      auto p = python({"check_state_dict", work(), out});
      EXPECT_EQ(p.exit_code, 0) << in << " " << fmt << "\n" << p.describe();
    }
  }
}

TEST(Cli, InspectAndConvertOfPeerFixtures) {
  for (const char* f :
       {"rtorch/linear.pt", "rtorch/linear_2021.pt", "tch/foo.pt", "torchsharp/scripted.script.dat",
        "djl/identity.pt", "android/vit4mnist.ptl", "text/jit_pipeline.pt"}) {
    auto r = ckptio({"inspect", peer(f)});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_NE(r.out.find("torchscript"), std::string::npos) << f;
    auto j = ckptio({"inspect", "--json", peer(f)});
    EXPECT_EQ(j.exit_code, 0) << j.describe();
    auto c = ckptio({"convert", peer(f), w("peer_sd.pt"), "--format", "torch-zip"});
    EXPECT_EQ(c.exit_code, 0) << c.describe();
  }
}

TEST(Cli, QuantizedTensorIsNamedExactly) {
  auto r = ckptio({"convert", w("quant.pt"), w("quant_sd.pt"), "--format", "torch-zip"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("quantized tensor 'qweight' (qint8, per_channel_affine) is not supported"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(w("quant_sd.pt")));
  // The modules view reads its integer values and quantizer parameters.
  auto i = ckptio({"inspect", w("quant.pt")});
  EXPECT_EQ(i.exit_code, 0) << i.describe();
  EXPECT_NE(i.out.find("object torch._utils._rebuild_qtensor"), std::string::npos) << i.out;
  EXPECT_NE(i.out.find("tensor qint8 [3, 4]"), std::string::npos) << i.out;
}

TEST(Cli, MalformedArchivesFailCleanly) {
  std::string bytes = interop::read_file(w("scripted.pt"));
  for (size_t n : {bytes.size() / 2, bytes.size() - 30, size_t{100}}) {
    interop::write_file(w("truncated.pt"), bytes.substr(0, n));
    auto r = ckptio({"inspect", "--input-format", "torchscript", w("truncated.pt")});
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_EQ(interop::count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find("truncated.pt"), std::string::npos) << r.err;
  }
}

// ---- runnable modules -----------------------------------------------------------------------

TEST(Runnable, ForwardMatchesPython) {
  torch::Tensor want = read_f32(w("expected.f32"), {5, 2});
  for (const char* f : {"scripted.pt", "traced.pt"}) {
    torch::jit::Module m = ckptio::load_script_module(w(f));
    m.eval();
    torch::NoGradGuard ng;
    torch::Tensor got = m.forward({input()}).toTensor();
    EXPECT_TRUE(torch::allclose(got, want, 1e-6, 1e-6)) << f << "\n" << got << "\n" << want;
  }
}

TEST(Runnable, ExtraFilesAndMapLocation) {
  ckptio::ExtraFiles extra{{"meta.json", ""}, {"absent.txt", ""}};
  ckptio::ScriptLoadOptions o;
  o.extra_files = &extra;
  o.map_location = "cpu";
  torch::jit::Module m = ckptio::load_script_module(w("scripted.pt"), o);
  EXPECT_EQ(extra["meta.json"], "{\"trained\": \"yes\"}");
  EXPECT_EQ(extra["absent.txt"], "");
  for (const auto& p : m.parameters()) EXPECT_TRUE(p.device().is_cpu());
  if (!torch::cuda::is_available()) {
    ckptio::ScriptLoadOptions gpu;
    gpu.map_location = "cuda:0";
    try {
      ckptio::load_script_module(w("scripted.pt"), gpu);
      ADD_FAILURE() << "expected an error";
    } catch (const ckptio::Error& e) {
      EXPECT_NE(std::string(e.what()).find("CUDA is not available"), std::string::npos) << e.what();
    }
  }
}

TEST(Runnable, MapLocationCallbackRunsOncePerStorage) {
  ckptio::LoadOptions lo;
  lo.format = "torchscript";
  lo.load_data = false;
  lo.plugin_options.emplace_back("view", "modules");
  const size_t storages = ckptio::Reader::open(w("scripted.pt"), lo)->tree().storages.size();
  ASSERT_GT(storages, 1u);  // more storages than saved tags: counts are per storage
  size_t calls = 0;
  ckptio::ScriptLoadOptions o;
  o.map_location = ckptio::MapLocation::callback([&](const std::string&) {
    ++calls;
    return std::optional<torch::Device>(torch::kCPU);
  });
  torch::jit::Module m = ckptio::load_script_module(w("scripted.pt"), o);
  EXPECT_EQ(calls, storages);
  for (const auto& p : m.parameters()) EXPECT_TRUE(p.device().is_cpu());
}

TEST(Runnable, NotTorchScript) {
  EXPECT_THROW(ckptio::load_script_module(peer("burn/checkpoint.pt")), ckptio::Error);
  interop::write_file(w("half.pt"), interop::read_file(w("scripted.pt")).substr(0, 2000));
  EXPECT_THROW(ckptio::load_script_module(w("half.pt")), ckptio::Error);
}

TEST(Runnable, PeerFixtures) {
  for (const char* f : {"rtorch/linear_2021.pt", "tch/foo.pt", "torchsharp/scripted.script.dat"}) {
    torch::jit::Module m = ckptio::load_script_module(peer(f), {});
    // The data path and LibTorch agree on the state_dict.
    ckptio::TorchLoadOptions o;
    ckptio::TorchCheckpoint c = ckptio::load(peer(f), o);
    ckptio::StateDict data = c.state_dict();
    ckptio::StateDict jit = ckptio::script_state_dict(m);
    ASSERT_EQ(data.size(), jit.size()) << f;
    for (const auto& item : jit)
      EXPECT_TRUE(torch::equal(item.value(), data[item.key()])) << f << " " << item.key();
  }
}

// ---- weight swap ----------------------------------------------------------------------------

TEST(WeightSwap, NewCheckpointIntoScriptedModule) {
  torch::jit::Module m = ckptio::load_script_module(w("scripted.pt"));
  ckptio::TorchLoadOptions lo;
  ckptio::StateDict sd = ckptio::load(w("new_sd.pt"), lo).state_dict();
  ckptio::LoadStateDictReport rep = ckptio::load_state_dict(m, sd);
  EXPECT_TRUE(rep.ok());
  {
    torch::NoGradGuard ng;
    m.eval();
    torch::Tensor got = m.forward({input()}).toTensor();
    EXPECT_TRUE(torch::allclose(got, read_f32(w("new_expected.f32"), {5, 2}), 1e-6, 1e-6));
  }
  ckptio::ScriptSaveOptions so;
  so.extra_files["meta.json"] = "{\"trained\": \"again\"}";
  ckptio::save_script_module(w("swapped.pt"), m, so);
  auto p = python({"check_swapped", work(), w("swapped.pt")});
  EXPECT_EQ(p.exit_code, 0) << p.describe();
  // The data path reads what LibTorch wrote.
  auto r = ckptio({"inspect", w("swapped.pt")});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("again"), std::string::npos) << r.out;
}

// Saves `m` to `out` in a child process whose file-size limit is `limit` bytes, and checks
// that the save failed with one ckptio::Error line naming `out`, that the old contents
// `before` are untouched, and that no temporary is left beside it.
void expect_failed_save_leaves_old_file(const torch::jit::Module& m, const std::string& out,
                                        rlim_t limit, const std::string& before) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);  // EFBIG from write(2) instead
    rlimit lim{limit, limit};
    setrlimit(RLIMIT_FSIZE, &lim);
    try {
      ckptio::save_script_module(out, m);
      _exit(10);  // no error: wrong
    } catch (const ckptio::Error& e) {
      const std::string msg = e.what();
      _exit(msg.find(out) != std::string::npos && msg.find('\n') == std::string::npos ? 0 : 11);
    } catch (...) {
      _exit(12);
    }
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child died of signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "10: no error, 11: message without the path or multi-line, 12: not a ckptio::Error";
  EXPECT_EQ(interop::read_file(out), before) << "the old file must be untouched";
  for (const auto& e : fs::directory_iterator(fs::path(out).parent_path()))
    EXPECT_EQ(e.path().filename().string().find("ckptio-tmp"), std::string::npos)
        << "temporary left: " << e.path();
}

// save_script_module writes through the same atomic file as every save: a write that fails
// part way (here the file-size limit, EFBIG) throws naming the file, and the old file is
// untouched with no temporary left; a missing directory is one clear error.
TEST(WeightSwap, ScriptSaveIsAtomicWhenAWriteFails) {
  torch::jit::Module m = ckptio::load_script_module(w("scripted.pt"));
  const std::string dir = w("atomic");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string out = dir + "/model.pt";
  ckptio::save_script_module(out, m);
  const std::string before = interop::read_file(out);
  ASSERT_GT(before.size(), 8192u);
  expect_failed_save_leaves_old_file(m, out, 4096, before);

  try {
    ckptio::save_script_module(dir + "/no/such/dir/m.pt", m);
    ADD_FAILURE() << "saving into a missing directory should fail";
  } catch (const ckptio::Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/no/such/dir/m.pt"), std::string::npos) << e.what();
  }
}

// A record bigger than the atomic file's buffer reaches write(2) while LibTorch's zip writer
// is still inside ExportModule: the failure must come back as one ckptio::Error, with the old
// file untouched, not as a second exception from the writer's destructor (std::terminate).
TEST(WeightSwap, ScriptSaveOfALargeModuleFailsCleanlyWhenAWriteFails) {
  torch::jit::Module m("__torch__.Big");
  m.register_parameter("weight", torch::ones({16 << 20}), false);  // 64 MiB: one record
  const std::string dir = w("atomic_big");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string out = dir + "/model.pt";
  interop::write_file(out, "old contents");
  expect_failed_save_leaves_old_file(m, out, 1 << 20, "old contents");
}

TEST(WeightSwap, NewCheckpointFileReadIntoScriptedModule) {
  torch::jit::Module m = ckptio::load_script_module(w("scripted.pt"));
  torch::Tensor weight = ckptio::script_state_dict(m)["head.weight"];
  void* before = weight.data_ptr();
  EXPECT_TRUE(ckptio::load_state_dict(m, w("new_sd.pt")).ok());
  EXPECT_EQ(ckptio::script_state_dict(m)["head.weight"].data_ptr(), before);  // in place
  torch::NoGradGuard ng;
  m.eval();
  torch::Tensor got = m.forward({input()}).toTensor();
  EXPECT_TRUE(torch::allclose(got, read_f32(w("new_expected.f32"), {5, 2}), 1e-6, 1e-6));
}

TEST(WeightSwap, SharedValidation) {
  torch::jit::Module m = ckptio::load_script_module(w("scripted.pt"));
  ckptio::TorchLoadOptions lo;
  ckptio::StateDict sd = ckptio::load(w("new_sd.pt"), lo).state_dict();
  ckptio::StateDict prefixed, partial;
  for (const auto& item : sd) {
    prefixed.insert("module." + item.key(), item.value());
    if (item.key() != "head.bias") partial.insert(item.key(), item.value());
  }
  torch::Tensor before = ckptio::script_state_dict(m)["head.weight"].clone();
  try {
    ckptio::load_state_dict(m, partial);
    ADD_FAILURE() << "strict load of a partial state_dict succeeded";
  } catch (const ckptio::Error& e) {
    EXPECT_NE(std::string(e.what()).find("Missing key(s) in state_dict: \"head.bias\""),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(torch::equal(before, ckptio::script_state_dict(m)["head.weight"]));  // unchanged
  ckptio::LoadStateDictOptions lenient;
  lenient.strict = false;
  auto rep = ckptio::load_state_dict(m, partial, lenient);
  EXPECT_EQ(rep.missing_keys, std::vector<std::string>{"head.bias"});
  ckptio::LoadStateDictOptions strip;
  strip.strip_prefixes = {"module."};
  EXPECT_TRUE(ckptio::load_state_dict(m, prefixed, strip).ok());
  ckptio::StateDict wrong_dtype = sd;
  wrong_dtype["scale"] = sd["scale"].to(torch::kFloat64);
  ckptio::LoadStateDictOptions refuse;
  refuse.dtype_policy = ckptio::DTypePolicy::kRefuse;
  EXPECT_THROW(ckptio::load_state_dict(m, wrong_dtype, refuse), ckptio::Error);
  // Keys in Python's state_dict order.
  std::vector<std::string> keys;
  for (const auto& item : ckptio::script_state_dict(m)) keys.push_back(item.key());
  EXPECT_EQ(keys, state_dict_keys());
}

}  // namespace
