// Status and Result<T>: how every component below the public C++ API reports failure.
// A Status carries a code (the same numbers as the C ABI's ckptio_code) and a one-line
// message that already names the file, record or key and what is wrong.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "export.h"  // relative: this header is installed beside it

namespace ckptio {

enum class Code : int {
  kOk = 0,
  kInvalidArgument = 1,  // caller error: bad option, unknown format name
  kNotFound = 2,         // missing file, record or plugin
  kCorrupt = 3,          // the bytes contradict the format (truncation, lying sizes, bad CRC)
  kUnsupported = 4,      // valid but not handled (a feature we do not read)
  kIo = 5,               // the OS refused (open, read, write, fsync, rename)
  kLimit = 6,            // a safety limit was hit (depth, memo, size)
  kForbidden = 7,        // a pickle global outside the allow-list
  kInternal = 8,         // a bug in ckptio or a plugin
};

CKPTIO_API const char* code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message starts with `context: ` (e.g. the file name).
  Status with_context(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: must not be Ok

  bool ok() const { return v_.index() == 0; }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<1>(v_);
  }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace ckptio

#define CKPTIO_CONCAT_INNER(a, b) a##b
#define CKPTIO_CONCAT(a, b) CKPTIO_CONCAT_INNER(a, b)

// Returns early with the Status of `expr` when it failed.
#define CKPTIO_RETURN_IF_ERROR(expr)          \
  do {                                        \
    ::ckptio::Status _st = (expr);            \
    if (!_st.ok()) return _st;                \
  } while (0)

// `CKPTIO_ASSIGN_OR_RETURN(auto x, f());` unwraps a Result or returns its Status.
#define CKPTIO_ASSIGN_OR_RETURN(lhs, expr) \
  CKPTIO_ASSIGN_OR_RETURN_IMPL(CKPTIO_CONCAT(_res_, __LINE__), lhs, expr)
#define CKPTIO_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
