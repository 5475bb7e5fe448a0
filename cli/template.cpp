// `sandboxd template build|list`: the template catalogue from the command line.
#include <cstdio>
#include <string>

#include "cli/commands.hpp"
#include "cli/defaults.hpp"
#include "cli/options.hpp"
#include "runtime/templates.hpp"

namespace sandboxd::cli {

int templates(int argc, char** argv) {
  auto opts = parse(argc, argv, 2, {"templates", "template-cache"});
  if (!opts || opts->positional.empty()) {
    std::fprintf(stderr, "usage: sandboxd template build NAME|all | template list\n");
    return 2;
  }
  auto cat = template_catalog::load(opts->get("templates", default_templates_file()),
                                    opts->get("template-cache", default_template_cache));
  if (!cat) {
    std::fprintf(stderr, "sandboxd template: %s\n", cat.error().message.c_str());
    return 1;
  }
  auto& verb = opts->positional[0];
  if (verb == "list") {
    for (auto& t : cat->all()) {
      std::string aliases;
      for (auto& a : t.aliases)
        aliases += (aliases.empty() ? "" : ",") + a;
      std::printf("%-18s %-8s %-10s cpu=%d mem=%dMB %s\n", t.name.c_str(),
                  cat->is_built(t) ? "built" : "missing",
                  aliases.empty() ? "-" : aliases.c_str(), t.cpu_count, t.memory_mb,
                  cat->rootfs(t).c_str());
    }
    return 0;
  }
  if (verb != "build" || opts->positional.size() != 2) {
    std::fprintf(stderr, "usage: sandboxd template build NAME|all\n");
    return 2;
  }
  std::vector<template_spec> todo;
  if (opts->positional[1] == "all") {
    todo = cat->all();
  } else {
    auto spec = cat->find(opts->positional[1]);
    if (!spec) {
      std::fprintf(stderr, "sandboxd template: %s\n", spec.error().message.c_str());
      return 1;
    }
    todo.push_back(*spec);
  }
  for (auto& spec : todo) {
    auto st = cat->build(spec, [](const std::string& line) {
      std::fprintf(stderr, "[template] %s\n", line.c_str());
    });
    if (!st) {
      std::fprintf(stderr, "sandboxd template: %s\n", st.error().message.c_str());
      return 1;
    }
  }
  return 0;
}

} // namespace sandboxd::cli
