// Request-field helpers shared by the agent's op handlers. Handlers throw
// agent_error; the dispatcher turns it into a terminal error frame.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/agent/users.hpp"

namespace sandboxd::agent {

using json = nlohmann::json;

struct agent_error : std::runtime_error {
  agent_error(std::string c, const std::string& message) : std::runtime_error(message), code(std::move(c)) {}
  std::string code;
};

[[noreturn]] void fail(const std::string& code, const std::string& message);

/// Error code for an errno value (ENOENT -> not_found, EACCES -> permission_denied, ...).
const char* code_for_errno(int err);
/// Throws agent_error for errno with message "<what>: <strerror>".
[[noreturn]] void fail_errno(int err, const std::string& what);

std::string required_string(const json& req, const char* field);
std::optional<std::string> optional_string(const json& req, const char* field);
std::optional<int64_t> optional_int(const json& req, const char* field);
int64_t required_int(const json& req, const char* field);
bool optional_bool(const json& req, const char* field, bool fallback);

/// The request's "user" (default "user"); unknown -> invalid_argument.
user_info request_user(const json& req);

/// Lexically normalises an absolute path ("/a/./b/../c//" -> "/a/c").
std::string normalize_path(const std::string& path);
/// Absolute, normalised path; relative paths (and "~/...") resolve against the user's home.
std::string resolve_path(const user_info& user, const std::string& path);

}  // namespace sandboxd::agent
