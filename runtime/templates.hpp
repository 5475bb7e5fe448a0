// The template catalogue: root filesystems built from Debian packages by
// mmdebstrap, described declaratively in ops/templates.json and cached per
// machine under a directory named after a hash of their spec.
//
// A template may extend an earlier one: it inherits the parent's packages,
// run steps (the parent's first), environment and default resources, and
// adds its own. Run steps are shell commands run as root inside the new root
// after the packages are installed (e.g. `npm install -g ...`); they are part
// of the spec hash, so changing one rebuilds the template.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "core/user_template.hpp"

namespace sandboxd {

struct template_spec {
  std::string name;
  std::string description;
  std::vector<std::string> aliases;  // other names `find` accepts (not inherited)
  std::string extends;               // the parent's name, empty for a root template
  std::vector<std::string> packages; // including those of the parent, sorted
  std::vector<std::string> run;      // build steps, the parent's first
  std::map<std::string, std::string> env;
  int cpu_count = 2;
  int memory_mb = 512;
  std::string hash; // sha256 over suite, mirror, build recipe, packages, run steps
  // An org's own template (POST /templates): `name` is its template id, its
  // one alias the org's name for it; built under the catalogue's user
  // directory rather than the shared cache.
  bool user = false;
  std::string start_cmd; // run as `user` in /workspace when a sandbox starts
  // When set, a sandbox counts as started once the start command listens on
  // this port inside it (bounded wait): a server the SDK calls right away.
  int ready_port = 0;
  // An org's template defined in code (Template.build): the snapshot of its
  // build's last layer, on template `extends`; empty for every other one.
  std::string layers_snapshot;
  // Who runs its sandboxes' processes and where when a request names
  // neither (a template defined in code: its last USER and WORKDIR); empty:
  // "user" in its home.
  std::string default_user;
  std::string default_workdir;
};

/// How a build reaches the package registries its run steps use (npm):
/// passed explicitly into the new root, never part of the spec hash. Read
/// from the builder's environment (ops/lib.sh exports the host's npm config).
struct build_network {
  std::string npm_registry = "https://registry.npmjs.org/";
  std::map<std::string, std::string> settings; // http_proxy, npm_config_proxy, ...
  std::string ca_file; // a CA bundle on the host the build trusts (TLS proxies)

  /// npm_config_registry, the proxy variables and the first existing file of
  /// npm_config_cafile, NODE_EXTRA_CA_CERTS, SSL_CERT_FILE.
  static build_network from_environment();
};

class template_catalog {
public:
  /// Reads the catalogue file; `cache_dir` holds built root filesystems.
  static result<template_catalog> load(const std::string& spec_file,
                                       const std::string& cache_dir);

  /// The spec whose name or one of whose aliases is `name`, or 400
  /// "unknown template: NAME".
  result<template_spec> find(const std::string& name) const;

  std::vector<template_spec> all() const;

  /// Where the orgs' own templates are built (default: the cache directory).
  /// Set once, before the catalogue is shared.
  void set_user_dir(const std::string& dir);

  /// The recipe of an org's template as `req` asks for it: the parent's
  /// packages, run steps, environment and resources with the request's on
  /// top, and the spec hash. 400 when `extends` is not a catalogue template,
  /// 409 when the name is a catalogue template's name or alias. The build's
  /// id, template, org and times are left for the caller.
  result<template_build> recipe(const template_request& req) const;

  /// The spec that builds and runs build `b` of template `t`.
  static template_spec user_spec(const user_template& t, const template_build& b);

  /// When `spec` was built (its marker file's time), 0 when it is not.
  int64_t built_at_ms(const template_spec& spec) const;

  /// Removes what an interrupted build of `spec` left (unmounting first),
  /// once no process builds into it any more (a server that died mid-build
  /// leaves mmdebstrap finishing its step), waiting at most `wait`.
  status discard_partial(const template_spec& spec,
                         std::chrono::seconds wait = std::chrono::seconds(600)) const;

  /// Removes every root filesystem built for the org template `template_id`.
  status remove_user_template(const std::string& template_id) const;

  /// Where the read-only root filesystem of `spec` lives once built.
  std::string rootfs(const template_spec& spec) const;

  /// True only for a completed build: a build happens in a `.building`
  /// directory that is renamed into place after its marker file is written.
  bool is_built(const template_spec& spec) const;

  /// The mmdebstrap command line that builds `spec` into `target`.
  std::vector<std::string> build_command(const template_spec& spec,
                                         const std::string& target,
                                         const build_network& net) const;

  /// Builds the template (no-op when cached). Progress lines from mmdebstrap
  /// go to `progress`; blocking, takes minutes. One build at a time per
  /// cache directory (a lock file); downloaded .debs are shared between
  /// builds in `<cache>/apt-archives`.
  status build(const template_spec& spec,
               const std::function<void(const std::string&)>& progress) const;

private:
  std::string dir_of(const template_spec& spec) const;
  std::string hash_of(const std::vector<std::string>& packages,
                      const std::vector<std::string>& run) const;

  std::string suite_;
  std::string mirror_;
  std::string cache_dir_;
  std::string user_dir_; // empty: cache_dir_
  std::vector<template_spec> specs_;
};

} // namespace sandboxd
