// Helpers for the interop tests: running the ckptio CLI and Debian's Python with a hang guard,
// comparing ckptio's JSON with the Python reference encoding, and the shared work directory
// that one "prepare" run fills for all the tests of a binary.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/files.h"
#include "support/process.h"

namespace interop {

using json = nlohmann::json;

// The interpreter with real PyTorch (tests/CMakeLists.txt: Debian's /usr/bin/python3 unless
// the build chose another), not the first python3 on PATH.
inline const char* kPython = CKPTIO_TEST_PYTHON;

std::string cli();                               // the ckptio binary under test
std::string py_script(const std::string& name);  // tests/interop/py/<name>
std::string peer_data_dir();                     // tests/data/peer

// The support library's run result, which the prepare steps keep as JSON.
struct RunResult : test_support::RunResult {
  RunResult() = default;
  RunResult(test_support::RunResult r) : test_support::RunResult(std::move(r)) {}
  json to_json() const;
  static RunResult from_json(const json& j);
};

// test_support::run with the interop tests' default hang guard.
RunResult run(const std::vector<std::string>& argv, int timeout_s = 120);
// The ckptio binary under test with `args`.
RunResult ckptio_cli(std::vector<std::string> args, int timeout_s = 60);
// Exit status 1 with exactly one line on stderr holding every fragment.
::testing::AssertionResult fails_in_one_line(const RunResult& r,
                                             const std::vector<std::string>& fragments);

// A run's result kept as JSON (the prepare step runs each command once; the tests read it),
// and read back: a missing file reads as a RunResult saying the step was not run.
RunResult record(const std::string& path, const RunResult& r);
RunResult recorded(const std::string& path);
// run(argv), recorded at `path`.
RunResult run_to(const std::vector<std::string>& argv, const std::string& path);
// A recorded run's stdout parsed as JSON (an `inspect --json`): a test failure naming the
// run and null when it failed or printed something else.
json recorded_json(const std::string& path);

// The value of string key `key` in an encoded {"dict": [[k, v], ...]}; a test failure and
// null when it has none.
json dict_get(const json& value, const std::string& key);

using test_support::list_dir;
using test_support::read_file;
using test_support::write_file;
json read_json(const std::string& path);
// Number of '\n'-terminated lines; text after the last '\n' counts as one more.
size_t count_lines(const std::string& text);

// Differences between ckptio's value `got` and the reference `want`, one line each, with a
// path ("root.dict[3][1]"). Strict about kinds: 1, 1.0 and true differ; floats compare by
// value and sign. Inside {"tensor": {...}} only the contract keys (dtype, shape, device,
// sha256) of `got` are compared; ckptio's extra keys are ignored.
std::vector<std::string> json_diff(const json& got, const json& want,
                                   const std::string& path = "root");
// Per tensor of an encoded value, depth-first in encoding order (dict keys before values;
// objects are not entered), as py/encode.py tensor_facts lists them: [kind ("tensor",
// "parameter", "storage"), requires_grad, strides, storage_offset], read from ckptio's extra
// tensor keys.
json tensor_facts(const json& value);

// The first few differences, for an assertion message.
std::string diff_text(const std::vector<std::string>& diffs);
// Every line, joined with "; ", for an assertion message.
std::string join(const std::vector<std::string>& lines);

// The work directory of this test binary, filled by the prepare function given to main().
const std::string& work_dir();
// work_dir()/scratch/<name>, new and empty, for the files one test writes.
std::string scratch(const std::string& name);

// main() for the interop binaries.
//   BINARY --prepare-to=DIR   empties DIR, runs prepare(DIR), then marks DIR complete. CTest
//                             runs this once as a fixture before the binary's tests.
//   BINARY [gtest flags]      runs the tests. With CKPTIO_INTEROP_WORK set (by CTest) they
//                             use that prepared directory; otherwise a temporary one is
//                             prepared first and removed afterwards.
// prepare returns an empty string on success, else why it failed.
using PrepareFn = std::function<std::string(const std::string& dir)>;
int interop_main(int argc, char** argv, PrepareFn prepare);

// Runs fn(i) for i in [0, n) on `threads` threads (ckptio runs are independent processes).
void parallel_for(size_t n, int threads, const std::function<void(size_t)>& fn);

}  // namespace interop
