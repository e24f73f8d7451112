// Turns a whole-model pickle (torch.save(model), read with LoadOptions::allow_objects so
// that the model's classes are opaque Object nodes) into the model's state_dict, without
// running any of its code: the flat OrderedDict of dotted keys that model.state_dict()
// returns — each module's _parameters, then its persistent _buffers, then its _modules'
// entries under "<name>.", parameters and buffers that are None left out, parameters as
// plain tensors (state_dict detaches them). Storages are shared with the input, so tied
// weights stay tied. PyTorch itself cannot do this without importing the model's classes.
#pragma once

#include "ckptio/ckptio.h"

namespace ckptio::host {

// The root must be a module object (an Object whose state has _parameters and _modules).
// Errors (kInvalidArgument naming the path): not a module, a non-tensor parameter or buffer,
// more than 10,000,000 entries (a shared sub-module expanded exponentially).
Result<Tree> extract_state_dict(const Tree& tree);

// The same on a loaded checkpoint; throws ckptio::Error naming the file.
Checkpoint extract_state_dict(const Checkpoint& ckpt);

}  // namespace ckptio::host
