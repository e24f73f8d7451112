// libckptio_torch against real PyTorch files made at test time (CKPTIO_TEST_PYTHON).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>

#include "ckptio/torch.h"
#include "support/process.h"
#include "support/scratch.h"
#include "tutorial_net.h"

namespace ckptio {
namespace {
namespace fs = std::filesystem;

std::string g_dir;  // Python-written inputs, made once per test binary

std::unique_ptr<test_support::ScratchDir> g_scratch;  // holds g_dir

// The command's exit status (0: success); its output goes on to the test log.
int run(const std::string& cmd) {
  test_support::RunResult r = test_support::run_shell(cmd);
  std::fputs(r.out.c_str(), stdout);
  std::fputs(r.err.c_str(), stderr);
  return r.shell_code();
}

// Removes the Python-written inputs when the test binary ends.
class CleanUp : public ::testing::Environment {
 public:
  void TearDown() override { g_scratch.reset(); }
};
const auto* const kCleanUp = ::testing::AddGlobalTestEnvironment(new CleanUp);

class TorchAdapter : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!g_dir.empty()) return;
    g_scratch = std::make_unique<test_support::ScratchDir>("torch");
    g_dir = g_scratch->path();
    ASSERT_EQ(run(CKPTIO_TEST_PYTHON " " CKPTIO_SOURCE_DIR "/tests/torch/py/make_torch_cases.py " +
                  g_dir),
              0);
  }
  static std::string file(const std::string& name) { return g_dir + "/" + name; }
  static TorchLoadOptions cpu() {
    TorchLoadOptions o;
    o.map_location = "cpu";
    return o;
  }
};

// tests/torch/py/corrupt.py MODE SRC DST: a damaged copy of a torch.save file.
int corrupt(const std::string& mode, const std::string& src, const std::string& dst) {
  return run(CKPTIO_TEST_PYTHON " " CKPTIO_SOURCE_DIR "/tests/torch/py/corrupt.py " + mode + " " +
             src + " " + dst);
}

std::vector<torch::Tensor> parameter_copies(const torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out.push_back(p.value().clone());
  return out;
}

void expect_parameters_are(const torch::nn::Module& m, const std::vector<torch::Tensor>& want) {
  size_t i = 0;
  for (const auto& p : m.named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), want.at(i++))) << p.key() << " was written";
}

// Dtypes newer than this LibTorch (torch 2.x's bits and float8 types under LibTorch 1.13)
// are refused by name when a tensor is made; ckptio::load still reads them as bytes. Under a
// LibTorch that has them (2.x), they load as tensors of that dtype.
TEST_F(TorchAdapter, DtypesThisLibTorchLacksAreRefusedByName) {
  for (DType d : {DType::kBits1x8, DType::kBits8, DType::kFloat8_e5m2, DType::kUInt8}) {
    Checkpoint c;
    c.tree.storages.push_back(StorageInfo{"0", d, 4, "cpu"});
    auto bytes = std::make_shared<std::array<uint8_t, 4>>(std::array<uint8_t, 4>{1, 2, 3, 4});
    c.storages.push_back(StorageBytes{bytes->data(), 4, bytes, false});
    TensorMeta m;
    m.dtype = d;
    m.shape = {4};
    m.strides = {1};
    auto sd = Value::dict(true);
    sd->entries.emplace_back(Value::str("t"), Value::make_tensor(m));
    c.tree.root = sd;
    std::string name(dtype_name(d));
    std::string path = file("dtype_" + name + ".pt");
    SaveOptions so;
    so.fsync = false;
    save(path, c, so);
    EXPECT_EQ(load(path).storages.at(0).size, 4u) << name;  // the plain loader reads it
    bool known = static_cast<int>(d) < static_cast<int>(c10::ScalarType::Undefined);
    if (known) {
      torch::Tensor t = load(path, cpu()).tensor("t");
      EXPECT_EQ(static_cast<int>(t.scalar_type()), static_cast<int>(d)) << name;
      EXPECT_EQ(t.numel(), 4) << name;
    } else {
      try {
        load(path, cpu()).tensor("t");
        ADD_FAILURE() << name << " loaded as a tensor";
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::kUnsupported) << e.what();
        EXPECT_NE(std::string(e.what()).find("dtype " + name + " does not exist in this LibTorch"),
                  std::string::npos)
            << e.what();
      }
    }
  }
}

TEST_F(TorchAdapter, PythonTrainedCnnGivesPythonsOutputs) {
  TorchCheckpoint ckpt = load(file("cnn.pt"), cpu());
  TutorialNet net;
  LoadStateDictReport r = load_state_dict(*net, ckpt.state_dict("model_state_dict"));
  EXPECT_TRUE(r.ok());
  net->eval();
  TorchCheckpoint io = load(file("io.pt"), cpu());
  torch::NoGradGuard no_grad;
  torch::Tensor out = net->forward(io.tensor("input"));
  EXPECT_TRUE(torch::allclose(out, io.tensor("output"), 1e-5, 1e-6))
      << (out - io.tensor("output")).abs().max().item<float>();
  EXPECT_EQ(ckpt.find("epoch")->i, 3);
}

