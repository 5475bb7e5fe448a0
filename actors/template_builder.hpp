// The template builder actor: builds the orgs' own templates (POST
// /templates) one at a time, each on a detached worker that runs the
// catalogue's build (mmdebstrap, under its build lock) and writes the
// progress lines to the store as they come. It is the one writer of the
// templates' and builds' records; the HTTP routes read them from the store.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "actors/interfaces.hpp"
#include "runtime/templates.hpp"

namespace sandboxd {

class store;

struct template_builder_config {
  std::shared_ptr<store> db;
  std::shared_ptr<const template_catalog> templates;
  registry_actor registry; // who still uses a template (delete); runs build sandboxes
  // What builds a restart interrupted left on disk: removed by the actor
  // before its first build, once their mmdebstrap has stopped.
  std::vector<template_spec> leftovers;
  std::string data_dir; // where uploaded build files are (core/template_files.hpp)
};

/// After a restart: every build still waiting or building was interrupted.
/// Marks it failed ("interrupted by a restart"); returns how many there
/// were. What a build left on disk goes to `leftovers` when given, else it
/// is removed here (waiting for its mmdebstrap to stop). Call once, before
/// spawning the actor. Fails when the store cannot be read (a build left
/// "building" would block its template for good).
[[nodiscard]] result<size_t> fail_interrupted_builds(store& db, const template_catalog& cat,
                                                     std::vector<template_spec>* leftovers = nullptr);

template_builder_actor spawn_template_builder(caf::actor_system& sys,
                                              template_builder_config cfg);

/// The build of `org`'s template that `ref` (an id or name, "name:tag")
/// names, with its template: the ready build holding the tag ("default" held
/// by none: the newest successful build; core/template_tags). nullopt when
/// the org has no such template; 404 when no ready build holds the tag; 409
/// while its first build is under way, or when it has never built; 503
/// when the store cannot be read.
std::optional<result<std::pair<user_template, template_build>>>
find_tagged_build(const store& db, const std::string& org, const std::string& ref);

/// What a sandbox of `org` that names `ref` (a template id or name, or
/// "name:tag") starts from: the build find_tagged_build names, with the
/// same nullopt and failures.
std::optional<result<template_spec>>
find_user_template_spec(const store& db, const std::string& org, const std::string& ref);

} // namespace sandboxd
