// Errors as values: every fallible call returns result<T>, a T or a failure
// carrying an HTTP-style status and a human-readable reason.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace sandboxd {

/// A failure a caller can act on. `status` follows HTTP semantics (400 bad
/// input, 404 missing, 409 conflict, 413 too large, 500 internal, 502 the
/// sandbox could not do it, 503 unavailable) so every dialect maps it directly.
struct failure {
  int status = 500;
  std::string message;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, failure& x) {
  return f(x.status, x.message);
}

inline failure bad_request(std::string m) { return {400, std::move(m)}; }
inline failure not_found(std::string m) { return {404, std::move(m)}; }
inline failure conflict(std::string m) { return {409, std::move(m)}; }
inline failure internal_error(std::string m) { return {500, std::move(m)}; }
inline failure bad_gateway(std::string m) { return {502, std::move(m)}; }

/// "`what`: <the text of the current errno>", for a failed system call.
inline std::string errno_text(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::move(value)) {}
  result(failure f) : v_(std::move(f)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const failure& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, failure> v_;
};

/// result<void>: success carries nothing.
struct ok_t {};
using status = result<ok_t>;
inline status success() { return ok_t{}; }

}  // namespace sandboxd