TEST_F(TorchAdapter, ExampleProgramPrintsPythonsOutputs) {
  std::string out_file = file("example_out.txt");
  ASSERT_EQ(run(std::string(CKPTIO_EXAMPLE) + " " + file("cnn.pt") + " " + file("io.pt") + " > " +
                out_file),
            0);
  TorchCheckpoint io = load(file("io.pt"), cpu());
  torch::Tensor expected = io.tensor("output");
  FILE* f = std::fopen(out_file.c_str(), "r");
  ASSERT_NE(f, nullptr);
  for (int64_t i = 0; i < expected.size(0); ++i)
    for (int64_t j = 0; j < expected.size(1); ++j) {
      float v = 0;
      ASSERT_EQ(std::fscanf(f, "%f", &v), 1);
      EXPECT_NEAR(v, expected[i][j].item<float>(), 1e-5);
    }
  std::fclose(f);
}

TEST_F(TorchAdapter, StrictErrorListsEveryProblemAtOnceAndChangesNothing) {
  TorchCheckpoint ckpt = load(file("cnn.pt"), cpu());
  StateDict sd = ckpt.state_dict("model_state_dict");
  StateDict broken;
  for (const auto& item : sd) {
    if (item.key() == "fc3.bias") continue;  // missing
    if (item.key() == "fc2.weight")
      broken.insert(item.key(), torch::zeros({3, 3}));  // size
    else
      broken.insert(item.key(), item.value());
  }
  broken.insert("extra.weight", torch::zeros({1}));  // unexpected
  TutorialNet net;
  torch::Tensor before = net->fc1->weight.clone();
  try {
    load_state_dict(*net, broken);
    FAIL() << "strict load must fail";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("Error(s) in loading state_dict for TutorialNetImpl"), std::string::npos) << m;
    EXPECT_NE(m.find("Missing key(s) in state_dict: \"fc3.bias\""), std::string::npos) << m;
    EXPECT_NE(m.find("Unexpected key(s) in state_dict: \"extra.weight\""), std::string::npos) << m;
    EXPECT_NE(m.find("size mismatch for fc2.weight: copying a param with shape "
                     "torch.Size([3, 3]) from checkpoint, the shape in current model is "
                     "torch.Size([84, 120])."),
              std::string::npos)
        << m;
  }
  EXPECT_TRUE(torch::equal(before, net->fc1->weight));

  LoadStateDictOptions lenient;
  lenient.strict = false;
  LoadStateDictReport r = load_state_dict(*net, broken, lenient);
  EXPECT_EQ(r.missing_keys, std::vector<std::string>{"fc3.bias"});
  EXPECT_EQ(r.unexpected_keys, std::vector<std::string>{"extra.weight"});
  ASSERT_EQ(r.mismatched.size(), 1u);
  EXPECT_EQ(r.mismatched[0].key, "fc2.weight");
  EXPECT_TRUE(torch::equal(net->fc1->weight, sd["fc1.weight"]));  // what matched was loaded
}

TEST_F(TorchAdapter, PrefixRenameDtypeAndAssignOptions) {
  TorchCheckpoint dp = load(file("dp.pt"), cpu());
  TutorialNet net;
  LoadStateDictOptions o;
  o.strip_prefixes = {"_orig_mod.", "module."};
  EXPECT_TRUE(load_state_dict(*net, dp.state_dict(), o).ok());
  EXPECT_TRUE(torch::equal(net->conv1->weight, dp.tensor("module.conv1.weight")));

  // Warm start: rename fc3 -> head and add a prefix, non-strict.
  StateDict renamed;
  renamed.insert("fc3.weight", torch::ones({10, 84}));
  LoadStateDictOptions r;
  r.strict = false;
  r.renames = {{"^fc3\\.", "fc2."}};
  LoadStateDictReport rep = load_state_dict(*net, renamed, r);
  ASSERT_EQ(rep.mismatched.size(), 1u);  // fc2.weight is 84x120, not 10x84
  EXPECT_EQ(rep.mismatched[0].key, "fc2.weight");

  // dtype policy: refuse a float64 checkpoint tensor, or cast it.
  StateDict f64;
  for (const auto& item : dp.state_dict())
    f64.insert(item.key().substr(7), item.value().to(torch::kFloat64));
  LoadStateDictOptions refuse;
  refuse.dtype_policy = DTypePolicy::kRefuse;
  EXPECT_THROW(load_state_dict(*net, f64, refuse), Error);
  LoadStateDictReport cast = load_state_dict(*net, f64);
  EXPECT_EQ(cast.dtype_casts.size(), 10u);
  EXPECT_EQ(net->fc1->weight.scalar_type(), torch::kFloat32);

  // assign: the module's tensors take the checkpoint's storage (no copy).
  TorchLoadOptions zc = cpu();
  zc.base.zero_copy = true;
  TorchCheckpoint mapped = load(file("cnn.pt"), zc);
  LoadStateDictOptions assign;
  assign.assign = true;
  StateDict sd = mapped.state_dict("model_state_dict");
  load_state_dict(*net, sd, assign);
  EXPECT_EQ(net->fc1->weight.data_ptr(), sd["fc1.weight"].data_ptr());
}

// ---- load_state_dict straight from a file ---------------------------------------------------

