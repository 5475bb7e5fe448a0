#include "runtime/seccomp_bpf.hpp"

#include <seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>

#include "core/fd_closer.hpp"
#include "runtime/base64.hpp"
#include "runtime/seccomp.hpp"

namespace sandboxd {

namespace {

failure seccomp_error(const std::string& what, int rc) {
  return internal_error("seccomp: " + what + ": " + std::strerror(-rc));
}

result<uint32_t> action_of(const nlohmann::json& j, const char* name_key, const char* errno_key) {
  auto name = j.value(name_key, std::string{});
  if (name == "SCMP_ACT_ALLOW")
    return uint32_t{SCMP_ACT_ALLOW};
  if (name == "SCMP_ACT_ERRNO")
    return uint32_t{SCMP_ACT_ERRNO(static_cast<uint16_t>(j.value(errno_key, EPERM)))};
  return internal_error("seccomp: unsupported action " + name);
}

result<scmp_compare> op_of(const std::string& name) {
  if (name == "SCMP_CMP_EQ")
    return SCMP_CMP_EQ;
  if (name == "SCMP_CMP_MASKED_EQ")
    return SCMP_CMP_MASKED_EQ;
  return internal_error("seccomp: unsupported comparison " + name);
}

} // namespace

result<std::string> compile_seccomp(const nlohmann::json& profile) {
  auto fallback = action_of(profile, "defaultAction", "defaultErrnoRet");
  if (!fallback)
    return fallback.error();
  std::unique_ptr<void, void (*)(scmp_filter_ctx)> ctx{seccomp_init(*fallback), seccomp_release};
  if (!ctx)
    return internal_error("seccomp: cannot start a filter");
  // An ABI the profile does not list gets the default action, not a kill.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, *fallback); rc < 0)
    return seccomp_error("bad-architecture action", rc);
  // A binary tree of syscall numbers: ~9 comparisons per syscall, not ~360.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2); rc < 0)
    return seccomp_error("optimize", rc);
  for (auto& arch : profile.value("architectures", nlohmann::json::array())) {
    // "SCMP_ARCH_X86_64" is libseccomp's "x86_64".
    auto name = arch.get<std::string>();
    auto short_name = name.substr(std::min(name.size(), std::strlen("SCMP_ARCH_")));
    for (auto& c : short_name)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto token = seccomp_arch_resolve_name(short_name.c_str());
    if (token == 0)
      return internal_error("seccomp: unknown architecture " + name);
    if (int rc = seccomp_arch_add(ctx.get(), token); rc < 0 && rc != -EEXIST)
      return seccomp_error("add architecture " + name, rc);
  }
  for (auto& rule : profile.value("syscalls", nlohmann::json::array())) {
    auto action = action_of(rule, "action", "errnoRet");
    if (!action)
      return action.error();
    if (*action == *fallback)
      continue; // what the default does anyway
    std::vector<scmp_arg_cmp> args;
    for (auto& a : rule.value("args", nlohmann::json::array())) {
      auto op = op_of(a.value("op", std::string{}));
      if (!op)
        return op.error();
      args.push_back({a.value("index", 0u), *op, a.value("value", uint64_t{0}),
                      a.value("valueTwo", uint64_t{0})});
    }
    for (auto& name : rule.value("names", nlohmann::json::array())) {
      int nr = seccomp_syscall_resolve_name(name.get<std::string>().c_str());
      if (nr == __NR_SCMP_ERROR)
        continue; // not a syscall this libseccomp knows: crun skips it too
      if (int rc = seccomp_rule_add_array(ctx.get(), *action, nr,
                                          static_cast<unsigned>(args.size()), args.data());
          rc < 0)
        return seccomp_error("rule for " + name.get<std::string>(), rc);
    }
  }
  fd_closer out{::memfd_create("seccomp-bpf", MFD_CLOEXEC)};
  if (out.get() < 0)
    return internal_error(errno_text("seccomp: memfd"));
  if (int rc = seccomp_export_bpf(ctx.get(), out.get()); rc < 0)
    return seccomp_error("export", rc);
  std::string program;
  char buf[4096];
  for (off_t at = 0;;) {
    auto n = ::pread(out.get(), buf, sizeof buf, at);
    if (n < 0)
      return internal_error(errno_text("seccomp: read the program"));
    if (n == 0)
      break;
    program.append(buf, static_cast<size_t>(n));
    at += n;
  }
  return program;
}

const result<std::string>& seccomp_bpf_base64() {
  static const result<std::string> compiled = []() -> result<std::string> {
    auto program = compile_seccomp(seccomp_profile());
    if (!program)
      return program.error();
    return base64::encode(*program);
  }();
  return compiled;
}

} // namespace sandboxd
