// libckptio_torch: LibTorch C++ optimizers <-> Python torch.optim's state_dict layout.
//
// Python's Optimizer.state_dict() is
//   {'state': {idx: {per-parameter state}}, 'param_groups': [{hyperparameters..., 'params': [idx...]}]}
// where idx numbers the parameters across the groups in order. This header converts the
// state of torch::optim::SGD, Adam, AdamW, RMSprop and Adagrad to that layout (key names,
// value types and key order as PyTorch 1.13 writes them) and back, so a training run can be
// resumed in C++ from a Python checkpoint and the other way round.
//
// Per-parameter state as Python 1.13 writes it (and as it is read back):
//   SGD      'momentum_buffer' (a tensor, or None before the first step with momentum)
//   Adam(W)  'step' (0-dim float32 tensor), 'exp_avg', 'exp_avg_sq', 'max_exp_avg_sq' (amsgrad)
//   RMSprop  'step' (int), 'square_avg', 'momentum_buffer' (momentum > 0), 'grad_avg' (centered)
//   Adagrad  'step' (0-dim float32 tensor), 'sum'
// Python-only param_group flags are written with their 1.13 defaults (maximize False,
// foreach None, capturable/differentiable/fused False). When loading, 'foreach', 'capturable',
// 'differentiable' and 'fused' are ignored (they choose kernels, not results), and so are
// keys LibTorch has no use for (e.g. a scheduler's 'initial_lr'); 'maximize': True, which
// LibTorch 1.13 cannot do, is refused.
#pragma once

#include <torch/optim/optimizer.h>

#include <cstdint>
#include <functional>
#include <string>

#include "ckptio/torch.h"

namespace ckptio {

// The optimizer's state as Python's Optimizer.state_dict() lays it out. State tensors are
// added to `builder` (CPU ones aliased: they must not change until the checkpoint is saved;
// see CheckpointBuilder). Parameters without state have no entry in 'state', as in Python.
// Throws ckptio::Error (kUnsupported) for an optimizer other than SGD, Adam, AdamW, RMSprop
// and Adagrad (e.g. LBFGS).
CKPTIO_API ValuePtr optimizer_state_value(const torch::optim::Optimizer& optimizer, CheckpointBuilder& builder);

// Returns the torch tensor for a tensor node of the value tree.
using TensorAccessor = std::function<torch::Tensor(const ValuePtr& tensor_node)>;

// Loads a Python-layout optimizer state_dict into `optimizer`, like Python's
// optimizer.load_state_dict(): the number of param_groups and of parameters in each must
// match; each group's hyperparameters (lr, betas, eps, weight_decay, amsgrad, momentum,
// dampening, nesterov, alpha, centered, lr_decay, initial_accumulator_value) replace the
// optimizer's; the state of the parameter the checkpoint numbers idx goes to the optimizer's
// parameter in the same position (groups in order) and is copied (cloned) to that parameter's
// device and, for floating-point tensors, dtype. Parameters without state in the checkpoint
// start afresh (for Adagrad: a new accumulator filled with initial_accumulator_value).
// Everything is checked before anything changes: on error (a ckptio::Error naming the key,
// e.g. "optimizer_state_dict.state.2.exp_avg: shape [8, 4], the parameter has [8]") the
// optimizer is unchanged. `where` prefixes the key names in messages.
CKPTIO_API void load_optimizer_state(torch::optim::Optimizer& optimizer, const ValuePtr& state_dict,
                          const TensorAccessor& tensor_of,
                          const std::string& where = "optimizer_state_dict");
// The same, for the node at `dotted_path` of a loaded checkpoint.
CKPTIO_API void load_optimizer_state(torch::optim::Optimizer& optimizer, TorchCheckpoint& checkpoint,
                          const std::string& dotted_path = "optimizer_state_dict");

// ---- the PyTorch tutorial's "general checkpoint" ------------------------------------------
// {'epoch': int, 'model_state_dict': ..., 'optimizer_state_dict': ..., 'loss': float}

CKPTIO_API void save_training_checkpoint(const std::string& path, const torch::nn::Module& module,
                              const torch::optim::Optimizer& optimizer, int64_t epoch,
                              double loss, const SaveOptions& options = {});

struct TrainingProgress {
  int64_t epoch = 0;
  double loss = 0;  // a float, an int, or a one-element tensor in the file
};

// Loads model_state_dict into `module` (ckptio::load_state_dict with `state_options`) and
// optimizer_state_dict into `optimizer`, and returns epoch and loss. Both are checked before
// either changes (with strict state_options, the default).
CKPTIO_API TrainingProgress load_training_checkpoint(const std::string& path, torch::nn::Module& module,
                                          torch::optim::Optimizer& optimizer,
                                          const TorchLoadOptions& options = {},
                                          const LoadStateDictOptions& state_options = {});

}  // namespace ckptio
