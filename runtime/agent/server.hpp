// The agent's unix-socket server: one thread per connection, one request
// per connection.
#pragma once

#include <string>

namespace sandboxd::agent {

/// Creates the parent directory, removes a stale socket, binds, chmods 0600
/// and listens. Returns the listening fd; on failure prints and returns -1.
int listen_on(const std::string& path);

/// Accepts connections forever, serving each on its own detached thread.
[[noreturn]] void serve_forever(int listen_fd);

/// Reads one request from a connected client and answers it.
void serve_connection(int fd);

}  // namespace sandboxd::agent