TEST_F(TorchAdapter, StateDictFileIsReadIntoTheModulesOwnMemory) {
  TutorialNet ref;
  load_state_dict(*ref, load(file("cnn.pt"), cpu()).state_dict("model_state_dict"));
  TorchCheckpoint io = load(file("io.pt"), cpu());
  for (std::string name : {"cnn.pt", "cnn_legacy.pt"}) {
    TutorialNet net;
    std::vector<torch::Tensor> params = net->parameters();
    std::vector<void*> memory;
    std::vector<int64_t> versions;
    for (const auto& p : params) {
      memory.push_back(p.data_ptr());
      versions.push_back(p._version());
    }
    StateDictFileOptions o;
    if (name == "cnn.pt") o.state_dict_path = "model_state_dict";  // a training checkpoint
    LoadStateDictReport r = load_state_dict(*net, file(name), o);
    EXPECT_TRUE(r.ok()) << name;
    EXPECT_TRUE(r.dtype_casts.empty()) << name;
    EXPECT_EQ(r.read_in_place.size(), 10u) << name;  // every tensor, no checkpoint copy
    std::vector<torch::Tensor> expected = ref->parameters();
    ASSERT_EQ(params.size(), expected.size());
    for (size_t i = 0; i < params.size(); ++i) {
      EXPECT_TRUE(torch::equal(params[i], expected[i])) << name << " #" << i;
      EXPECT_EQ(params[i].data_ptr(), memory[i]) << name << " #" << i;    // read in place
      EXPECT_GT(params[i]._version(), versions[i]) << name << " #" << i;  // as copy_ would
    }
    net->eval();
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::allclose(net->forward(io.tensor("input")), io.tensor("output"), 1e-5, 1e-6))
        << name;
  }
}

TEST_F(TorchAdapter, StateDictFileReadsLargeTensorsInPiecesOnAnyThreadCount) {
  TorchCheckpoint big = load(file("big.pt"), cpu());  // 21 MB: two 16 MiB pieces and a bias
  for (int threads : {1, 2, 3}) {
    torch::nn::Linear lin(2500, 2100);
    StateDictFileOptions o;
    o.load.base.threads = threads;
    LoadStateDictReport r = load_state_dict(*lin, file("big.pt"), o);
    EXPECT_TRUE(r.ok()) << threads;
    EXPECT_EQ(r.read_in_place, (std::vector<std::string>{"weight", "bias"})) << threads;
    EXPECT_TRUE(torch::equal(lin->weight, big.tensor("weight"))) << threads;
    EXPECT_TRUE(torch::equal(lin->bias, big.tensor("bias"))) << threads;
  }
}

TEST_F(TorchAdapter, StateDictFileConvertsWhatCannotBeReadInPlace) {
  // A transposed (column-major) view is copied through a checkpoint tensor; a dense slice at
  // a storage offset is still read in place.
  TorchCheckpoint views = load(file("views.pt"), cpu());
  torch::nn::Linear lin(400, 120);
  void* bias_memory = lin->bias.data_ptr();
  LoadStateDictReport r = load_state_dict(*lin, file("views.pt"));
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.read_in_place, std::vector<std::string>{"bias"});
  EXPECT_TRUE(torch::equal(lin->weight, views.tensor("weight")));
  EXPECT_TRUE(torch::equal(lin->bias, views.tensor("bias")));
  EXPECT_EQ(lin->bias.data_ptr(), bias_memory);

  // Casts (a float64 file) and compressed storages (torch-zip-zstd) go the same way.
  StateDict sd = load(file("cnn.pt"), cpu()).state_dict("model_state_dict");
  StateDict f64;
  for (const auto& item : sd) f64.insert(item.key(), item.value().to(torch::kFloat64));
  ckptio::save(file("cnn_f64.pt"), f64);
  SaveOptions zstd;
  zstd.format = "torch-zip-zstd";
  ckptio::save(file("cnn.zst.pt"), sd, zstd);
  for (std::string name : {"cnn_f64.pt", "cnn.zst.pt"}) {
    TutorialNet net;
    r = load_state_dict(*net, file(name));
    EXPECT_TRUE(r.ok()) << name;
    EXPECT_TRUE(r.read_in_place.empty()) << name;
    EXPECT_EQ(r.dtype_casts.size(), name == "cnn_f64.pt" ? 10u : 0u) << name;
    EXPECT_EQ(net->fc1->weight.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::allclose(net->fc1->weight, sd["fc1.weight"])) << name;
    EXPECT_TRUE(torch::equal(net->fc3->bias, sd["fc3.bias"])) << name;
  }
  StateDictFileOptions refuse;
  refuse.load_state_dict.dtype_policy = DTypePolicy::kRefuse;
  TutorialNet net;
  EXPECT_THROW(load_state_dict(*net, file("cnn_f64.pt"), refuse), Error);

  // assign: the module takes the checkpoint's (here: mapped) storages.
  StateDictFileOptions assign;
  assign.state_dict_path = "model_state_dict";
  assign.load_state_dict.assign = true;
  assign.load.base.zero_copy = true;
  void* before = net->fc1->weight.data_ptr();
  r = load_state_dict(*net, file("cnn.pt"), assign);
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.read_in_place.empty());
  EXPECT_NE(net->fc1->weight.data_ptr(), before);
  EXPECT_TRUE(torch::equal(net->fc1->weight, sd["fc1.weight"]));
}

