// A job for this node's bounded executor (actors/executor.hpp): a closure,
// so it has no wire form. It is a typed message all the same, with an
// inspect that refuses to write or read one: a blocking job never leaves its
// node, and trying is an error rather than a silent copy of nothing.
#pragma once

#include <functional>
#include <type_traits>

#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/sec.hpp>

namespace sandboxd {

/// One job: runs on an executor thread; what it computes it hands over
/// through its own captures (see run_blocking).
struct blocking_job {
  std::function<void()> run;
};

/// Shown by name (CAF's to_string); serializing or deserializing one fails
/// with sec::state_not_serializable.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, blocking_job&) {
  if constexpr (std::is_void<typename Inspector::result_type>::value)
    return f(caf::meta::type_name("blocking_job"));
  else
    return caf::make_error(caf::sec::state_not_serializable,
                           "a blocking job never leaves its node");
}

} // namespace sandboxd
