// process.Process: Start, Connect, List, SendInput, CloseStdin, SendSignal,
// Update, translated onto the sandbox agent's process ops.
#include "http/connect_protocol.hpp"
#include "http/envd_call.hpp"
#include "http/envd_stream.hpp"

namespace sandboxd::http {

namespace {

const json keepalive_event = {{"event", {{"keepalive", json::object()}}}};

// Agent process frames → ProcessEvent messages.
std::optional<json> process_event(const json& f) {
  auto type = f.value("type", "");
  if (type == "start")
    return json{{"event", {{"start", {{"pid", f.value("pid", 0)}}}}}};
  if (type == "stdout" || type == "stderr" || type == "pty")
    return json{{"event", {{"data", {{type, f.value("data", "")}}}}}};
  if (type == "end") {
    json end = {{"exitCode", f.value("exit_code", -1)},
                {"exited", f.value("exited", false)},
                {"status", f.value("status", "")}};
    // envd reports any unsuccessful end in `error` too; the SDK's
    // CommandExitError carries it as its message.
    if (f.contains("error") && f["error"].is_string())
      end["error"] = f["error"];
    else if (f.value("exit_code", -1) != 0)
      end["error"] = f.value("status", "");
    return json{{"event", {{"end", end}}}};
  }
  return std::nullopt;
}

// The agent call behind a unary RPC; Connect errors on failure.
template <class F>
envd_reply unary(const envd_call& call, json request, F render) {
  auto r = agent_call(call, request);
  if (!r)
    return envd_reply::connect_error(r.error());
  return envd_reply::json_body(200, render(*r));
}

// ProcessSelector {pid} or {tag} → pid.
result<int> select_process(const envd_call& call, const json& msg) {
  auto sel = msg.value("process", json::object());
  if (sel.contains("pid") && sel["pid"].is_number_unsigned())
    return sel["pid"].get<int>();
  if (sel.contains("tag") && sel["tag"].is_string()) {
    auto tag = sel["tag"].get<std::string>();
    auto list = agent_call(call, {{"op", "list_processes"}});
    if (!list)
      return list.error();
    for (auto& p : list->value("processes", json::array()))
      if (p.contains("tag") && p["tag"] == tag)
        return p.value("pid", 0);
    return not_found("process with tag " + tag + " not found");
  }
  return bad_request("process selector needs pid or tag");
}

envd_reply start_stream(envd_call& call, const json& agent_request) {
  connect_relay::options opts;
  opts.translate = process_event;
  opts.keepalive_message = keepalive_event;
  opts.keepalive = call.keepalive();
  opts.deadline = call.deadline();
  auto relay = connect_relay::open(call, agent_request, std::move(opts));
  if (!relay)
    return envd_reply::stream_error(relay.error());
  return stream_reply(std::move(*relay));
}

envd_reply start(envd_call& call) {
  auto msg = connect::parse_stream_request(call.body);
  if (!msg)
    return envd_reply::stream_error(msg.error());
  auto cfg = msg->value("process", json::object());
  if (!cfg.contains("cmd") || !cfg["cmd"].is_string() || cfg["cmd"].get<std::string>().empty())
    return envd_reply::stream_error(bad_request("process.cmd is required"));
  json req = {{"op", "exec"},
              {"cmd", cfg["cmd"]},
              {"args", cfg.value("args", json::array())},
              {"env", cfg.value("envs", json::object())},
              {"user", call.user},
              {"stdin", msg->value("stdin", false)}};
  // envd starts processes in the user's home unless told otherwise.
  if (cfg.contains("cwd") && cfg["cwd"].is_string() && !cfg["cwd"].get<std::string>().empty())
    req["cwd"] = cfg["cwd"];
  else
    req["cwd"] = call.workdir.empty() ? "~" : call.workdir;
  if (msg->contains("tag") && (*msg)["tag"].is_string())
    req["tag"] = (*msg)["tag"];
  // As in envd, the client's deadline is the process's lifetime: the agent
  // kills it then, whether or not the client is still attached.
  if (auto dl = call.deadline())
    req["timeout_ms"] = dl->count();
  if (msg->contains("pty") && (*msg)["pty"].is_object()) {
    auto size = (*msg)["pty"].value("size", json::object());
    req["pty"] = {{"cols", size.value("cols", 80)}, {"rows", size.value("rows", 24)}};
  }
  return start_stream(call, req);
}

envd_reply connect_process(envd_call& call) {
  auto msg = connect::parse_stream_request(call.body);
  if (!msg)
    return envd_reply::stream_error(msg.error());
  auto sel = msg->value("process", json::object());
  json req = {{"op", "connect"}};
  if (sel.contains("pid"))
    req["pid"] = sel["pid"];
  else if (sel.contains("tag"))
    req["tag"] = sel["tag"];
  else
    return envd_reply::stream_error(bad_request("process selector needs pid or tag"));
  return start_stream(call, req);
}

envd_reply list(envd_call& call) {
  return unary(call, {{"op", "list_processes"}}, [](const json& r) {
    auto out = json::array();
    for (auto& p : r.value("processes", json::array())) {
      json cfg = {{"cmd", p.value("cmd", "")},
                  {"args", p.value("args", json::array())},
                  {"envs", p.value("env", json::object())}};
      if (p.contains("cwd") && p["cwd"].is_string())
        cfg["cwd"] = p["cwd"];
      json info = {{"config", cfg}, {"pid", p.value("pid", 0)}};
      if (p.contains("tag") && p["tag"].is_string())
        info["tag"] = p["tag"];
      out.push_back(info);
    }
    return json{{"processes", out}};
  });
}

// SendInput, CloseStdin, SendSignal, Update: a selected process and one op.
envd_reply on_process(envd_call& call, const std::string& method) {
  auto msg = connect::parse_unary_request(call.body);
  if (!msg)
    return envd_reply::connect_error(msg.error());
  auto pid = select_process(call, *msg);
  if (!pid)
    return envd_reply::connect_error(pid.error());
  json req = {{"pid", *pid}};
  if (method == "SendInput") {
    auto in = msg->value("input", json::object());
    auto data = in.contains("pty") ? in["pty"] : in.value("stdin", json(""));
    if (!data.is_string())
      return envd_reply::connect_error(bad_request("input must carry stdin or pty bytes"));
    req["op"] = "input";
    req["data"] = data;
  } else if (method == "CloseStdin") {
    req["op"] = "close_stdin";
  } else if (method == "SendSignal") {
    auto sig = msg->value("signal", json("SIGNAL_UNSPECIFIED"));
    std::string name;
    if (sig == "SIGNAL_SIGKILL" || sig == 9)
      name = "SIGKILL";
    else if (sig == "SIGNAL_SIGTERM" || sig == 15)
      name = "SIGTERM";
    else
      return envd_reply::connect_error(bad_request("signal must be SIGNAL_SIGTERM or SIGNAL_SIGKILL"));
    req["op"] = "signal";
    req["signal"] = name;
  } else { // Update
    auto size = msg->value("pty", json::object()).value("size", json::object());
    if (!size.contains("cols") || !size.contains("rows"))
      return envd_reply::connect_error(bad_request("pty.size.cols and rows are required"));
    req["op"] = "resize";
    req["cols"] = size["cols"];
    req["rows"] = size["rows"];
  }
  return unary(call, req, [](const json&) { return json::object(); });
}

} // namespace

envd_reply process_rpc(envd_call& call, const std::string& method) {
  if (method == "Start")
    return start(call);
  if (method == "Connect")
    return connect_process(call);
  if (method == "List")
    return list(call);
  if (method == "SendInput" || method == "CloseStdin" || method == "SendSignal"
      || method == "Update")
    return on_process(call, method);
  if (method == "envs")
    return unary(call, {{"op", "env"}}, [](const json& r) { return r.value("env", json::object()); });
  if (method == "StreamInput")
    return envd_reply::connect_error(
      {501, "StreamInput needs a client stream (HTTP/2); use SendInput"});
  return envd_reply::connect_error({501, "unknown method process.Process/" + method});
}

} // namespace sandboxd::http