TEST_F(TorchAdapter, StateDictFileKeepsPyTorchsOrderForTiedModuleTensors) {
  // Two submodules share one weight; the file holds different values under both names. As
  // with PyTorch's sequential copies, the last name wins, and both paths agree.
  auto tied = [] {
    auto root = std::make_shared<torch::nn::Module>();
    torch::Tensor w = torch::zeros({64, 64});
    for (const char* name : {"a", "b"}) {
      auto m = root->register_module(name, std::make_shared<torch::nn::Module>());
      m->register_parameter("weight", w);
    }
    return root;
  };
  StateDict sd;
  sd.insert("a.weight", torch::full({64, 64}, 1.0f));
  sd.insert("b.weight", torch::full({64, 64}, 2.0f));
  ckptio::save(file("tied_module.pt"), sd);
  auto from_memory = tied();
  load_state_dict(*from_memory, sd);
  for (int threads : {1, 2}) {
    auto from_file = tied();
    StateDictFileOptions o;
    o.load.base.threads = threads;
    LoadStateDictReport r = load_state_dict(*from_file, file("tied_module.pt"), o);
    EXPECT_EQ(r.read_in_place, std::vector<std::string>{"a.weight"});
    EXPECT_TRUE(torch::equal(from_file->named_parameters()["a.weight"],
                             from_memory->named_parameters()["a.weight"]));
    EXPECT_EQ(from_file->named_parameters()["a.weight"][0][0].item<float>(), 2.0f);
  }
}

// What a progress callback saw: one sequence that never falls, keeps one total, and ends at
// (total, total).
struct ProgressLog {
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  ProgressFn fn() {
    return [this](uint64_t done, uint64_t total) { calls.emplace_back(done, total); };
  }
  void expect_one_rising_sequence(uint64_t total, const std::string& what) const {
    ASSERT_FALSE(calls.empty()) << what;
    for (size_t i = 0; i < calls.size(); ++i) EXPECT_EQ(calls[i].second, total) << what << i;
    for (size_t i = 1; i < calls.size(); ++i)
      EXPECT_GE(calls[i].first, calls[i - 1].first) << what << " call " << i;
    EXPECT_EQ(calls.back().first, total) << what;
  }
};

TEST_F(TorchAdapter, StateDictFileReportsOneRisingProgressOverEverythingItReads) {
  // In place, in pieces: the two 16 MiB pieces of the weight and the bias each report.
  const uint64_t big_bytes = (2500 * 2100 + 2100) * 4;
  for (int threads : {1, 2}) {
    torch::nn::Linear lin(2500, 2100);
    ProgressLog log;
    StateDictFileOptions o;
    o.load.base.threads = threads;
    o.load.base.progress = log.fn();
    load_state_dict(*lin, file("big.pt"), o);
    log.expect_one_rising_sequence(big_bytes, "big.pt, threads " + std::to_string(threads));
    if (threads == 1) {
      EXPECT_GE(log.calls.size(), 3u);
    }
  }
  // Staged and in place together: the transposed weight's storage (400x120 floats) is read
  // whole and copied, the bias read in place; both count.
  const uint64_t views_bytes = 400 * 120 * 4 + 120 * 4;
  torch::nn::Linear lin(400, 120);
  ProgressLog log;
  StateDictFileOptions o;
  o.load.base.progress = log.fn();
  LoadStateDictReport r = load_state_dict(*lin, file("views.pt"), o);
  ASSERT_EQ(r.read_in_place, std::vector<std::string>{"bias"});
  log.expect_one_rising_sequence(views_bytes, "views.pt");

  // ckptio::load reports the same way.
  ProgressLog whole;
  TorchLoadOptions lo = cpu();
  lo.base.progress = whole.fn();
  load(file("big.pt"), lo);
  whole.expect_one_rising_sequence(big_bytes, "load(big.pt)");
}

