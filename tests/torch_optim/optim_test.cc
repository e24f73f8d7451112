// LibTorch optimizers <-> Python torch.optim state_dicts, against real PyTorch 1.13.
//
// py/train.py (run once per ctest run by the torch_optim_test.prepare fixture, or by this
// binary itself when CKPTIO_OPTIM_WORK is unset) trains a seeded model with each optimizer
// config in Python and writes: init.pt (initial weights and data), CFG_py3.pt (the tutorial's
// general checkpoint after 3 steps), CFG_ref3.pt / CFG_ref6.pt (weights after 3 / 6 steps).
//
//   ResumeFromPython/CFG   C++ loads CFG_py3.pt into an optimizer built with wrong
//                          hyperparameters, trains 3 more steps: weights == CFG_ref6.
//   CppRoundTrip/CFG       C++ trains 3 steps from init (== CFG_ref3), saves, reloads into a
//                          fresh wrong optimizer, trains 3 more: == CFG_ref6.
//   PythonResumesCpp       C++ trains 3 steps and saves CFG_cpp3.pt for every config; Python
//                          torch.load()s it, compares its optimizer_state_dict with its own,
//                          load_state_dict()s it and trains 3 more: == CFG_ref6.
//   Errors.*               wrong optimizer kind, group/parameter counts, shapes, amsgrad
//                          without max_exp_avg_sq, maximize, LBFGS: a ckptio::Error naming
//                          the key, and the optimizer unchanged.
//
// Tolerance: rtol 1e-5, atol 1e-6. LibTorch 1.13's optimizers and Python 1.13's run the same
// ATen kernels in the same order for these configs: on this machine (CPU, Debian's LibTorch and
// python3-torch 1.13) every comparison is bit-identical (max difference 0); the tolerance only
// leaves room for other builds or BLAS libraries.
#include "ckptio/optim.h"

#include <gtest/gtest.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adagrad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/lbfgs.h>
#include <torch/optim/rmsprop.h>
#include <torch/optim/sgd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ckptio/torch.h"
#include "support/process.h"
#include "support/scratch.h"

