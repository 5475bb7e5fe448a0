// filesystem.Filesystem: Stat, ListDir, MakeDir, Move, Remove, WatchDir and
// the polling watchers, translated onto the sandbox agent's file ops.
#include "core/clock.hpp"
#include "http/connect_protocol.hpp"
#include "http/envd_call.hpp"
#include "http/envd_stream.hpp"

namespace sandboxd::http {

namespace {

std::string file_type(const std::string& t) {
  if (t == "file")
    return "FILE_TYPE_FILE";
  if (t == "dir")
    return "FILE_TYPE_DIRECTORY";
  if (t == "symlink")
    return "FILE_TYPE_SYMLINK";
  return "FILE_TYPE_UNSPECIFIED";
}

std::string event_type(const std::string& e) {
  if (e == "create")
    return "EVENT_TYPE_CREATE";
  if (e == "write")
    return "EVENT_TYPE_WRITE";
  if (e == "remove")
    return "EVENT_TYPE_REMOVE";
  if (e == "rename")
    return "EVENT_TYPE_RENAME";
  if (e == "chmod")
    return "EVENT_TYPE_CHMOD";
  return "EVENT_TYPE_UNSPECIFIED";
}

// Agent entry → EntryInfo (proto3 JSON: int64 as a string, Timestamp RFC 3339).
json entry_info(const json& e) {
  json out = {
    {"name", e.value("name", "")},
    {"type", file_type(e.value("type", ""))},
    {"path", e.value("path", "")},
    {"size", std::to_string(e.value("size", int64_t{0}))},
    {"mode", e.value("mode", 0)},
    {"permissions", e.value("permissions", "")},
    {"owner", e.value("owner", "")},
    {"group", e.value("group", "")},
    {"modifiedTime", to_rfc3339(e.value("mtime_ms", int64_t{0}))},
  };
  if (e.contains("symlink_target") && e["symlink_target"].is_string())
    out["symlinkTarget"] = e["symlink_target"];
  if (e.contains("metadata") && e["metadata"].is_object())
    out["metadata"] = e["metadata"];
  return out;
}

json fs_event(const json& f) {
  return {{"name", f.value("name", "")}, {"type", event_type(f.value("event", ""))}};
}

result<std::string> string_field(const json& msg, const char* name) {
  auto i = msg.find(name);
  if (i == msg.end() || !i->is_string() || i->get<std::string>().empty())
    return bad_request(std::string{name} + " is required");
  return i->get<std::string>();
}

template <class F>
envd_reply unary(const envd_call& call, json request, F render) {
  request["user"] = call.user;
  auto r = agent_call(call, request);
  if (!r)
    return envd_reply::connect_error(r.error());
  return envd_reply::json_body(200, render(*r));
}

envd_reply watch_dir(envd_call& call, const json& msg) {
  auto path = string_field(msg, "path");
  if (!path)
    return envd_reply::stream_error(path.error());
  connect_relay::options opts;
  opts.translate = [](const json& f) -> std::optional<json> {
    auto type = f.value("type", "");
    // WatchDirResponse's oneof members are its own fields (no "event").
    if (type == "start")
      return json{{"start", json::object()}};
    if (type == "fs")
      return json{{"filesystem", fs_event(f)}};
    return std::nullopt;
  };
  opts.keepalive_message = {{"keepalive", json::object()}};
  opts.keepalive = call.keepalive();
  opts.deadline = call.deadline();
  json req = {{"op", "watch"},
              {"path", *path},
              {"recursive", msg.value("recursive", false)},
              {"user", call.user}};
  auto relay = connect_relay::open(call, req, std::move(opts));
  if (!relay)
    return envd_reply::stream_error(relay.error());
  return stream_reply(std::move(*relay));
}

} // namespace

envd_reply filesystem_rpc(envd_call& call, const std::string& method) {
  auto msg = method == "WatchDir" ? connect::parse_stream_request(call.body)
                                  : connect::parse_unary_request(call.body);
  if (!msg)
    return method == "WatchDir" ? envd_reply::stream_error(msg.error())
                                : envd_reply::connect_error(msg.error());
  if (method == "WatchDir")
    return watch_dir(call, *msg);
  if (method == "Move") {
    auto from = string_field(*msg, "source");
    auto to = string_field(*msg, "destination");
    if (!from)
      return envd_reply::connect_error(from.error());
    if (!to)
      return envd_reply::connect_error(to.error());
    return unary(call, {{"op", "move"}, {"from", *from}, {"to", *to}},
                 [](const json& r) { return json{{"entry", entry_info(r.at("entry"))}}; });
  }
  if (method == "GetWatcherEvents" || method == "RemoveWatcher") {
    auto id = string_field(*msg, "watcherId");
    if (!id)
      return envd_reply::connect_error(id.error());
    if (method == "RemoveWatcher")
      return unary(call, {{"op", "watcher_remove"}, {"watcher_id", *id}},
                   [](const json&) { return json::object(); });
    return unary(call, {{"op", "watcher_events"}, {"watcher_id", *id}}, [](const json& r) {
      auto events = json::array();
      for (auto& e : r.value("events", json::array()))
        events.push_back(fs_event(e));
      return json{{"events", events}};
    });
  }
  auto path = string_field(*msg, "path");
  if (!path)
    return envd_reply::connect_error(path.error());
  if (method == "Stat")
    return unary(call, {{"op", "stat"}, {"path", *path}},
                 [](const json& r) { return json{{"entry", entry_info(r.at("entry"))}}; });
  if (method == "ListDir") {
    auto depth = msg->value("depth", 1);
    if (depth < 1)
      depth = 1;
    return unary(call, {{"op", "list"}, {"path", *path}, {"depth", depth}}, [](const json& r) {
      auto entries = json::array();
      for (auto& e : r.value("entries", json::array()))
        entries.push_back(entry_info(e));
      return json{{"entries", entries}};
    });
  }
  if (method == "MakeDir") {
    json req = {{"op", "mkdir"}, {"path", *path}, {"user", call.user}};
    auto r = agent_call(call, req);
    if (!r)
      return envd_reply::connect_error(r.error());
    if (!r->value("created", true))
      return envd_reply::connect_error({409, "directory already exists: " + *path});
    return envd_reply::json_body(200, {{"entry", entry_info(r->at("entry"))}});
  }
  if (method == "Remove")
    // envd's Remove is RemoveAll: a path already gone is removed.
    return unary(call, {{"op", "remove"}, {"path", *path}, {"missing_ok", true}},
                 [](const json&) { return json::object(); });
  if (method == "CreateWatcher")
    return unary(call,
                 {{"op", "watcher_create"},
                  {"path", *path},
                  {"recursive", msg->value("recursive", false)}},
                 [](const json& r) { return json{{"watcherId", r.value("watcher_id", "")}}; });
  return envd_reply::connect_error({501, "unknown method filesystem.Filesystem/" + method});
}

} // namespace sandboxd::http
