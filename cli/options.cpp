#include "cli/options.hpp"

#include <unistd.h>

#include <filesystem>

namespace sandboxd::cli {

result<options> parse(int argc, char** argv, int from,
                      const std::set<std::string>& known) {
  options out;
  for (int i = from; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) {
      out.positional.push_back(a);
      continue;
    }
    auto eq = a.find('=');
    std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    if (!known.count(name))
      return bad_request("unknown flag --" + name);
    if (eq != std::string::npos) {
      out.flags[name] = a.substr(eq + 1);
    } else {
      if (i + 1 >= argc)
        return bad_request("flag --" + name + " needs a value");
      out.flags[name] = argv[++i];
    }
  }
  return out;
}

result<std::chrono::milliseconds> parse_duration(const std::string& name, const std::string& s) {
  if (s == "0")
    return std::chrono::milliseconds(0);
  size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(s, &used);
  } catch (...) {
    used = 0;
  }
  auto unit = used ? s.substr(used) : "";
  static const std::map<std::string, long long> ms_per = {
    {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
  auto u = ms_per.find(unit);
  if (used == 0 || n < 0 || u == ms_per.end())
    return bad_request("--" + name + " must be a duration such as 7d, 12h, 30m, 45s or 0");
  return std::chrono::milliseconds(n * u->second);
}

std::string self_dir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "." : p.parent_path().string();
}

} // namespace sandboxd::cli