namespace {

namespace fs = std::filesystem;
namespace optim = torch::optim;

constexpr double kRtol = 1e-5, kAtol = 1e-6;
constexpr int kSteps = 3;

std::string run_capture(const std::string& cmd, int* status) {
  test_support::RunResult r = test_support::run_shell(cmd + " 2>&1");
  *status = r.exited ? r.exit_code : -1;
  return r.out;
}

const std::string& work_dir() {
  static const std::string dir = [] {
    if (const char* env = std::getenv("CKPTIO_OPTIM_WORK")) return std::string(env);
    // Run outside ctest: make the Python files once for this process.
    static test_support::ScratchDir scratch("optim");
    const std::string d = scratch.path();
    int st = 0;
    std::string out =
        run_capture(std::string(CKPTIO_TEST_PYTHON) + " " CKPTIO_OPTIM_PY " prepare " + d, &st);
    if (st != 0) {
      fprintf(stderr, "train.py prepare failed:\n%s\n", out.c_str());
      std::abort();
    }
    return d;
  }();
  return dir;
}

std::string file(const std::string& name) { return work_dir() + "/" + name; }

// ---- the model, data and optimizer configs (as py/train.py) ------------------------------

torch::nn::Sequential make_model() {
  return torch::nn::Sequential(torch::nn::Linear(4, 8), torch::nn::Tanh(), torch::nn::Linear(8, 3));
}

std::vector<torch::Tensor> params_of(const torch::nn::Sequential& m, size_t layer) {
  return m->ptr(layer)->parameters();
}

using Factory = std::function<std::unique_ptr<optim::Optimizer>(torch::nn::Sequential&)>;
struct Config {
  Factory right;  // py/train.py's hyperparameters
  Factory wrong;  // others: loading the checkpoint must replace them
};

template <class Opt, class Options>
Factory plain(Options o) {
  return [o](torch::nn::Sequential& m) -> std::unique_ptr<optim::Optimizer> {
    return std::make_unique<Opt>(m->parameters(), o);
  };
}

Factory adam_groups(double lr, double group0_lr, std::tuple<double, double> betas) {
  return [=](torch::nn::Sequential& m) -> std::unique_ptr<optim::Optimizer> {
    std::vector<optim::OptimizerParamGroup> groups;
    groups.emplace_back(params_of(m, 0), std::make_unique<optim::AdamOptions>(
                                             optim::AdamOptions(group0_lr).betas(betas)));
    groups.emplace_back(params_of(m, 2));
    return std::make_unique<optim::Adam>(groups, optim::AdamOptions(lr).betas(betas));
  };
}

const std::map<std::string, Config>& configs() {
  using namespace torch::optim;
  static const std::map<std::string, Config> c = {
      {"sgd_momentum",
       {plain<SGD>(SGDOptions(0.05).momentum(0.9).weight_decay(0.01)),
        plain<SGD>(SGDOptions(1.0))}},
      {"sgd_nesterov",
       {plain<SGD>(SGDOptions(0.05).momentum(0.9).nesterov(true)),
        plain<SGD>(SGDOptions(1.0).momentum(0.5))}},
      {"adam", {plain<Adam>(AdamOptions(0.01)), plain<Adam>(AdamOptions(1.0).betas({0.5, 0.5}))}},
      {"adam_amsgrad",
       {plain<Adam>(AdamOptions(0.01).amsgrad(true).weight_decay(0.01)),
        plain<Adam>(AdamOptions(1.0))}},
      {"adamw",
       {plain<AdamW>(AdamWOptions(0.01)), plain<AdamW>(AdamWOptions(1.0).weight_decay(0.5))}},
      {"adamw_amsgrad",
       {plain<AdamW>(AdamWOptions(0.01).amsgrad(true)), plain<AdamW>(AdamWOptions(1.0))}},
      {"adam_groups", {adam_groups(0.01, 0.02, {0.8, 0.99}), adam_groups(1.0, 1.0, {0.9, 0.999})}},
      {"rmsprop",
       {plain<RMSprop>(RMSpropOptions(0.01).momentum(0.9).centered(true)),
        plain<RMSprop>(RMSpropOptions(1.0))}},
      {"rmsprop_plain",
       {plain<RMSprop>(RMSpropOptions(0.01).alpha(0.9)),
        plain<RMSprop>(RMSpropOptions(1.0).centered(true))}},
      {"adagrad",
       {plain<Adagrad>(AdagradOptions(0.05).lr_decay(0.01).initial_accumulator_value(0.1)),
        plain<Adagrad>(AdagradOptions(1.0))}},
  };
  return c;
}

std::vector<std::string> config_names() {
  std::vector<std::string> n;
  for (const auto& [k, v] : configs()) n.push_back(k);
  return n;
}

struct Data {
  torch::Tensor x, y;
};

Data load_data() {
  ckptio::TorchCheckpoint init = ckptio::load(file("init.pt"), ckptio::TorchLoadOptions{});
  return {init.tensor("x").clone(), init.tensor("y").clone()};
}

// Model with the Python initial weights, and the data.
Data init_model(torch::nn::Sequential& model) {
  ckptio::TorchCheckpoint init = ckptio::load(file("init.pt"), ckptio::TorchLoadOptions{});
  ckptio::load_state_dict(*model, init.state_dict("model_state_dict"));
  return load_data();
}

double train(torch::nn::Sequential& model, optim::Optimizer& opt, const Data& d, int steps) {
  double loss = 0;
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    torch::Tensor l = torch::nn::functional::mse_loss(model->forward(d.x), d.y);
    l.backward();
    opt.step();
    loss = l.item<double>();
  }
  return loss;
}

// Max over parameters of |a-b| / (|b| + atol/rtol); <= rtol means allclose(rtol, atol).
double compare_with(const torch::nn::Sequential& model, const std::string& ref_file,
                    bool expect_close = true) {
  ckptio::TorchCheckpoint ref = ckptio::load(file(ref_file), ckptio::TorchLoadOptions{});
  ckptio::StateDict want = ref.state_dict();
  double worst = 0;
  auto got = model->named_parameters();
  EXPECT_EQ(got.size(), want.size());
  for (const auto& p : got) {
    const torch::Tensor* w = want.find(p.key());
    if (!w) {
      ADD_FAILURE() << ref_file << " has no " << p.key();
      continue;
    }
    torch::Tensor a = p.value().detach(), b = *w;
    double d = ((a - b).abs() / (b.abs() + kAtol / kRtol)).max().item<double>();
    if (expect_close) {
      EXPECT_TRUE(torch::allclose(a, b, kRtol, kAtol))
          << ref_file << ": " << p.key() << " differs, max rel " << d;
    }
    worst = std::max(worst, d);
  }
  return worst;
}

class Optim : public ::testing::TestWithParam<std::string> {};