TEST_F(TorchAdapter, StateDictFileIsCheckedBeforeAnythingIsWritten) {
  TutorialNet net;
  torch::Tensor before = net->conv1->weight.clone();
  try {
    load_state_dict(*net, file("dp.pt"));  // keys carry DataParallel's "module." prefix
    FAIL() << "strict load must fail";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("Error(s) in loading state_dict for TutorialNetImpl"), std::string::npos) << m;
    EXPECT_NE(m.find("Missing key(s) in state_dict: \"conv1.weight\""), std::string::npos) << m;
    EXPECT_NE(m.find("Unexpected key(s) in state_dict: \"module.conv1.weight\""), std::string::npos)
        << m;
  }
  EXPECT_TRUE(torch::equal(before, net->conv1->weight));

  // Prefix rules and the file filter: only fc* is taken, the rest is reported missing.
  StateDictFileOptions o;
  o.load_state_dict.strip_prefixes = {"module."};
  o.load_state_dict.strict = false;
  o.load.filter_glob = "module.fc*";
  LoadStateDictReport r = load_state_dict(*net, file("dp.pt"), o);
  EXPECT_EQ(r.missing_keys,
            (std::vector<std::string>{"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"}));
  EXPECT_TRUE(r.unexpected_keys.empty());
  EXPECT_TRUE(torch::equal(before, net->conv1->weight));
  EXPECT_TRUE(
      torch::equal(net->fc1->weight, load(file("dp.pt"), cpu()).tensor("module.fc1.weight")));

  auto error_of = [&](const std::string& path, const StateDictFileOptions& opts) {
    try {
      load_state_dict(*net, path, opts);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  StateDictFileOptions missing;
  missing.state_dict_path = "model";
  std::string m = error_of(file("cnn.pt"), missing);
  EXPECT_NE(m.find(file("cnn.pt") + ": nothing at 'model'"), std::string::npos) << m;
  StateDictFileOptions scalar;
  scalar.state_dict_path = "epoch";
  m = error_of(file("cnn.pt"), scalar);
  EXPECT_NE(m.find("'epoch' is a"), std::string::npos) << m;
  EXPECT_NE(m.find("not a state_dict"), std::string::npos) << m;

  // A file cut short: refused with its name, whether at open or while reading.
  std::string cut = file("cut.pt");
  fs::copy_file(file("cnn_legacy.pt"), cut, fs::copy_options::overwrite_existing);
  fs::resize_file(cut, fs::file_size(cut) - 1000);
  m = error_of(cut, StateDictFileOptions{});
  EXPECT_NE(m.find(cut), std::string::npos) << m;

  // Bytes found bad only when read (here each storage's count header, which the legacy
  // reader is told to check at read time, as it is inside a zstd stream): the storages that
  // cannot be read in place are read before anything is written, so the error names the
  // file and what is wrong, and the module is unchanged.
  std::string bad = file("bad_count.pt");
  ASSERT_EQ(corrupt("legacy-count", file("cnn_legacy.pt"), bad), 0);
  TutorialNet fresh;
  const std::vector<torch::Tensor> untouched = parameter_copies(*fresh);
  StateDictFileOptions deferred;
  deferred.load.base.plugin_options.emplace_back("defer_storage_headers", "1");
  try {
    load_state_dict(*fresh, bad, deferred);
    ADD_FAILURE() << "a wrong storage count must fail the load";
  } catch (const Error& e) {
    m = e.what();
    EXPECT_NE(m.find(bad), std::string::npos) << m;
    EXPECT_NE(m.find("123456789 elements"), std::string::npos) << m;
    EXPECT_NE(m.find("nothing was written to the module"), std::string::npos) << m;
  }
  expect_parameters_are(*fresh, untouched);
}

TEST_F(TorchAdapter, CopiesLibTorchRefusesAreCkptioErrorsNamingTheKey) {
  // A module made under InferenceMode cannot be written outside it (PyTorch raises too); the
  // refusal must come as ckptio::Error in one line naming file and key, not as c10::Error.
  torch::nn::Linear lin = [] {
    c10::InferenceMode guard;
    return torch::nn::Linear(2500, 2100);
  }();
  const StateDict sd = load(file("big.pt"), cpu()).state_dict();
  for (bool from_file : {true, false}) {
    try {
      if (from_file) {
        load_state_dict(*lin, file("big.pt"));
      } else {
        load_state_dict(*lin, sd);
      }
      ADD_FAILURE() << "writing inference tensors must fail";
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
      if (from_file) {
        EXPECT_EQ(m.rfind(file("big.pt") + ": ", 0), 0u) << m;
      }
      EXPECT_NE(m.find("'weight': LibTorch cannot copy"), std::string::npos) << m;
      EXPECT_NE(m.find("nothing was written to the module"), std::string::npos) << m;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not a ckptio::Error: " << e.what();
    }
  }
}

TEST_F(TorchAdapter, StateDictFileCutShortWhileReadingInPlaceSaysTheModuleMayBePartlyLoaded) {
  // Bytes read straight into the module cannot be taken back: a file that shrinks between
  // pieces (cut here from the progress report after the first 16 MiB piece) fails the load
  // in one line naming the file and the tensor, and warns that the module may be partly
  // loaded, as PyTorch's load_state_dict leaves it when a copy fails.
  std::string shrinking = file("shrinking.pt");
  fs::copy_file(file("big.pt"), shrinking, fs::copy_options::overwrite_existing);
  torch::nn::Linear lin(2500, 2100);
  StateDictFileOptions o;
  o.load.base.threads = 1;  // pieces in order: weight, weight, bias
  o.load.base.progress = [&](uint64_t, uint64_t) {
    if (fs::file_size(shrinking) > 4096) fs::resize_file(shrinking, 4096);
  };
  try {
    load_state_dict(*lin, shrinking, o);
    ADD_FAILURE() << "a file cut short while being read must fail the load";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_NE(m.find(shrinking), std::string::npos) << m;
    EXPECT_NE(m.find("file shrank while reading"), std::string::npos) << m;
    EXPECT_NE(m.find("reading 'weight' into the module, which may now be partly loaded"),
              std::string::npos)
        << m;
  }
}

// A file whose biggest record another zip tool deflated, with a deflate stream that cannot
// be decoded: that tensor cannot be read in place, and its storage is read (and fails)
// before any tensor is written in place, so the module is left exactly as it was.
TEST_F(TorchAdapter, StateDictFileLeavesTheModuleUnchangedWhenAStorageFailsToDecode) {
  const std::string bad = file("bad_deflate.pt");
  ASSERT_EQ(corrupt("deflate", file("dp.pt"), bad), 0);
  TutorialNet net;
  const std::vector<torch::Tensor> before = parameter_copies(*net);
  StateDictFileOptions o;
  o.load_state_dict.strip_prefixes = {"module."};
  try {
    load_state_dict(*net, bad, o);
    ADD_FAILURE() << "an undecodable record must fail the load";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(bad), std::string::npos) << m;
    EXPECT_NE(m.find("deflated record '"), std::string::npos) << m;
    EXPECT_NE(m.find("nothing was written to the module"), std::string::npos) << m;
  }
  expect_parameters_are(*net, before);
}

