// What the CAF 0.17 `inspect` overloads beside the vocabulary types share, so
// that those types can cross a node boundary (the actor core over CAF's
// middleman). Only caf/meta headers: core/ needs no actor runtime for this.
#pragma once

#include <optional>
#include <utility>

#include <caf/meta/omittable.hpp>
#include <caf/meta/type_name.hpp>

namespace sandboxd {

// Secrets (env vars, keys) are inspected behind caf::meta::omittable(): sent
// across nodes, but left out of CAF's to_string (logs, dropped messages).

/// A std::optional member as an inspector sees it: CAF 0.17 knows only its
/// own caf::optional, and an inspect for std::optional<int> here would not be
/// found (ADL looks in std only). Written as a presence flag, then the value.
template <class T>
struct optional_field_ref {
  std::optional<T>& x;
};

/// Wraps a std::optional member for inspect: f(..., optional_field(x.m), ...).
template <class T>
optional_field_ref<T> optional_field(std::optional<T>& x) {
  return {x};
}

template <class Inspector, class T>
typename Inspector::result_type inspect(Inspector& f, optional_field_ref<T>& o) {
  if constexpr (Inspector::reads_state) {
    return o.x ? f(true, *o.x) : f(false);
  } else {
    // Loading: the flag decides whether a value follows (CAF 0.17's loading
    // inspectors all answer caf::error).
    bool set = false;
    if (auto err = f(set))
      return err;
    if (!set) {
      o.x.reset();
      return {};
    }
    T value{};
    if (auto err = f(value))
      return err;
    o.x = std::move(value);
    return {};
  }
}

} // namespace sandboxd