TEST_P(Optim, ResumeFromPython) {
  const Config& cfg = configs().at(GetParam());
  torch::manual_seed(123);  // different weights from Python's: loading must replace them
  auto model = make_model();
  auto opt = cfg.wrong(model);
  ckptio::TrainingProgress progress =
      ckptio::load_training_checkpoint(file(GetParam() + "_py3.pt"), *model, *opt);
  EXPECT_EQ(progress.epoch, kSteps);
  EXPECT_GT(progress.loss, 0);
  Data d = load_data();
  train(model, *opt, d, kSteps);
  double diff = compare_with(model, GetParam() + "_ref6.pt");
  RecordProperty("max_rel_diff", std::to_string(diff));

  // Control: the same weights and the right hyperparameters but no optimizer state (momentum
  // buffers, moments, step counts) end up elsewhere, so the match above needs the state.
  auto control = make_model();
  ckptio::TorchCheckpoint py3 =
      ckptio::load(file(GetParam() + "_py3.pt"), ckptio::TorchLoadOptions{});
  ckptio::load_state_dict(*control, py3.state_dict("model_state_dict"));
  auto fresh = cfg.right(control);
  train(control, *fresh, d, kSteps);
  EXPECT_GT(compare_with(control, GetParam() + "_ref6.pt", /*expect_close=*/false), 100 * kRtol);
  printf("%s: Python 3 steps + C++ 3 steps vs Python 6 steps: max rel diff %.3g\n",
         GetParam().c_str(), diff);
}

TEST_P(Optim, CppRoundTrip) {
  const Config& cfg = configs().at(GetParam());
  auto model = make_model();
  Data d = init_model(model);
  auto opt = cfg.right(model);
  double loss = train(model, *opt, d, kSteps);
  double diff3 = compare_with(model, GetParam() + "_ref3.pt");
  std::string path = file(GetParam() + "_cpproundtrip.pt");
  ckptio::save_training_checkpoint(path, *model, *opt, kSteps, loss);

  torch::manual_seed(7);
  auto model2 = make_model();
  auto opt2 = cfg.wrong(model2);
  ckptio::TrainingProgress progress = ckptio::load_training_checkpoint(path, *model2, *opt2);
  EXPECT_EQ(progress.epoch, kSteps);
  EXPECT_EQ(progress.loss, loss);
  train(model2, *opt2, d, kSteps);
  train(model, *opt, d, kSteps);
  double diff6 = compare_with(model2, GetParam() + "_ref6.pt");
  // The resumed run and the uninterrupted C++ run are bit for bit the same.
  for (size_t i = 0; i < model->parameters().size(); ++i)
    EXPECT_TRUE(torch::equal(model->parameters()[i], model2->parameters()[i])) << "parameter " << i;
  printf("%s: C++ 3 steps vs Python 3 steps: max rel diff %.3g; after C++ resume, 6 steps: %.3g\n",
         GetParam().c_str(), diff3, diff6);
}

INSTANTIATE_TEST_SUITE_P(Configs, Optim, ::testing::ValuesIn(config_names()),
                         [](const auto& info) { return info.param; });

TEST(OptimPython, PythonResumesCpp) {
  std::string names;
  for (const auto& [name, cfg] : configs()) {
    auto model = make_model();
    Data d = init_model(model);
    auto opt = cfg.right(model);
    double loss = train(model, *opt, d, kSteps);
    ckptio::save_training_checkpoint(file(name + "_cpp3.pt"), *model, *opt, kSteps, loss);
    names += " " + name;
  }
  int status = 0;
  std::string out = run_capture(
      std::string(CKPTIO_TEST_PYTHON) + " " CKPTIO_OPTIM_PY " verify " + work_dir() + names,
      &status);
  printf("%s", out.c_str());
  for (const auto& [name, cfg] : configs()) {
    std::string ok = "RESULT " + name + " ok";
    EXPECT_NE(out.find(ok), std::string::npos) << name << ": see the output above";
  }
  EXPECT_EQ(status, 0) << out;
}

// ---- errors -------------------------------------------------------------------------------

template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const ckptio::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ckptio::Error";
  return "";
}

TEST(OptimErrors, WrongOptimizerKind) {
  auto model = make_model();
  optim::SGD sgd(model->parameters(), optim::SGDOptions(0.5));
  std::string msg =
      error_of([&] { ckptio::load_training_checkpoint(file("adam_py3.pt"), *model, sgd); });
  EXPECT_NE(msg.find("optimizer_state_dict['param_groups'][0]: no 'momentum', so not SGD state"),
            std::string::npos)
      << msg;
  EXPECT_EQ(static_cast<optim::SGDOptions&>(sgd.param_groups()[0].options()).lr(), 0.5);
}

