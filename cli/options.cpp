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

std::string self_dir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "." : p.parent_path().string();
}

} // namespace sandboxd::cli
