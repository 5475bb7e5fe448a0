#include "runtime/agent_answers.hpp"

#include <initializer_list>

namespace sandboxd::agent {

namespace {

using json = nlohmann::json;

enum class kind { string, integer, boolean, object, array, string_or_null };

struct field {
  const char* name;
  kind type;
  bool required;
};

bool has_kind(const json& v, kind k) {
  switch (k) {
    case kind::string: return v.is_string();
    case kind::integer: return v.is_number_integer();
    case kind::boolean: return v.is_boolean();
    case kind::object: return v.is_object();
    case kind::array: return v.is_array();
    case kind::string_or_null: return v.is_string() || v.is_null();
  }
  return false;
}

const char* kind_name(kind k) {
  switch (k) {
    case kind::string: return "a string";
    case kind::integer: return "an integer";
    case kind::boolean: return "a boolean";
    case kind::object: return "an object";
    case kind::array: return "an array";
    case kind::string_or_null: return "a string";
  }
  return "?";
}

// Empty when `o` is an object whose listed fields have their kinds.
std::string check_fields(const json& o, std::initializer_list<field> fields, const std::string& what) {
  if (!o.is_object()) return what + " is not an object";
  for (const auto& f : fields) {
    auto it = o.find(f.name);
    if (it == o.end()) {
      if (f.required) return what + " has no " + f.name;
      continue;
    }
    if (!has_kind(*it, f.type)) return what + "'s " + f.name + " is not " + kind_name(f.type);
  }
  return {};
}

std::string check_string_map(const json& o, const std::string& what) {
  if (!o.is_object()) return what + " is not an object";
  for (const auto& [k, v] : o.items())
    if (!v.is_string()) return what + "'s value of " + k + " is not a string";
  return {};
}

std::string check_strings(const json& a, const std::string& what) {
  if (!a.is_array()) return what + " is not an array";
  for (const auto& v : a)
    if (!v.is_string()) return what + " holds a value that is not a string";
  return {};
}

// Empty when every element of `a` passes `check`.
template <class F>
std::string check_each(const json& a, const std::string& what, F check) {
  if (!a.is_array()) return what + " is not an array";
  for (const auto& e : a)
    if (auto why = check(e); !why.empty()) return why;
  return {};
}

std::string check_entry(const json& e) {
  return check_fields(e,
                      {{"name", kind::string, true},
                       {"path", kind::string, true},
                       {"type", kind::string, true},
                       {"size", kind::integer, true},
                       {"mode", kind::integer, true},
                       {"permissions", kind::string, true},
                       {"owner", kind::string, true},
                       {"group", kind::string, true},
                       {"mtime_ms", kind::integer, true},
                       {"symlink_target", kind::string, false}},
                      "entry");
}

std::string check_process(const json& p) {
  if (auto why = check_fields(p,
                              {{"pid", kind::integer, true},
                               {"tag", kind::string_or_null, false},
                               {"cmd", kind::string, true},
                               {"args", kind::array, false},
                               {"env", kind::object, false},
                               {"cwd", kind::string, false},
                               {"pty", kind::boolean, false}},
                              "process");
      !why.empty())
    return why;
  if (p.contains("args"))
    if (auto why = check_strings(p["args"], "process args"); !why.empty()) return why;
  if (p.contains("env")) return check_string_map(p["env"], "process env");
  return {};
}

std::string check_fs_event(const json& e) {
  return check_fields(e, {{"name", kind::string, true}, {"event", kind::string, true}}, "event");
}

// The result frame of each op; ops not listed answer a bare result.
std::string check_result(const std::string& op, const json& f) {
  if (op == "ping") return check_fields(f, {{"pid", kind::integer, false}, {"version", kind::string, false}}, "result");
  if (op == "env") {
    if (auto why = check_fields(f, {{"env", kind::object, true}}, "result"); !why.empty()) return why;
    return check_string_map(f["env"], "env");
  }
  if (op == "stat" || op == "write" || op == "write_stream" || op == "move" || op == "mkdir") {
    if (auto why = check_fields(f, {{"entry", kind::object, true}, {"created", kind::boolean, false}}, "result");
        !why.empty())
      return why;
    return check_entry(f["entry"]);
  }
  if (op == "list") {
    if (auto why = check_fields(f, {{"entries", kind::array, true}}, "result"); !why.empty()) return why;
    return check_each(f["entries"], "entries", check_entry);
  }
  if (op == "read") return check_fields(f, {{"size", kind::integer, true}, {"data", kind::string, true}}, "result");
  if (op == "read_stream") return check_fields(f, {{"size", kind::integer, false}}, "result");
  if (op == "list_processes") {
    if (auto why = check_fields(f, {{"processes", kind::array, true}}, "result"); !why.empty()) return why;
    return check_each(f["processes"], "processes", check_process);
  }
  if (op == "watcher_create") return check_fields(f, {{"watcher_id", kind::string, true}}, "result");
  if (op == "watcher_events") {
    if (auto why = check_fields(f, {{"events", kind::array, true}}, "result"); !why.empty()) return why;
    return check_each(f["events"], "events", check_fs_event);
  }
  return {};
}

bool one_of(const std::string& s, std::initializer_list<const char*> xs) {
  for (auto x : xs)
    if (s == x) return true;
  return false;
}

std::string why_not(const std::string& op, const json& f) {
  auto t = f.find("type");
  if (t == f.end() || !t->is_string()) return "frame has no type";
  const auto& type = t->get_ref<const std::string&>();
  if (type == "error")
    return check_fields(f, {{"code", kind::string, false}, {"message", kind::string, false}}, "error frame");
  bool process = op == "exec" || op == "connect";
  bool allowed = process ? one_of(type, {"start", "stdout", "stderr", "pty", "end"})
                 : op == "read_stream" ? one_of(type, {"start", "chunk", "result"})
                 : op == "watch" ? one_of(type, {"start", "fs", "keepalive", "end"})
                 : type == "result";
  if (!allowed) return "a frame of type " + type + " does not answer " + op;
  if (type == "start")
    return check_fields(f, {{"pid", kind::integer, process}, {"size", kind::integer, false}}, "start frame");
  if (type == "stdout" || type == "stderr" || type == "pty" || type == "chunk")
    return check_fields(f, {{"data", kind::string, true}}, type + " frame");
  if (type == "fs") return check_fs_event(f);
  if (type == "end" && process)
    return check_fields(f,
                        {{"exit_code", kind::integer, true},
                         {"exited", kind::boolean, true},
                         {"signal", kind::integer, false},
                         {"status", kind::string, false},
                         {"timed_out", kind::boolean, false},
                         {"error", kind::string, false}},
                        "end frame");
  if (type == "result") return check_result(op, f);
  return {};
}

}  // namespace

failure malformed_answer(const std::string& why) {
  return bad_gateway("sandbox agent sent a malformed answer: " + why);
}

status check_answer(const std::string& op, const json& frame) {
  if (auto why = why_not(op, frame); !why.empty()) return malformed_answer(why);
  return success();
}

}  // namespace sandboxd::agent
