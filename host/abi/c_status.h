// The host side of the C ABI's status values and the host API table plugins receive.
#pragma once

#include <string>

#include "ckptio/plugin.h"
#include "formats/status.h"

struct ckptio_status_s {
  int32_t code;
  std::string message;
};

namespace ckptio::host {

const ckptio_host_api* host_api();
// Converts a status a plugin returned and frees it.
Status take_status(ckptio_status st);
ckptio_status make_c_status(const Status& st);

}  // namespace ckptio::host