TEST(OptimErrors, GroupAndParameterCounts) {
  auto model = make_model();
  optim::Adam adam(model->parameters(), optim::AdamOptions(0.5));
  std::string msg =
      error_of([&] { ckptio::load_training_checkpoint(file("adam_groups_py3.pt"), *model, adam); });
  EXPECT_NE(msg.find("optimizer_state_dict['param_groups']: 2 groups in the checkpoint, the Adam "
                     "optimizer has 1"),
            std::string::npos)
      << msg;

  optim::Adam first_layer(params_of(model, 0), optim::AdamOptions(0.5));
  ckptio::TorchCheckpoint ck = ckptio::load(file("adam_py3.pt"), ckptio::TorchLoadOptions{});
  msg = error_of([&] { ckptio::load_optimizer_state(first_layer, ck); });
  EXPECT_NE(msg.find("optimizer_state_dict['param_groups'][0]['params']: 4 parameters in the "
                     "checkpoint, "
                     "the optimizer's group has 2"),
            std::string::npos)
      << msg;
  EXPECT_TRUE(first_layer.state().empty());
}

TEST(OptimErrors, ShapeMismatch) {
  auto other =
      torch::nn::Sequential(torch::nn::Linear(4, 8), torch::nn::Tanh(), torch::nn::Linear(8, 2));
  optim::Adam adam(other->parameters(), optim::AdamOptions(0.5));
  ckptio::TorchCheckpoint ck = ckptio::load(file("adam_py3.pt"), ckptio::TorchLoadOptions{});
  std::string msg = error_of([&] { ckptio::load_optimizer_state(adam, ck); });
  EXPECT_NE(
      msg.find("optimizer_state_dict['state'][2]['exp_avg']: shape [3, 8], the parameter has "
               "[2, 8]"),
      std::string::npos)
      << msg;
  EXPECT_TRUE(adam.state().empty());
  EXPECT_EQ(static_cast<optim::AdamOptions&>(adam.param_groups()[0].options()).lr(), 0.5);
}

TEST(OptimErrors, AmsgradWithoutMaxExpAvgSq) {
  auto model = make_model();
  optim::Adam adam(model->parameters(), optim::AdamOptions(0.5));
  ckptio::TorchCheckpoint ck = ckptio::load(file("adam_py3.pt"), ckptio::TorchLoadOptions{});
  ck.find("optimizer_state_dict.param_groups.0.amsgrad")->b = true;
  std::string msg = error_of([&] { ckptio::load_optimizer_state(adam, ck); });
  EXPECT_NE(msg.find("optimizer_state_dict['state'][0]: no 'max_exp_avg_sq', but the param_group "
                     "has "
                     "amsgrad True"),
            std::string::npos)
      << msg;
}

TEST(OptimErrors, MaximizeAndMissingState) {
  auto model = make_model();
  optim::RMSprop rms(model->parameters(), optim::RMSpropOptions(0.5));
  ckptio::TorchCheckpoint ck = ckptio::load(file("rmsprop_py3.pt"), ckptio::TorchLoadOptions{});
  ck.find("optimizer_state_dict.param_groups.0.maximize")->b = true;
  std::string msg = error_of([&] { ckptio::load_optimizer_state(rms, ck); });
  EXPECT_NE(msg.find("optimizer_state_dict['param_groups'][0]['maximize'] is True: LibTorch's "
                     "RMSprop "
                     "cannot maximize"),
            std::string::npos)
      << msg;
  EXPECT_EQ(ckptio::load(file("rmsprop_py3.pt"), ckptio::TorchLoadOptions{})
                .find("optimizer_state_dict.state.1.grad_avg")
                ->kind,
            ckptio::Kind::kTensor);
  ck.find("optimizer_state_dict.param_groups.0.maximize")->b = false;
  auto st1 = ck.find("optimizer_state_dict.state.1");
  st1->entries.pop_back();  // grad_avg
  msg = error_of([&] { ckptio::load_optimizer_state(rms, ck); });
  EXPECT_NE(
      msg.find("optimizer_state_dict['state'][1]: no 'grad_avg', but the param_group is centered"),
      std::string::npos)
      << msg;
}

// Sets a param_group's `key` to `value`: replaces the entry a PyTorch 2.7+ file already has
// (its AdamW writes decoupled_weight_decay itself), or appends it, as a 2.7+ file would have it.
void set_group_flag(const ckptio::ValuePtr& group, const std::string& key, bool value) {
  for (auto& [k, v] : group->entries)
    if (k->kind == ckptio::Kind::kStr && k->s == key) {
      v = ckptio::Value::boolean(value);
      return;
    }
  group->entries.emplace_back(ckptio::Value::str(key), ckptio::Value::boolean(value));
}

