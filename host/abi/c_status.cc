#include "host/abi/c_status.h"

#include "host/abi/registry_impl.h"

namespace ckptio {
namespace {

thread_local const Registry::Impl* t_calling_registry = nullptr;

}  // namespace

CallingRegistry::CallingRegistry(const Registry::Impl& registry) : previous_(t_calling_registry) {
  t_calling_registry = &registry;
}
CallingRegistry::~CallingRegistry() { t_calling_registry = previous_; }
const Registry::Impl* CallingRegistry::current() { return t_calling_registry; }

}  // namespace ckptio

namespace ckptio::host {
namespace {

// Returned when allocating a status fails; never freed.
ckptio_status_s g_out_of_memory{CKPTIO_LIMIT, "out of memory"};

ckptio_status make_status(int32_t code, const char* message) {
  if (code == CKPTIO_OK) code = CKPTIO_INTERNAL;  // an error must not read as success
  try {
    return new ckptio_status_s{code, message ? message : ""};
  } catch (...) {
    return &g_out_of_memory;
  }
}
int32_t status_code(ckptio_status st) { return st ? st->code : CKPTIO_OK; }
const char* status_message(ckptio_status st) { return st ? st->message.c_str() : ""; }
void release_status(ckptio_status st) {
  if (st != &g_out_of_memory) delete st;
}
const ckptio_plugin_api* find_format(const char* name, uint32_t* index) {
  const Registry::Impl* registry = CallingRegistry::current();
  if (!registry) registry = &Registry::global().impl();
  return registry->find_format_api(name ? name : "", index);
}

const ckptio_host_api kHostApi = {sizeof(ckptio_host_api), CKPTIO_ABI_VERSION, make_status,
                                  status_code, status_message, release_status, find_format};

}  // namespace

const ckptio_host_api* host_api() { return &kHostApi; }

Status take_status(ckptio_status st) {
  if (!st) return Status::Ok();
  Code code = st->code >= 0 && st->code <= static_cast<int32_t>(Code::kInternal)
                  ? static_cast<Code>(st->code)
                  : Code::kInternal;
  Status out(code, st->message);
  release_status(st);
  return out;
}

ckptio_status make_c_status(const Status& st) {
  return st.ok() ? nullptr : make_status(static_cast<int32_t>(st.code()), st.message().c_str());
}

}  // namespace ckptio::host