TEST_F(TorchAdapter, MapLocationFollowsTorchLoad) {
  // Saved tag cuda:1, no CUDA here: the default keeps the tag and fails, naming it and the fix.
  try {
    load(file("cuda_tag.pt"), TorchLoadOptions{});
    FAIL() << "cuda storages must not load silently on a CPU-only machine";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cuda:1"), std::string::npos) << m;
    EXPECT_NE(m.find("map_location"), std::string::npos) << m;
  }
  TorchCheckpoint a = load(file("cuda_tag.pt"), cpu());
  EXPECT_EQ(a.tree().storages[0].device, "cuda:1");  // the saved tag is reported
  TorchCheckpoint ref = load(file("linear.pt"), cpu());
  EXPECT_TRUE(torch::equal(a.tensor("weight"), ref.tensor("weight")));

  TorchLoadOptions table;
  table.map_location = MapLocation::remap({{"cuda:1", "cpu"}});
  EXPECT_TRUE(load(file("cuda_tag.pt"), table).tensor("bias").is_cpu());
  TorchLoadOptions cb;
  std::vector<std::string> seen;
  cb.map_location = MapLocation::callback([&](const std::string& tag) {
    seen.push_back(tag);
    return std::optional<torch::Device>(torch::kCPU);
  });
  load(file("cuda_tag.pt"), cb);
  EXPECT_FALSE(seen.empty());
  EXPECT_EQ(seen[0], "cuda:1");
  EXPECT_THROW(MapLocation("not-a-device"), Error);
}

TEST_F(TorchAdapter, MapLocationCallbackRunsOncePerStorage) {
  int calls = 0;
  MapLocation counted = MapLocation::callback([&](const std::string&) {
    ++calls;
    return std::optional<torch::Device>(torch::kCPU);
  });
  // tied.pt: four tensors (a, b the same, c a view of it, d) over two storages.
  ASSERT_EQ(load(file("tied.pt"), cpu()).tree().storages.size(), 2u);
  TorchLoadOptions o;
  o.map_location = counted;
  for (bool lazy : {false, true}) {
    calls = 0;
    o.lazy = lazy;
    TorchCheckpoint t = load(file("tied.pt"), o);
    t.state_dict();
    t.tensor("c");
    t.to_ivalue();
    EXPECT_EQ(calls, 2) << "lazy " << lazy;
  }
  // A filtered load resolves the storages it selects; a tensor left out and asked for later
  // resolves its own once.
  calls = 0;
  o.lazy = false;
  o.filter_glob = "d";
  TorchCheckpoint only_d = load(file("tied.pt"), o);
  EXPECT_EQ(calls, 1);
  only_d.tensor("a");
  only_d.tensor("b");
  EXPECT_EQ(calls, 2);
  o.filter_glob.clear();

  // A file that is one tensor.
  ckptio::save(file("one_tensor.pt"), c10::IValue(torch::arange(6.0)));
  calls = 0;
  EXPECT_TRUE(torch::equal(load(file("one_tensor.pt"), o).tensor(""), torch::arange(6.0)));
  EXPECT_EQ(calls, 1);

  // load_state_dict from a file, copying into the module and assigning.
  for (bool assign : {false, true}) {
    torch::nn::Linear lin(3, 2);
    StateDictFileOptions so;
    so.load.map_location = counted;
    so.load_state_dict.assign = assign;
    calls = 0;
    EXPECT_TRUE(load_state_dict(*lin, file("cuda_tag.pt"), so).ok()) << "assign " << assign;
    EXPECT_EQ(calls, 2) << "assign " << assign;
  }
}

TEST_F(TorchAdapter, StateDictFileHonoursMapLocation) {
  TorchCheckpoint ref = load(file("linear.pt"), cpu());
  auto expect_loaded = [&](const torch::nn::Linear& lin, const std::string& what) {
    EXPECT_TRUE(torch::equal(lin->weight, ref.tensor("weight"))) << what;
    EXPECT_TRUE(torch::equal(lin->bias, ref.tensor("bias"))) << what;
  };
  // Mapped to the CPU, where the module is: read straight into it, no staging copy.
  {
    torch::nn::Linear lin(3, 2);
    StateDictFileOptions o;
    o.load.map_location = "cpu";
    LoadStateDictReport r = load_state_dict(*lin, file("cuda_tag.pt"), o);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.read_in_place, (std::vector<std::string>{"weight", "bias"}));
    expect_loaded(lin, "map_location cpu");
  }
  // No mapping and no assign: the module's devices decide, so a GPU-saved file loads into a
  // CPU module here.
  {
    torch::nn::Linear lin(3, 2);
    EXPECT_TRUE(load_state_dict(*lin, file("cuda_tag.pt")).ok());
    expect_loaded(lin, "default map_location");
  }
  // With assign the module's tensors are the checkpoint's, where the mapping put them.
  {
    torch::nn::Linear lin(3, 2);
    void* before = lin->weight.data_ptr();
    StateDictFileOptions o;
    o.load_state_dict.assign = true;
    o.load.map_location = MapLocation::remap({{"cuda:1", "cpu"}});
    EXPECT_TRUE(load_state_dict(*lin, file("cuda_tag.pt"), o).ok());
    EXPECT_TRUE(lin->weight.is_cpu());
    EXPECT_TRUE(lin->bias.is_cpu());
    EXPECT_NE(lin->weight.data_ptr(), before);
    expect_loaded(lin, "assign");
  }

  // A mapping that cannot be satisfied fails the load naming the file and the storage, and
  // nothing is written to the module.
  auto refused = [&](const StateDictFileOptions& o, const std::string& want) {
    torch::nn::Linear lin(3, 2);
    std::vector<torch::Tensor> before = parameter_copies(*lin);
    try {
      load_state_dict(*lin, file("cuda_tag.pt"), o);
      ADD_FAILURE() << "expected an error with " << want;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(file("cuda_tag.pt") + ": storage '"), std::string::npos) << m;
      EXPECT_NE(m.find(want), std::string::npos) << m;
    }
    expect_parameters_are(*lin, before);
  };
  for (bool assign : {false, true}) {
    StateDictFileOptions throws;
    throws.load_state_dict.assign = assign;
    throws.load.map_location =
        MapLocation::callback([](const std::string&) -> std::optional<torch::Device> {
          throw std::runtime_error("no room on any device");
        });
    refused(throws, "no room on any device");
    if (torch::cuda::is_available()) continue;
    StateDictFileOptions to_cuda;
    to_cuda.load_state_dict.assign = assign;
    to_cuda.load.map_location = MapLocation::callback(
        [](const std::string&) { return std::optional<torch::Device>(torch::Device("cuda:0")); });
    refused(to_cuda, "CUDA is not available");
    StateDictFileOptions remapped;
    remapped.load_state_dict.assign = assign;
    remapped.load.map_location = MapLocation::remap({{"cuda:1", "cuda:0"}});
    refused(remapped, "CUDA is not available");
  }
  if (!torch::cuda::is_available()) {
    StateDictFileOptions keep_tags;  // with assign, the saved cuda:1 is where they would land
    keep_tags.load_state_dict.assign = true;
    refused(keep_tags, "cuda:1");
  }
  // torch.load's path names the file too.
  TorchLoadOptions throws;
  throws.map_location =
      MapLocation::callback([](const std::string&) -> std::optional<torch::Device> {
        throw std::runtime_error("no room on any device");
      });
  try {
    load(file("linear.pt"), throws);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(file("linear.pt") + ": storage '"), std::string::npos)
        << e.what();
  }
}

