// `ckptio bench FILE [--device D] [--repeat N] [--json]`: loads FILE N times into memory on
// device D and reports the best and median wall time and the throughput over the storage
// bytes. D is cpu (ckptio::load) or cuda[:N] (libckptio_cuda's load_to_device: the storages'
// bytes in device memory, the data of the tensors LibTorch would wrap around them; the
// command itself does not link LibTorch). A quick check of one file; bench/run.py and
// bench/gpu/run.sh are the full suites against PyTorch.
#pragma once

#include <string>

namespace ckptio::cli {

struct BenchArgs {
  std::string file;
  std::string device = "cpu";
  int repeat = 5;
  bool json = false;
  bool zero_copy = false;
  int threads = 0;
};

int run_bench(const BenchArgs& args);

}  // namespace ckptio::cli
