// The JSON encoding of a value tree (`ckptio inspect --json`), a contract other tools rely
// on; see docs/json.md. Tensors carry the SHA-256 of their elements in row-major
// order, so two files hold the same tensors exactly when their encodings are equal.
#pragma once

#include <string>

#include "ckptio/ckptio.h"

namespace ckptio::host {

// One JSON object: {"format", "plugin", "path", "storages", "root"}. Throws ckptio::Error
// when a shared sub-object would be expanded beyond a safe size.
std::string inspect_json(const Checkpoint& ckpt, bool pretty);

// SHA-256 (hex) of a tensor's elements in row-major order, each in its dtype's
// little-endian byte form. Empty when the storage's bytes are not loaded.
std::string tensor_sha256(const Checkpoint& ckpt, const TensorMeta& t);

}  // namespace ckptio::host