TEST_F(TorchAdapter, SharedStoragesStaySharedAsTorchTensors) {
  TorchCheckpoint t = load(file("tied.pt"), cpu());
  torch::Tensor a = t.tensor("a"), b = t.tensor("b"), c = t.tensor("c");
  EXPECT_EQ(a.data_ptr(), b.data_ptr());
  EXPECT_EQ(a.storage().data(), c.storage().data());
  EXPECT_EQ(c.storage_offset(), 4);
  EXPECT_TRUE(torch::equal(c, torch::arange(4.0, 12.0).reshape({2, 4})));
  a.add_(1);  // writes are visible through every view, as in Python
  EXPECT_EQ(c[0][0].item<float>(), 5.0f);
  c10::IValue iv = t.to_ivalue();
  ASSERT_TRUE(iv.isGenericDict());
  EXPECT_EQ(iv.toGenericDict().size(), 4u);
}

TEST_F(TorchAdapter, LazyAndFilteredLoadsReadOnlySelectedTensors) {
  TorchLoadOptions o = cpu();
  o.filter_glob = "model_state_dict.fc1.*";
  TorchCheckpoint ckpt = load(file("cnn.pt"), o);
  StateDict sd = ckpt.state_dict("model_state_dict");
  ASSERT_EQ(sd.size(), 2u);
  EXPECT_EQ(sd.keys()[0], "fc1.weight");
  EXPECT_EQ(sd.keys()[1], "fc1.bias");

  TorchLoadOptions lazy = cpu();
  lazy.lazy = true;
  TorchCheckpoint l = load(file("cnn.pt"), lazy);
  EXPECT_EQ(l.tree().storages.size(), 20u);  // the tree is there before any bytes
  EXPECT_EQ(l.tensor("model_state_dict.fc3.bias").numel(), 10);
}

TEST_F(TorchAdapter, SavedModuleLoadsStrictlyInPython) {
  TorchCheckpoint ckpt = load(file("cnn.pt"), cpu());
  TutorialNet net;
  load_state_dict(*net, ckpt.state_dict("model_state_dict"));
  for (const char* fmt : {"torch-zip", "torch-legacy"}) {
    std::string out = file(std::string("saved-") + fmt + ".pt");
    SaveOptions so;
    so.format = fmt;
    save(out, *net, so);
    EXPECT_EQ(run(CKPTIO_TEST_PYTHON " " CKPTIO_SOURCE_DIR "/tests/torch/py/check_saved_cnn.py " +
                  out + " " + file("cnn.pt")),
              0)
        << fmt;
  }
}

// What `same_objects.py OURS REF` says: "ok" or the differences.
std::string same_objects(const std::string& ours, const std::string& ref) {
  std::string cmd = CKPTIO_TEST_PYTHON " " CKPTIO_SOURCE_DIR "/tests/torch/py/same_objects.py " +
                    ours + " " + ref + " 2>&1";
  return test_support::run_shell(cmd).out;
}

