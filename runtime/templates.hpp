// The template catalogue: root filesystems built from Debian packages by
// mmdebstrap, described declaratively in ops/templates.json and cached per
// machine under a directory named after a hash of their spec.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace sandboxd {

struct template_spec {
  std::string name;
  std::string description;
  std::vector<std::string> packages; // including those of the parent
  std::map<std::string, std::string> env;
  int cpu_count = 2;
  int memory_mb = 512;
  std::string hash; // sha256 over suite, mirror, packages and setup recipe
};

class template_catalog {
public:
  /// Reads the catalogue file; `cache_dir` holds built root filesystems.
  static result<template_catalog> load(const std::string& spec_file,
                                       const std::string& cache_dir);

  /// The spec of `name`, or 400 "unknown template: NAME".
  result<template_spec> find(const std::string& name) const;

  std::vector<template_spec> all() const;

  /// Where the read-only root filesystem of `spec` lives once built.
  std::string rootfs(const template_spec& spec) const;

  bool is_built(const template_spec& spec) const;

  /// Builds the template (no-op when cached). Progress lines from mmdebstrap
  /// go to `progress`; blocking, takes tens of seconds.
  status build(const template_spec& spec,
               const std::function<void(const std::string&)>& progress) const;

private:
  std::string suite_;
  std::string mirror_;
  std::string cache_dir_;
  std::vector<template_spec> specs_;
};

} // namespace sandboxd
