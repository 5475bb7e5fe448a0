#include "runtime/templates.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/crypto.hpp"

namespace fs = std::filesystem;

namespace sandboxd {

namespace {

// Run inside the new root by mmdebstrap: the sandbox user and its workspace.
// Part of the spec hash, so changing it rebuilds every template.
const char* setup_recipe
  = "chroot \"$1\" useradd --create-home --uid 1000 --shell /bin/bash user"
    " && mkdir -p \"$1/workspace\" && chown 1000:1000 \"$1/workspace\""
    " && rm -f \"$1/etc/hostname\"";

} // namespace

result<template_catalog> template_catalog::load(const std::string& spec_file,
                                                const std::string& cache_dir) {
  std::ifstream in{spec_file};
  if (!in)
    return internal_error("cannot read template catalogue " + spec_file);
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    return internal_error("template catalogue " + spec_file + ": " + e.what());
  }
  template_catalog cat;
  cat.cache_dir_ = cache_dir;
  cat.suite_ = doc.value("suite", "bookworm");
  cat.mirror_ = doc.value("mirror", "http://deb.debian.org/debian");
  for (auto& t : doc.at("templates")) {
    template_spec s;
    s.name = t.at("name").get<std::string>();
    s.description = t.value("description", "");
    if (t.contains("extends")) {
      auto parent = cat.find(t["extends"].get<std::string>());
      if (!parent)
        return internal_error("template " + s.name + " extends unknown "
                              + t["extends"].get<std::string>());
      s.packages = parent->packages;
      s.env = parent->env;
    }
    for (auto& p : t.value("packages", nlohmann::json::array()))
      s.packages.push_back(p.get<std::string>());
    auto env = t.value("env", nlohmann::json::object());
    for (auto& [k, v] : env.items())
      s.env[k] = v.get<std::string>();
    s.cpu_count = t.value("cpu_count", 2);
    s.memory_mb = t.value("memory_mb", 512);
    auto pkgs = s.packages;
    std::sort(pkgs.begin(), pkgs.end());
    pkgs.erase(std::unique(pkgs.begin(), pkgs.end()), pkgs.end());
    s.packages = pkgs;
    std::string canon = cat.suite_ + "\n" + cat.mirror_ + "\n" + setup_recipe;
    for (auto& p : pkgs)
      canon += "\n" + p;
    s.hash = sha256_hex(canon).substr(0, 16);
    cat.specs_.push_back(std::move(s));
  }
  return cat;
}

result<template_spec> template_catalog::find(const std::string& name) const {
  for (auto& s : specs_)
    if (s.name == name)
      return s;
  return bad_request("unknown template: " + name);
}

std::vector<template_spec> template_catalog::all() const {
  return specs_;
}

std::string template_catalog::rootfs(const template_spec& spec) const {
  return cache_dir_ + "/" + spec.name + "-" + spec.hash + "/rootfs";
}

bool template_catalog::is_built(const template_spec& spec) const {
  return fs::exists(rootfs(spec) + "/usr/bin/python3");
}

status template_catalog::build(
  const template_spec& spec,
  const std::function<void(const std::string&)>& progress) const {
  if (is_built(spec)) {
    progress("template " + spec.name + " is cached at " + rootfs(spec));
    return success();
  }
  auto final_dir = fs::path{rootfs(spec)}.parent_path();
  auto tmp_dir = final_dir.string() + ".building";
  std::error_code ec;
  fs::remove_all(tmp_dir, ec);
  fs::create_directories(tmp_dir, ec);
  if (ec)
    return internal_error("cannot create " + tmp_dir + ": " + ec.message());
  std::string include;
  for (auto& p : spec.packages)
    include += (include.empty() ? "" : ",") + p;
  std::string cmd = "mmdebstrap --variant=minbase --include=" + include
                    + " --customize-hook='" + setup_recipe + "' " + suite_
                    + " " + tmp_dir + "/rootfs " + mirror_ + " 2>&1";
  progress("building template " + spec.name + " (" + include + ")");
  FILE* p = popen(cmd.c_str(), "r");
  if (!p)
    return internal_error("cannot run mmdebstrap");
  char line[1024];
  while (fgets(line, sizeof line, p)) {
    std::string s{line};
    if (!s.empty() && s.back() == '\n')
      s.pop_back();
    progress(s);
  }
  int rc = pclose(p);
  if (rc != 0 || !fs::exists(tmp_dir + "/rootfs/usr/bin/python3")) {
    fs::remove_all(tmp_dir, ec);
    return internal_error("mmdebstrap failed for template " + spec.name
                          + " (exit " + std::to_string(WEXITSTATUS(rc)) + ")");
  }
  fs::remove_all(final_dir, ec);
  fs::rename(tmp_dir, final_dir, ec);
  if (ec)
    return internal_error("cannot move template into place: " + ec.message());
  progress("template " + spec.name + " built at " + rootfs(spec));
  return success();
}

} // namespace sandboxd
