// Tags of an org's template, as E2B has them: a tag names one ready build of
// the template and is unique within it (giving it to a build takes it from
// the others); "name" alone means the tag "default". Pure: the template
// builder actor (the only writer of builds) moves tags with these, routes
// and sandbox creation read them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.hpp"
#include "core/user_template.hpp"

namespace sandboxd {

/// Whether `b` holds `tag`: only a ready build holds tags (a waiting or
/// building one only asked for them).
bool holds_tag(const template_build& b, const std::string& tag);

/// The build of `builds` (newest first, as store::template_builds lists
/// them) that `tag` names: the ready build holding it (the newest, should
/// records older than tags hold it twice). "default" held by none names the
/// newest ready build (templates of packages and builds that predate tags
/// hold none). nullptr when none.
const template_build* tagged_build(const std::vector<template_build>& builds,
                                   const std::string& tag);

/// Gives `tags` to build `to` at `now`, taking them from every other ready
/// build of `builds`. Returns the builds that changed, `to` first (to be
/// stored with the template in one batch).
std::vector<template_build> move_tags(const std::vector<template_build>& builds,
                                      const template_build& to,
                                      const std::vector<std::string>& tags, int64_t now);

/// Takes `tags` from the builds that hold them; the builds that changed. A
/// tag no build holds is a 404 naming it, and nothing changes (E2B's
/// DELETE /templates/tags answers 404).
result<std::vector<template_build>> take_tags(const std::vector<template_build>& builds,
                                              const std::vector<std::string>& tags,
                                              const std::string& template_name);

/// Keeps the template's copy of its newest ready build in step with
/// `changed`.
void refresh_ready(user_template& t, const std::vector<template_build>& changed);

/// E2B's TemplateTag list: every tag the builds hold, by tag.
nlohmann::json tags_json(const std::vector<template_build>& builds);

/// A POST /templates/tags body (E2B's AssignTemplateTagsRequest): the build
/// `target` ("name:tag", "name" for the tag default) and the tags to give
/// it; 400 naming what is wrong.
struct tag_assignment {
  template_ref target;
  std::vector<std::string> tags;
};
result<tag_assignment> parse_tag_assignment(const nlohmann::json& body);

/// A DELETE /templates/tags body (E2B's DeleteTemplateTagsRequest): the
/// template's name (or id) and the tags to take; 400 naming what is wrong.
struct tag_removal {
  std::string name;
  std::vector<std::string> tags;
};
result<tag_removal> parse_tag_removal(const nlohmann::json& body);

} // namespace sandboxd