// save() of a StateDict and of a generic IValue (dicts, lists, tuples, strings, numbers, None,
// tensors sharing storage, views) loads in Python to the same objects as LibTorch's own
// torch::pickle_save of the same value, in both formats.
TEST_F(TorchAdapter, SavedStateDictsAndIValuesLoadInPythonAsLibTorchsOwn) {
  torch::manual_seed(0);
  torch::Tensor w = torch::randn({3, 4});
  StateDict sd;
  sd.insert("w", w);
  sd.insert("w_t", w.t());  // the same storage, transposed
  sd.insert("ids", torch::arange(5, torch::kInt64));
  sd.insert("h", torch::randn({2, 2}).to(torch::kHalf));
  sd.insert("b", torch::tensor({true, false}));
  c10::impl::GenericDict inner(c10::StringType::get(), c10::AnyType::get());
  inner.insert("k", w.narrow(0, 1, 2));  // a view with an offset
  c10::impl::GenericDict root(c10::StringType::get(), c10::AnyType::get());
  root.insert("weights", w);
  root.insert("nums", c10::List<int64_t>({1, 2, 3}));
  root.insert("mix",
              c10::ivalue::Tuple::create({c10::IValue(int64_t{7}), c10::IValue(2.5),
                                          c10::IValue("text"), c10::IValue(), c10::IValue(true)}));
  root.insert("inner", inner);
  root.insert("bf", torch::arange(4, torch::kFloat32).to(torch::kBFloat16));

  c10::impl::GenericDict sd_as_dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& item : sd) sd_as_dict.insert(item.key(), item.value());
  struct Case {
    const char* name;
    std::function<void(const std::string&, const SaveOptions&)> save_ours;
    c10::IValue reference;
  };
  const Case cases[] = {
      {"state_dict", [&](const std::string& f, const SaveOptions& o) { ckptio::save(f, sd, o); },
       sd_as_dict},
      {"ivalue",
       [&](const std::string& f, const SaveOptions& o) { ckptio::save(f, c10::IValue(root), o); },
       root},
  };
  for (const Case& c : cases) {
    const std::string ref = file(std::string("ref-") + c.name + ".pt");
    std::vector<char> bytes = torch::pickle_save(c.reference);
    std::ofstream(ref, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    for (const char* fmt : {"torch-zip", "torch-legacy"}) {
      SaveOptions so;
      so.format = fmt;
      const std::string ours = file(std::string("ours-") + c.name + "-" + fmt + ".pt");
      c.save_ours(ours, so);
      EXPECT_EQ(same_objects(ours, ref), "ok\n") << c.name << " as " << fmt;
    }
  }

  // snapshot() of a StateDict keeps the values of the moment it was taken.
  Checkpoint snap = snapshot(sd);
  torch::Tensor before = w.clone();
  w.add_(1.0);
  save(file("snap.pt"), snap);
  TorchCheckpoint back = load(file("snap.pt"), cpu());
  EXPECT_TRUE(torch::equal(back.tensor("w"), before));
  EXPECT_TRUE(torch::equal(back.tensor("w_t"), before.t()));
}

// to_ivalue() gives the whole tree as LibTorch values (ints, doubles, int-keyed optimizer
// state, lists, shared tensors stay one tensor), and saving that IValue gives back a file
// Python loads to the same objects as the original torch.save file.
TEST_F(TorchAdapter, ToIValueRebuildsTheTreeAndSavesBackAsTheOriginal) {
  for (const char* name : {"cnn.pt", "tied.pt"}) {
    TorchCheckpoint ckpt = load(file(name), cpu());
    c10::IValue iv = ckpt.to_ivalue();
    ASSERT_TRUE(iv.isGenericDict()) << name;
    const std::string out = file(std::string("iv-") + name);
    ckptio::save(out, iv);
    EXPECT_EQ(same_objects(out, file(name)), "ok\n") << name;
  }
  TorchCheckpoint cnn = load(file("cnn.pt"), cpu());
  c10::Dict<c10::IValue, c10::IValue> root = cnn.to_ivalue().toGenericDict();
  EXPECT_TRUE(root.at("epoch").isInt());
  EXPECT_TRUE(root.at("loss").isDouble());
  c10::IValue state = root.at("optimizer_state_dict").toGenericDict().at("state");
  ASSERT_TRUE(state.isGenericDict());
  EXPECT_TRUE(state.toGenericDict().keyType()->kind() == c10::TypeKind::IntType)
      << "optimizer state is keyed by parameter index";
  EXPECT_TRUE(torch::equal(root.at("model_state_dict").toGenericDict().at("fc1.weight").toTensor(),
                           cnn.tensor("model_state_dict.fc1.weight")));

  TorchCheckpoint tied = load(file("tied.pt"), cpu());
  c10::Dict<c10::IValue, c10::IValue> t = tied.to_ivalue().toGenericDict();
  EXPECT_TRUE(t.at("a").toTensor().is_same(t.at("b").toTensor())) << "one node, one tensor";
  EXPECT_TRUE(t.at("a").toTensor().is_alias_of(t.at("c").toTensor())) << "a view stays a view";
  EXPECT_THROW(tied.to_ivalue("no.such.path"), Error);
}

TEST_F(TorchAdapter, SnapshotIsNotAffectedByLaterTraining) {
  TutorialNet net;
  Checkpoint best = snapshot(*net);
  torch::Tensor original = net->fc1->weight.clone();
  {
    torch::NoGradGuard g;
    net->fc1->weight.add_(1.0);
  }
  std::future<void> done = save_async(file("best.pt"), best);
  {
    torch::NoGradGuard g;
    net->fc1->weight.add_(1.0);  // training goes on while the file is written
  }
  done.get();
  TorchCheckpoint back = load(file("best.pt"), cpu());
  EXPECT_TRUE(torch::equal(back.tensor("fc1.weight"), original));

  SaveOptions bad;
  bad.format = "no-such-format";
  std::future<void> f = save_async(file("x.pt"), best, bad);
  EXPECT_THROW(f.get(), Error);
}

}  // namespace
}  // namespace ckptio
