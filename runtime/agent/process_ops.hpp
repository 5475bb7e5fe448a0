// Process ops: exec, connect, list_processes, input, close_stdin, signal, resize,
// set_env.
#pragma once

#include <nlohmann/json.hpp>

namespace sandboxd::agent {

using json = nlohmann::json;

void handle_exec(int fd, const json& req);
void handle_connect(int fd, const json& req);
void handle_list_processes(int fd, const json& req);
void handle_input(int fd, const json& req);
void handle_close_stdin(int fd, const json& req);
void handle_signal(int fd, const json& req);
void handle_resize(int fd, const json& req);
void handle_set_env(int fd, const json& req);

}  // namespace sandboxd::agent