// PyTorch 2.7+ marks AdamW state with decoupled_weight_decay True (and Adam's False);
// LibTorch's Adam and AdamW each do only one, so with weight decay the other is refused.
TEST(OptimErrors, DecoupledWeightDecayGoesToTheMatchingOptimizer) {
  auto model = make_model();
  for (bool decoupled : {true, false}) {
    ckptio::TorchCheckpoint ck = ckptio::load(file("adamw_py3.pt"), ckptio::TorchLoadOptions{});
    ckptio::ValuePtr group = ck.find("optimizer_state_dict.param_groups.0");
    ASSERT_NE(ck.find("optimizer_state_dict.param_groups.0.weight_decay")->f, 0.0);
    set_group_flag(group, "decoupled_weight_decay", decoupled);
    optim::Adam adam(model->parameters(), optim::AdamOptions(0.5));
    optim::AdamW adamw(model->parameters(), optim::AdamWOptions(0.5));
    optim::Optimizer& wrong = decoupled ? static_cast<optim::Optimizer&>(adam) : adamw;
    optim::Optimizer& right = decoupled ? static_cast<optim::Optimizer&>(adamw) : adam;
    std::string msg = error_of([&] { ckptio::load_optimizer_state(wrong, ck); });
    EXPECT_NE(msg.find("optimizer_state_dict['param_groups'][0]['decoupled_weight_decay'] is " +
                       std::string(decoupled ? "True" : "False") + " with a nonzero weight_decay"),
              std::string::npos)
        << msg;
    EXPECT_TRUE(wrong.state().empty());
    EXPECT_NO_THROW(ckptio::load_optimizer_state(right, ck));
    EXPECT_FALSE(right.state().empty());
  }
  // Without weight decay the two compute the same: accepted either way.
  ckptio::TorchCheckpoint ck = ckptio::load(file("adamw_py3.pt"), ckptio::TorchLoadOptions{});
  ck.find("optimizer_state_dict.param_groups.0.weight_decay")->f = 0.0;
  set_group_flag(ck.find("optimizer_state_dict.param_groups.0"), "decoupled_weight_decay", true);
  optim::Adam adam(model->parameters(), optim::AdamOptions(0.5));
  EXPECT_NO_THROW(ckptio::load_optimizer_state(adam, ck));
}

TEST(OptimErrors, UnsupportedOptimizer) {
  auto model = make_model();
  optim::LBFGS lbfgs(model->parameters());
  ckptio::CheckpointBuilder b;
  std::string msg = error_of([&] { ckptio::optimizer_state_value(lbfgs, b); });
  EXPECT_NE(msg.find("only torch::optim::SGD, Adam, AdamW, RMSprop and Adagrad"), std::string::npos)
      << msg;
}

// The layout details Python's own optimizer would write, checked without Python.
TEST(OptimLayout, AdamStepIsAFloatTensorAndSgdWithoutStateHasNoEntry) {
  auto model = make_model();
  Data d = init_model(model);
  optim::Adam adam(model->parameters(), optim::AdamOptions(0.01));
  train(model, adam, d, 2);
  ckptio::CheckpointBuilder b;
  ckptio::ValuePtr sd = ckptio::optimizer_state_value(adam, b);
  ckptio::ValuePtr step = sd->get("state")->entries.at(3).second->get("step");
  ASSERT_EQ(step->kind, ckptio::Kind::kTensor);
  EXPECT_EQ(step->tensor.dtype, ckptio::DType::kFloat32);
  EXPECT_TRUE(step->tensor.shape.empty());
  ckptio::ValuePtr params = sd->get("param_groups")->items.at(0)->get("params");
  ASSERT_EQ(params->items.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(params->items[i]->i, i);

  optim::SGD sgd(model->parameters(), optim::SGDOptions(0.1));  // no momentum: no C++ state
  train(model, sgd, d, 1);
  ckptio::ValuePtr sgd_sd = ckptio::optimizer_state_value(sgd, b);
  EXPECT_TRUE(sgd_sd->get("state")->entries.empty());
  ckptio::ValuePtr g = sgd_sd->get("param_groups")->items.at(0);
  std::vector<std::string> keys;
  for (const auto& e : g->entries) keys.push_back(e.first->s);
  EXPECT_EQ(keys,
            (std::vector<std::string>{"lr", "momentum", "dampening", "weight_decay", "nesterov",
                                      "maximize", "foreach", "differentiable", "params"}));
}

}  // namespace
