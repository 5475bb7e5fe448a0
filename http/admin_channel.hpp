// The local admin channel: a unix socket (mode 0600) in the data dir, so
// `sandboxd keys create` works while the server holds the database lock.
// One line per request, one line per reply:
//   keys-create ORG      →  ok KEY  |  error MESSAGE
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/result.hpp"

namespace sandboxd {

class store;

/// Requests beyond the keys (the cluster's: nodes, drain): nullopt for a
/// line it does not know, else the one-line answer or its failure.
using admin_handler =
  std::function<std::optional<result<std::string>>(const std::string& line)>;

class admin_channel {
public:
  /// Listens on `path` and answers from a thread of its own.
  static result<std::unique_ptr<admin_channel>> start(const std::string& path,
                                                      std::shared_ptr<store> db,
                                                      admin_handler more = {});
  ~admin_channel();

private:
  admin_channel() = default;
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Client side: sends one request line. 503 when nothing listens on `path`.
result<std::string> admin_request(const std::string& path, const std::string& line);

} // namespace sandboxd
