// An org's own templates (POST /templates): what was asked for, each build
// with its status and resolved recipe, and the build's progress lines. Plain
// data and their storage encoding; the catalogue (runtime/templates) turns a
// request into a recipe, the template builder actor runs the builds.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/code_template.hpp"
#include "core/inspect.hpp"
#include "core/result.hpp"

namespace sandboxd {

/// E2B's TemplateBuildStatus.
enum class build_status : uint8_t { waiting, building, ready, error };

std::string to_string(build_status s);
std::optional<build_status> parse_build_status(const std::string& s);

/// What an org asks for (POST /templates), syntactically valid. Only Debian
/// packages: their maintainer scripts are the only code a build runs as root.
struct template_request {
  std::string org_id;
  std::string name;                       // [a-z0-9][a-z0-9._-]{0,62}
  std::string extends = "base";           // a catalogue template (name or alias)
  std::vector<std::string> packages;      // on top of the parent's
  std::map<std::string, std::string> env; // on top of the parent's
  std::string start_cmd;                  // sh -c as `user` in /workspace at sandbox start
  std::optional<int> cpu_count;           // 1..8, default the parent's
  std::optional<int> memory_mb;           // 128..16384, default the parent's
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, template_request& x) {
  return f(caf::meta::type_name("template_request"), x.org_id, x.name, x.extends,
           x.packages, caf::meta::omittable(), x.env, x.start_cmd,
           optional_field(x.cpu_count), optional_field(x.memory_mb));
}

/// Parses and checks a POST /templates body; every problem is a 400 naming
/// the field. Unknown fields are refused (notably `run`/`steps`: the API
/// builds from Debian packages only).
result<template_request> parse_template_request(const nlohmann::json& body,
                                                const std::string& org_id);

/// Whether `name` may name an org's template: [a-z0-9][a-z0-9._-]{0,62}.
bool valid_template_name(const std::string& name);

/// Whether `k` may name an environment variable: letters, digits and '_',
/// not starting with a digit, at most 128.
bool valid_env_name(const std::string& k);

/// A template request's cpuCount (1-8) and memoryMB (128-16384), each
/// optional; a 400 naming the field.
status parse_resources(const nlohmann::json& body, std::optional<int>& cpu_count,
                       std::optional<int>& memory_mb);

/// The integer field `key` of `body` within [lo, hi]; nullopt when absent
/// or null; a 400 naming the field otherwise.
result<std::optional<int>> bounded_int_field(const nlohmann::json& body, const char* key, int lo, int hi);

/// One build of an org's template: its status and the recipe it builds
/// (resolved against the catalogue when it was asked for, so a later change
/// of the catalogue does not change what this build is).
struct template_build {
  std::string id;            // uuid
  std::string template_id;
  std::string org_id;
  build_status status = build_status::waiting;
  std::string reason;        // why it failed (status error)
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  int64_t finished_ms = 0;   // 0 until ready or error
  // The recipe: the catalogue template it extends, every package (the
  // parent's too, sorted), the parent's run steps, the environment and
  // resources sandboxes get, their start command and the root filesystem's
  // spec hash.
  std::string parent;
  std::vector<std::string> packages;
  std::vector<std::string> run;
  std::map<std::string, std::string> env;
  std::string start_cmd;
  int ready_port = 0; // inherited with the parent's start command: see template_spec
  int cpu_count = 2;
  int memory_mb = 512;
  std::string hash;
  // A build of a template defined in code (Template.build) runs its steps
  // in a sandbox; `parent` is then the template whose root filesystem its
  // layers rest on. Empty `steps` (and all below): a build of Debian packages.
  bool code = false;                   // defined in code (POST /v3/templates)
  std::optional<template_steps> steps; // as asked, once started (POST /v2/.../builds/:id)
  std::string snapshot_id;             // its last layer, once ready
  std::string failed_step;             // E2B's reason.step: "base", "1".., "finalize"
  // The tags it asked for while it waits or builds; once ready, the tags it
  // holds (each names one ready build of the template: see core/template_tags),
  // with when each came to it. A failed build holds none.
  std::vector<std::string> tags;
  // Who runs a sandbox's processes and where, when a request names neither:
  // the build's last USER and WORKDIR (as E2B's envd defaults).
  std::string default_user;
  std::string default_workdir;
  std::map<std::string, int64_t> tag_times;
  // The resources a build in code was asked for (POST /v3/templates): they
  // win over its base's once its steps name the base, restart or not.
  std::optional<int> asked_cpu;
  std::optional<int> asked_memory_mb;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, template_build& x) {
  return f(caf::meta::type_name("template_build"), x.id, x.template_id, x.org_id,
           x.status, x.reason, x.created_ms, x.updated_ms, x.finished_ms, x.parent,
           x.packages, x.run, caf::meta::omittable(), x.env, x.start_cmd, x.ready_port,
           x.cpu_count, x.memory_mb, x.hash, x.code, optional_field(x.steps), x.snapshot_id,
           x.failed_step, x.tags, x.default_user, x.default_workdir, x.tag_times,
           optional_field(x.asked_cpu), optional_field(x.asked_memory_mb));
}

/// An org's template: private to the org, rebuilt by POSTing its name again.
struct user_template {
  std::string id;            // 20 characters [a-z0-9], like sandbox ids
  std::string org_id;
  std::string name;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  uint64_t build_count = 0;
  std::string latest_build;  // the newest build's id
  build_status latest_status = build_status::waiting;
  // The newest successful build: what sandboxes start from (also while a
  // rebuild is under way).
  std::optional<template_build> ready;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, user_template& x) {
  return f(caf::meta::type_name("user_template"), x.id, x.org_id, x.name, x.created_ms,
           x.updated_ms, x.build_count, x.latest_build, x.latest_status,
           optional_field(x.ready));
}

/// One progress line of a build (E2B's BuildLogEntry).
struct build_log_entry {
  int64_t timestamp_ms = 0;
  std::string level;   // debug|info|warn|error
  std::string step;    // may be empty
  std::string message;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, build_log_entry& x) {
  return f(caf::meta::type_name("build_log_entry"), x.timestamp_ms, x.level, x.step,
           x.message);
}

} // namespace sandboxd
