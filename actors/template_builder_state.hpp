// The template builder actor's state and the helpers its two halves share:
// builds of Debian packages (template_builder.cpp, one at a time under the
// catalogue's build lock) and builds of templates defined in code
// (template_steps.cpp, each step run inside a sandbox). Internal to them.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "actors/template_builder.hpp"
#include "core/code_template.hpp"
#include "core/user_template.hpp"

namespace sandboxd {

/// A build of a template defined in code, while it runs.
struct step_job {
  std::string org, template_id, build_id;
  template_steps req;
  std::string underlying;    // the template whose root filesystem the layers rest on
  std::string start_ref;     // what the first sandbox starts from (a template or a snapshot)
  std::vector<std::string> keys; // cache key after each step
  std::string base_key;      // cache key of the base itself
  size_t next = 0;           // the next step to run
  build_context ctx;         // user, workdir, env after the steps so far
  std::string layer;         // snapshot of the newest layer; empty: start_ref
  std::optional<sandbox_actor> sandbox; // the build sandbox, while one runs
  std::string sandbox_id;
  // What the template inherits from the one it starts from.
  std::map<std::string, std::string> base_env;
  std::string base_start_cmd;
  int base_ready_port = 0;
  int cpu_count = 2;
  int memory_mb = 512;
  int64_t started_ms = 0;
};

struct builder_state {
  template_builder_config cfg;
  std::deque<std::pair<std::string, std::string>> queue; // (org, build id) in order
  std::map<std::string, std::string> template_of;        // build id → template id
  bool busy = false;                                     // a worker is building
  // Builds of templates defined in code: running ones and those waiting
  // for a slot (max_step_builds run at once).
  std::map<std::string, step_job> jobs; // by build id
  std::deque<std::string> step_queue;
  size_t step_builds = 0;
  static inline const char* name = "template_builder";
};

/// Builds of templates defined in code that run at once (each holds a sandbox).
constexpr size_t max_step_builds = 2;

using builder_ptr = template_builder_actor::stateful_pointer<builder_state>;

inline bool in_progress(build_status s) {
  return s == build_status::waiting || s == build_status::building;
}

/// Appends one progress line to a build's log (a lost line is logged).
void log_line(store& db, const std::string& build_id, const std::string& level,
              const std::string& step, const std::string& message);

/// The org's template named `name` (nullopt: none yet); 409 when `name` is
/// the id of another of its templates; a failure when the store cannot be
/// read (unreadable is not absent: a new template would be made over it).
result<std::optional<user_template>> template_named(const store& db, const std::string& org,
                                                    const std::string& name);

/// A build and its template as stored: a failure when either cannot be read
/// or is gone.
result<std::pair<user_template, template_build>>
build_records(const store& db, const std::string& org, const std::string& template_id,
              const std::string& build_id);

/// The build is over: records how it ended on the build and its template;
/// `fill` (when given) completes the build's record first.
void finish(builder_ptr self, const std::string& org, const std::string& build_id,
            const status& outcome, const std::function<void(template_build&)>& fill = {});

// -- templates defined in code (template_steps.cpp) --------------------------

/// POST /v3/templates: a new waiting build of the org's template (new or
/// same-named); a build of it still waiting for its steps is superseded.
caf::result<user_template> create_code_template(builder_ptr self, code_template_request& req);

/// POST /v2/templates/:id/builds/:build: starts the waiting build with its steps.
caf::result<bool> start_code_build(builder_ptr self, const std::string& org,
                                   const std::string& template_id, const std::string& build_id,
                                   template_steps& steps);

/// Removes the layers of template `t`'s builds that nothing else uses (from
/// the top of each build's stack down, stopping where something rests on one).
void remove_code_layers(builder_ptr self, const std::string& org,
                        std::vector<std::string> snapshot_ids);

} // namespace sandboxd
