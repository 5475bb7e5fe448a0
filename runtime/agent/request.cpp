#include "runtime/agent/request.hpp"

#include <cerrno>
#include <cstring>
#include <vector>

namespace sandboxd::agent {

void fail(const std::string& code, const std::string& message) { throw agent_error(code, message); }

const char* code_for_errno(int err) {
  switch (err) {
    case ENOENT:
    case ESRCH:
      return "not_found";
    case EACCES:
    case EPERM:
    case EROFS:
      return "permission_denied";
    case EEXIST:
      return "already_exists";
    case ENOTDIR:
    case EISDIR:
    case EINVAL:
    case ENAMETOOLONG:
    case ELOOP:
    case EXDEV:
      return "invalid_argument";
    case ENOTEMPTY:
    case EBUSY:
      return "failed_precondition";
    case EFBIG:
      return "too_large";
    default:
      return "internal";
  }
}

void fail_errno(int err, const std::string& what) { fail(code_for_errno(err), what + ": " + std::strerror(err)); }

std::string required_string(const json& req, const char* field) {
  auto it = req.find(field);
  if (it == req.end() || it->is_null()) fail("invalid_argument", std::string("missing required field: ") + field);
  if (!it->is_string()) fail("invalid_argument", std::string("field must be a string: ") + field);
  return it->get<std::string>();
}

std::optional<std::string> optional_string(const json& req, const char* field) {
  auto it = req.find(field);
  if (it == req.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) fail("invalid_argument", std::string("field must be a string: ") + field);
  return it->get<std::string>();
}

std::optional<int64_t> optional_int(const json& req, const char* field) {
  auto it = req.find(field);
  if (it == req.end() || it->is_null()) return std::nullopt;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number_float()) {
    double d = it->get<double>();
    if (d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
  }
  fail("invalid_argument", std::string("field must be an integer: ") + field);
}

int64_t required_int(const json& req, const char* field) {
  auto v = optional_int(req, field);
  if (!v) fail("invalid_argument", std::string("missing required field: ") + field);
  return *v;
}

bool optional_bool(const json& req, const char* field, bool fallback) {
  auto it = req.find(field);
  if (it == req.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail("invalid_argument", std::string("field must be a boolean: ") + field);
  return it->get<bool>();
}

user_info request_user(const json& req) {
  std::string name = optional_string(req, "user").value_or("user");
  auto u = lookup_user(name);
  if (!u) fail("invalid_argument", "unknown user: " + name);
  return *u;
}

std::string normalize_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string part = path.substr(i, j - i);
    if (part.empty() || part == ".") {
      // skip
    } else if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else {
      parts.push_back(std::move(part));
    }
    i = j + 1;
  }
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

std::string resolve_path(const user_info& user, const std::string& path) {
  if (path.empty()) fail("invalid_argument", "path must not be empty");
  if (path.find('\0') != std::string::npos) fail("invalid_argument", "path contains a NUL byte");
  if (path[0] == '/') return normalize_path(path);
  if (path == "~") return normalize_path(user.home);
  if (path.rfind("~/", 0) == 0) return normalize_path(user.home + path.substr(1));
  return normalize_path(user.home + "/" + path);
}

}  // namespace sandboxd::agent
