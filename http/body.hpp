// Validating request bodies: every bad input becomes a 400 naming the field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace sandboxd::http {

using json = nlohmann::json;

/// The largest request body any API route takes: the REST filesystem write
/// carries at most 1 MiB as base64 (1.34 MiB) in JSON; everything else is
/// small. The API listener refuses larger bodies before reading them.
constexpr size_t max_request_body = 2u << 20;

/// No E2B or e2a body nests deeper than a few levels (metadata and env maps
/// are flat); 64 leaves room and keeps recursive dump/compare/destroy safe.
constexpr int max_body_depth = 64;

/// Parses a JSON object within max_request_body and max_body_depth (413,
/// 400); an empty body counts as {} when `allow_empty`.
result<json> parse_object(const std::string& body, bool allow_empty = false);

/// A required (or, with a fallback, optional) string field.
result<std::string> string_field(const json& obj, const std::string& name,
                                 std::optional<std::string> fallback = {});

/// A required string field that must not be empty.
result<std::string> nonempty_string_field(const json& obj, const std::string& name);

/// An integer field within [lo, hi].
result<int64_t> int_field(const json& obj, const std::string& name,
                          std::optional<int64_t> fallback, int64_t lo,
                          int64_t hi);

/// A boolean field; absent or null → `fallback`.
result<bool> bool_field(const json& obj, const std::string& name, bool fallback);

/// An object of string values (metadata, envVars); absent or null → {}.
result<std::map<std::string, std::string>>
string_map_field(const json& obj, const std::string& name);

/// Percent-decoding of a URL component ('+' is a space in a query, not in a path).
std::string url_decode(const std::string& s, bool plus_is_space = true);

/// E2B's `metadata` filter "k=v&k2=v2" (each key and value percent-encoded
/// once more inside) → pairs that must all match.
std::map<std::string, std::string> parse_metadata_filter(const std::string& s);

/// An object of environment variables: string values, and names a process
/// environment can hold (not empty, no '=' or NUL).
result<std::map<std::string, std::string>> env_field(const json& obj, const std::string& name);

/// An integer query parameter within [lo, hi].
result<int64_t> int_param(const std::optional<std::string>& raw,
                          const std::string& name, int64_t fallback, int64_t lo,
                          int64_t hi);

} // namespace sandboxd::http
