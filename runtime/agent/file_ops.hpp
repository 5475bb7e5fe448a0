// File operations, each run with the requesting user's filesystem identity
// (per-thread fsuid/fsgid/groups) so created files belong to that user.
#pragma once

#include <nlohmann/json.hpp>

namespace sandboxd::agent {

using json = nlohmann::json;

// Each handler writes its frames to the connection `fd` and throws
// agent_error for failures (the dispatcher sends the error frame).
void handle_stat(int fd, const json& req);
void handle_list(int fd, const json& req);
void handle_read(int fd, const json& req);
void handle_read_stream(int fd, const json& req);
void handle_write(int fd, const json& req);
void handle_write_stream(int fd, const json& req);
void handle_mkdir(int fd, const json& req);
void handle_remove(int fd, const json& req);
void handle_move(int fd, const json& req);

}  // namespace sandboxd::agent
