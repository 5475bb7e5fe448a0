#include "core/template_tags.hpp"

#include <algorithm>
#include <map>

#include "core/clock.hpp"
#include "core/code_template.hpp"

namespace sandboxd {

namespace {

using json = nlohmann::json;

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// Takes `tags` from `b`; whether it held any of them.
bool drop_tags(template_build& b, const std::vector<std::string>& tags) {
  auto before = b.tags.size();
  b.tags.erase(std::remove_if(b.tags.begin(), b.tags.end(),
                              [&](const std::string& t) { return contains(tags, t); }),
               b.tags.end());
  for (auto& t : tags)
    b.tag_times.erase(t);
  return b.tags.size() != before;
}

// The non-empty list of tags of field "tags" (both bodies require it).
result<std::vector<std::string>> required_tags(const json& body) {
  auto tags = tags_field(body);
  if (!tags)
    return tags.error();
  if (tags->empty())
    return bad_request("tags is required: a list of at least one tag");
  return tags;
}

// The string field `key` of `body`, required and non-empty.
result<std::string> required_string(const json& body, const char* key, const char* what) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_string() || it->get<std::string>().empty())
    return bad_request(std::string{key} + " is required: " + what);
  return it->get<std::string>();
}

} // namespace

bool holds_tag(const template_build& b, const std::string& tag) {
  return b.status == build_status::ready && contains(b.tags, tag);
}

const template_build* tagged_build(const std::vector<template_build>& builds,
                                   const std::string& tag) {
  for (auto& b : builds)
    if (holds_tag(b, tag))
      return &b;
  if (tag != "default")
    return nullptr;
  for (auto& b : builds)
    if (b.status == build_status::ready)
      return &b;
  return nullptr;
}

std::vector<template_build> move_tags(const std::vector<template_build>& builds,
                                      const template_build& to,
                                      const std::vector<std::string>& tags, int64_t now) {
  std::vector<template_build> changed{to};
  auto& target = changed.front();
  for (auto& t : tags) {
    if (!contains(target.tags, t))
      target.tags.push_back(t);
    target.tag_times.emplace(t, now); // a tag it held keeps its time
  }
  for (auto b : builds)
    if (b.id != to.id && b.status == build_status::ready && drop_tags(b, tags))
      changed.push_back(std::move(b));
  return changed;
}

result<std::vector<template_build>> take_tags(const std::vector<template_build>& builds,
                                              const std::vector<std::string>& tags,
                                              const std::string& template_name) {
  for (auto& t : tags)
    if (std::none_of(builds.begin(), builds.end(),
                     [&](const template_build& b) { return holds_tag(b, t); }))
      return not_found("template " + template_name + " has no tag " + t);
  std::vector<template_build> changed;
  for (auto b : builds)
    if (b.status == build_status::ready && drop_tags(b, tags))
      changed.push_back(std::move(b));
  return changed;
}

void refresh_ready(user_template& t, const std::vector<template_build>& changed) {
  if (!t.ready)
    return;
  for (auto& b : changed)
    if (b.id == t.ready->id)
      t.ready = b;
}

json tags_json(const std::vector<template_build>& builds) {
  std::map<std::string, json> by_tag; // newest holder wins, as in tagged_build
  for (auto it = builds.rbegin(); it != builds.rend(); ++it)
    if (it->status == build_status::ready)
      for (auto& t : it->tags) {
        auto at = it->tag_times.count(t) ? it->tag_times.at(t) : it->finished_ms;
        by_tag[t] = {{"tag", t}, {"buildID", it->id}, {"createdAt", to_rfc3339(at)}};
      }
  auto out = json::array();
  for (auto& [tag, j] : by_tag)
    out.push_back(std::move(j));
  return out;
}

result<tag_assignment> parse_tag_assignment(const json& body) {
  if (!body.is_object())
    return bad_request("the body must be a JSON object");
  auto target = required_string(body, "target", "the build to tag, as \"name:tag\" or \"name\"");
  if (!target)
    return target.error();
  tag_assignment a;
  a.target = split_template_ref(*target);
  if (a.target.name.empty())
    return bad_request("target: the template's name is missing: " + *target);
  if (!valid_tag(a.target.tag))
    return bad_request("target: " + not_a_tag(a.target.tag));
  auto tags = required_tags(body);
  if (!tags)
    return tags.error();
  a.tags = std::move(*tags);
  return a;
}

result<tag_removal> parse_tag_removal(const json& body) {
  if (!body.is_object())
    return bad_request("the body must be a JSON object");
  auto name = required_string(body, "name", "the template's name");
  if (!name)
    return name.error();
  auto tags = required_tags(body);
  if (!tags)
    return tags.error();
  return tag_removal{*name, std::move(*tags)};
}

} // namespace sandboxd
