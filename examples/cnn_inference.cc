// Loads a checkpoint trained in Python into the C++ tutorial CNN and runs inference.
//
//   cnn_inference CHECKPOINT [INPUTS]
//
// CHECKPOINT: a torch.save file holding the general checkpoint dict (epoch,
// model_state_dict, optimizer_state_dict, loss) or a bare state_dict, in any format a
// ckptio plugin reads. The state_dict is validated strictly (every missing, unexpected or
// mis-shaped key is reported at once). INPUTS: a torch.save file with {"input": N x 3 x 32 x
// 32 float tensor}; without it a fixed random batch is used. Prints one line of 10 logits
// per input row.
#include <cstdio>
#include <iostream>

#include "ckptio/torch.h"
#include "tutorial_net.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: cnn_inference CHECKPOINT [INPUTS]\n";
    return 2;
  }
  try {
    ckptio::TorchLoadOptions opts;
    opts.map_location = "cpu";  // a GPU-trained checkpoint loads on a CPU-only machine
    ckptio::TorchCheckpoint ckpt = ckptio::load(argv[1], opts);
    std::string where = ckpt.find("model_state_dict") ? "model_state_dict" : "";

    TutorialNet net;
    ckptio::load_state_dict(*net, ckpt.state_dict(where));  // strict by default
    net->eval();

    torch::Tensor input;
    if (argc > 2) {
      ckptio::TorchCheckpoint in = ckptio::load(argv[2], opts);
      input = in.tensor("input");
    } else {
      torch::manual_seed(0);
      input = torch::randn({2, 3, 32, 32});
    }
    torch::NoGradGuard no_grad;
    torch::Tensor out = net->forward(input);
    for (int64_t i = 0; i < out.size(0); ++i) {
      for (int64_t j = 0; j < out.size(1); ++j)
        std::printf("%s%.9g", j ? " " : "", out[i][j].item<float>());
      std::printf("\n");
    }
    return 0;
  } catch (const ckptio::Error& e) {
    std::cerr << "cnn_inference: " << e.what() << "\n";
    return 1;
  }
}
