// The ckptio command: subcommands on the bundled example, exit codes, quiet stderr.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "support/process.h"

namespace {

struct Output {
  int status;
  std::string out;
};

Output run(const std::string& args) {
  std::string cmd = std::string(CKPTIO_CLI) + " " + args + " 2>&1";
  test_support::RunResult r = test_support::run_shell(cmd);
  return Output{r.shell_code(), r.out};
}

const std::string kExample =
    std::string(CKPTIO_SOURCE_DIR) + "/examples/data/example_checkpoint.pt";

TEST(Cli, PluginsListsBothBundledFormats) {
  Output o = run("plugins");
  EXPECT_EQ(o.status, 0) << o.out;
  EXPECT_NE(o.out.find("formats available:"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("torch-zip"), std::string::npos);
  EXPECT_NE(o.out.find("torch-legacy"), std::string::npos);
  EXPECT_NE(o.out.find("(ABI 2)"), std::string::npos) << o.out;
  // Read-only formats (torchscript) are not offered as conversion targets.
  auto w = o.out.find("formats writable:");
  ASSERT_NE(w, std::string::npos) << o.out;
  std::string writable = o.out.substr(w, o.out.find('\n', w) - w);
  EXPECT_NE(writable.find("torch-zip"), std::string::npos) << writable;
  EXPECT_EQ(writable.find("torchscript"), std::string::npos) << writable;
}

// --version names ckptio's version, the plugin ABI versions it loads and the LibTorch of the
// build: the release of the test Python's torch, which the build compiled against (2.13.0
// from 2.13.0+cpu, Debian's 1.13.0 from 1.13.0a0).
TEST(Cli, VersionNamesTheAbiAndTheLibTorchOfTheBuild) {
  Output o = run("--version");
  ASSERT_EQ(o.status, 0) << o.out;
  EXPECT_EQ(o.out.rfind("ckptio 0.", 0), 0u) << o.out;
  EXPECT_NE(o.out.find("\nplugin ABI: 1 to 2\n"), std::string::npos) << o.out;
  if (!CKPTIO_TEST_BUILT_WITH_TORCH) {  // CKPTIO_WITH_TORCH=OFF, as the sanitizer build is
    EXPECT_NE(o.out.find("\nbuilt without LibTorch"), std::string::npos) << o.out;
    return;
  }
  test_support::RunResult py = test_support::run(
      {CKPTIO_TEST_PYTHON, "-c", "import re, torch; print(re.match(r'[0-9.]*[0-9]', torch.__version__)[0])"});
  ASSERT_EQ(py.shell_code(), 0) << py.out << py.err;
  const std::string torch_version = py.out.substr(0, py.out.find('\n'));
  EXPECT_NE(o.out.find("built with LibTorch " + torch_version), std::string::npos)
      << o.out << " (test Python's torch: " << torch_version << ")";
}

TEST(Cli, InspectShowsTensorsWithDtypeShapeDeviceAndSize) {
  Output o = run("inspect " + kExample);
  EXPECT_EQ(o.status, 0) << o.out;
  EXPECT_NE(o.out.find("format:   torch-zip"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("'fc1.weight': tensor float32 [120, 400] cpu 187.5 KiB"), std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find("'epoch': 3"), std::string::npos);
}

TEST(Cli, InspectJsonHasFormatAndRoot) {
  Output o = run("inspect --json " + kExample);
  ASSERT_EQ(o.status, 0) << o.out;
  auto doc = nlohmann::json::parse(o.out);
  EXPECT_EQ(doc["format"], "torch-zip");
  const auto& pairs = doc["root"]["dict"];
  ASSERT_EQ(pairs.size(), 4u);
  EXPECT_EQ(pairs[0][0], "epoch");
  EXPECT_EQ(pairs[0][1], 3);
  const auto& loss = pairs[3][1];
  EXPECT_TRUE(loss.is_number_float());
  const auto& sd = pairs[1][1]["dict"];
  EXPECT_EQ(sd[0][0], "conv1.weight");
  const auto& t = sd[0][1]["tensor"];
  EXPECT_EQ(t["dtype"], "float32");
  EXPECT_EQ(t["shape"], nlohmann::json::array({6, 3, 5, 5}));
  EXPECT_EQ(t["device"], "cpu");
  EXPECT_EQ(t["sha256"].get<std::string>().size(), 64u);
}

TEST(Cli, BenchJsonReportsTimesAndBytes) {
  Output o = run("bench " + kExample + " --repeat 2 --json");
  ASSERT_EQ(o.status, 0) << o.out;
  auto doc = nlohmann::json::parse(o.out);
  EXPECT_GT(doc["best_s"].get<double>(), 0);
  EXPECT_GE(doc["median_s"].get<double>(), doc["best_s"].get<double>());
  EXPECT_EQ(doc["bytes"], 496048);
  EXPECT_GT(doc["gbps"].get<double>(), 0);
}

// On a CUDA host the storages land on the device; elsewhere one line says why not. Which
// outcome is expected follows from the build (CKPTIO_TEST_HAVE_CUDA) and /dev/nvidiactl.
TEST(Cli, BenchOnCudaLoadsToTheDeviceOrSaysWhyNot) {
  Output o = run("bench " + kExample + " --device cuda:0 --repeat 2 --json");
#ifdef CKPTIO_TEST_HAVE_CUDA
  bool expect_load = std::ifstream("/dev/nvidiactl").good();
#else
  bool expect_load = false;
#endif
  if (expect_load) {
    ASSERT_EQ(o.status, 0) << o.out;
    auto doc = nlohmann::json::parse(o.out);
    EXPECT_EQ(doc["bytes"], 496048);
    EXPECT_GT(doc["gbps"].get<double>(), 0);
  } else {
    EXPECT_EQ(o.status, 1) << o.out;
    EXPECT_EQ(std::count(o.out.begin(), o.out.end(), '\n'), 1) << o.out;
    EXPECT_EQ(o.out.rfind("ckptio: --device cuda:0: ", 0), 0u) << o.out;
#ifndef CKPTIO_TEST_HAVE_CUDA
    EXPECT_NE(o.out.find("built without the GPU data path"), std::string::npos) << o.out;
#endif
  }
  for (std::string bad : {"tpu", "cuda:", "cuda:x", "cuda:-1", "cuda:123456789"}) {
    o = run("bench " + kExample + " --device " + bad);
    EXPECT_EQ(o.status, 1) << bad << ": " << o.out;
    EXPECT_NE(o.out.find("unknown device"), std::string::npos) << bad << ": " << o.out;
  }
  o = run("bench " + kExample + " --device cuda:0 --zero-copy");
  EXPECT_EQ(o.status, 1) << o.out;
  EXPECT_NE(o.out.find("--zero-copy"), std::string::npos) << o.out;
}

TEST(Cli, UsageErrorsExitTwoAndBadInputExitsOneWithOneLine) {
  EXPECT_EQ(run("").status, 2);
  EXPECT_EQ(run("frobnicate").status, 2);
  // Without --format the output's name decides; a name that says nothing is bad input.
  Output unnamed = run("convert " + kExample + " /tmp/ckptio-cli-test.noext");
  EXPECT_EQ(unnamed.status, 1) << unnamed.out;
  EXPECT_NE(unnamed.out.find("cannot tell the output format"), std::string::npos) << unnamed.out;
  Output o = run("inspect /nonexistent/file.pt");
  EXPECT_EQ(o.status, 1);
  EXPECT_NE(o.out.find("/nonexistent/file.pt"), std::string::npos);
  EXPECT_EQ(std::count(o.out.begin(), o.out.end(), '\n'), 1) << o.out;
  o = run("convert " + kExample + " /tmp/ckptio-cli-test.out --format no-such-format");
  EXPECT_EQ(o.status, 1);
  EXPECT_NE(o.out.find("torch-zip"), std::string::npos) << o.out;  // lists what exists
}

}  // namespace
