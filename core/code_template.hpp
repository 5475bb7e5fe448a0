// Templates defined in code (E2B's build system v2: `Template().fromTemplate(
// 'base').aptInstall([...]).copy(...).setStartCmd(...)`, then
// `Template.build`): the request and steps the SDK sends, checked, and what
// each step leaves behind (its cache key; the build's user, workdir and
// environment after it). Pure: the template builder runs the steps inside a
// sandbox, never on the host.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/inspect.hpp"
#include "core/result.hpp"

namespace sandboxd {

/// POST /v3/templates: a template (new, or the org's same-named one) and a
/// build of it that waits for its steps.
struct code_template_request {
  std::string org_id;
  std::string name;              // valid_template_name; a ":tag" suffix goes to `tags`
  std::vector<std::string> tags; // as asked; "default" when none
  std::optional<int> cpu_count;  // 1..8, default the parent's
  std::optional<int> memory_mb;  // 128..16384, default the parent's
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, code_template_request& x) {
  return f(caf::meta::type_name("code_template_request"), x.org_id, x.name, x.tags,
           optional_field(x.cpu_count), optional_field(x.memory_mb));
}

/// A reference to one build of an org's template, E2B's "name:tag": the
/// template (id or name) and the tag; "name" alone means the tag "default".
struct template_ref {
  std::string name;
  std::string tag = "default";
  bool tagged = false; // the reference named a tag
};

/// Splits "name:tag" at its first ':' (the tag is not checked: valid_tag).
template_ref split_template_ref(const std::string& ref);

/// At most this many tags per request (a build's or a tag assignment's).
constexpr size_t max_tags = 16;

/// Whether `t` may name a tag of a template's build (E2B's `name:tag`):
/// 1 to 128 of letters, digits, '.', '_' and '-', not starting with a
/// punctuation mark.
bool valid_tag(const std::string& t);

/// The message of the 400 for a string that is not a tag.
std::string not_a_tag(const std::string& t);

/// The field "tags" of `body`: absent or null is none; else a list of at
/// most max_tags valid tags, a 400 naming the problem otherwise.
result<std::vector<std::string>> tags_field(const nlohmann::json& body);

/// Parses E2B's TemplateBuildRequestV3; every problem is a 400 naming the field.
result<code_template_request> parse_code_template_request(const nlohmann::json& body,
                                                          const std::string& org_id);

/// One step of E2B's TemplateStep.
struct template_step {
  std::string type;              // RUN, COPY, ENV, WORKDIR, USER
  std::vector<std::string> args; // RUN [cmd, user?]; COPY [src, dest, user, mode];
                                 // ENV [k, v, k, v...]; WORKDIR [dir]; USER [name]
  std::string files_hash;        // COPY: the uploaded archive's hash
  bool force = false;            // run it (and all after it) whatever the cache holds
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, template_step& x) {
  return f(caf::meta::type_name("template_step"), x.type, x.args, x.files_hash, x.force);
}

/// E2B's TemplateBuildStartV2, with the image mapped to a template of ours.
struct template_steps {
  std::string from_template; // a catalogue template or one of the org's own ("name:tag": that build)
  std::string from_image;    // as the SDK named it (logs), empty for fromTemplate
  std::vector<template_step> steps;
  std::string start_cmd;
  std::string ready_cmd;
  bool force = false; // no step from the cache
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, template_steps& x) {
  return f(caf::meta::type_name("template_steps"), x.from_template, x.from_image, x.steps,
           x.start_cmd, x.ready_cmd, x.force);
}

/// At most this many steps per build: each step that changes files is a
/// layer, and an overlay stacks a bounded number of them.
constexpr size_t max_template_steps = 48;

/// Parses and checks a TemplateBuildStartV2 body: step types and their
/// arguments, sizes, the base (fromImage of a registry image that cannot be
/// fetched here, or with registry credentials, is a 400 naming what is
/// possible).
result<template_steps> parse_template_steps(const nlohmann::json& body);

/// The template an image name maps to: E2B's default base image, Debian 12,
/// Python 3.11 and Node.js 18 (Debian 12's own) map to `base`; others 400.
result<std::string> template_for_image(const std::string& image);

/// Who runs a step, where, with what environment: what ENV, WORKDIR and USER
/// steps change (E2B's defaults: user "user" in /home/user).
struct build_context {
  std::string user = "user";
  std::string workdir = "/home/user";
  std::map<std::string, std::string> env;
};

/// Applies an ENV, WORKDIR or USER step to `c` (others leave it).
void apply_step(build_context& c, const template_step& s);

/// Whether `s` changes files (RUN, COPY, WORKDIR): such a step is a layer.
bool changes_files(const template_step& s);

/// The cache key after each step: a hash chain from `base_identity` (what
/// the build starts from, exactly) over each step's type, arguments and
/// files hash. Two builds share a layer iff their keys match.
std::vector<std::string> step_keys(const std::string& base_identity,
                                   const std::vector<template_step>& steps);

/// "RUN apt-get update && ..." for log lines, at most ~200 characters.
std::string describe(const template_step& s);

/// `s` in single quotes for sh.
std::string shell_quote(const std::string& s);

/// The port E2B's `waitForPort(p)` ready command waits for, else 0.
int ready_port_of(const std::string& ready_cmd);

/// The script (run as root inside the build sandbox) that unpacks the COPY
/// archive at `archive` and copies its `src` to `dest` as Docker's COPY
/// does, owned by the step's user (else the build's) with its mode if any.
std::string copy_script(const template_step& s, const build_context& c,
                        const std::string& archive);

} // namespace sandboxd
