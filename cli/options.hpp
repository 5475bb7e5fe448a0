// A small flag parser: `--name value` or `--name=value`, nothing else.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace sandboxd::cli {

struct options {
  std::map<std::string, std::string> flags;
  std::vector<std::string> positional;

  std::string get(const std::string& name, const std::string& fallback) const {
    auto i = flags.find(name);
    return i == flags.end() ? fallback : i->second;
  }
};

/// Parses argv[from..]; every flag must be one of `known`.
result<options> parse(int argc, char** argv, int from,
                      const std::set<std::string>& known);

/// "7d", "12h", "30m", "45s", "250ms" or "0".
result<std::chrono::milliseconds> parse_duration(const std::string& name, const std::string& s);

/// Where the binary lives, to find files installed beside it.
std::string self_dir();

} // namespace sandboxd::cli
