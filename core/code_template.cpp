#include "core/code_template.hpp"

#include <regex>
#include <set>

#include "core/crypto.hpp"
#include "core/user_template.hpp"

namespace sandboxd {

namespace {

using json = nlohmann::json;

constexpr size_t max_arg = 64 * 1024;    // one argument (a RUN script)
constexpr size_t max_args = 256;         // per step (ENV pairs)
constexpr size_t max_command = 8192;     // start and ready commands
bool has_nul(const std::string& s) {
  return s.find('\0') != std::string::npos;
}

result<std::string> command_field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null())
    return std::string{};
  if (!it->is_string())
    return bad_request(std::string{key} + " must be a shell command (a string)");
  auto s = it->get<std::string>();
  if (s.size() > max_command || has_nul(s))
    return bad_request(std::string{key} + " must be at most " + std::to_string(max_command)
                       + " bytes without NUL");
  return s;
}

// The arguments each step type takes: how many, and what they must be.
status check_step(const template_step& s, size_t n) {
  auto where = "steps[" + std::to_string(n) + "] (" + s.type + ")";
  auto& a = s.args;
  if (s.type == "RUN") {
    if (a.empty() || a.size() > 2 || a[0].empty())
      return bad_request(where + ": args must be [command] or [command, user]");
  } else if (s.type == "COPY") {
    if (a.size() < 2 || a.size() > 4 || a[0].empty() || a[1].empty())
      return bad_request(where + ": args must be [src, dest, user?, mode?]");
    if (a[0][0] == '/' || a[0].find("..") != std::string::npos)
      return bad_request(where + ": src must be a path inside the build context: " + a[0]);
    // A glob is expanded by the shell inside the sandbox: only path and
    // glob characters then, so nothing else in it is shell syntax.
    if (a[0].find_first_of("*?[") != std::string::npos
        && !std::regex_match(a[0], std::regex{R"([A-Za-z0-9._/*?\[\]@+,=-]+)"}))
      return bad_request(where + ": a src glob may hold only letters, digits and ._/*?[]@+,=-: "
                         + a[0]);
    if (a.size() > 3 && !a[3].empty() && !std::regex_match(a[3], std::regex{"[0-7]{3,4}"}))
      return bad_request(where + ": mode must be octal, e.g. 0755: " + a[3]);
    static const std::regex hash{"[0-9a-f]{64}"};
    if (!std::regex_match(s.files_hash, hash))
      return bad_request(where + ": filesHash must be the 64 hex digits the SDK computed");
  } else if (s.type == "ENV") {
    if (a.empty() || a.size() % 2 != 0)
      return bad_request(where + ": args must be pairs of name and value");
    for (size_t i = 0; i < a.size(); i += 2)
      if (!valid_env_name(a[i]))
        return bad_request(where + ": \"" + a[i] + "\" is not a variable name");
  } else if (s.type == "WORKDIR") {
    if (a.size() != 1 || a[0].empty())
      return bad_request(where + ": args must be [dir]");
  } else if (s.type == "USER") {
    static const std::regex user{"[a-z_][a-z0-9_-]{0,31}"};
    if (a.size() != 1 || !std::regex_match(a[0], user))
      return bad_request(where + ": args must be [user name]");
  } else {
    return bad_request("steps[" + std::to_string(n) + "]: unknown step type \"" + s.type
                       + "\" (known: RUN, COPY, ENV, WORKDIR, USER)");
  }
  if (s.type == "RUN" && a.size() == 2 && !a[1].empty()
      && !std::regex_match(a[1], std::regex{"[a-z_][a-z0-9_-]{0,31}"}))
    return bad_request(where + ": not a user name: " + a[1]);
  return success();
}

// What WORKDIR's relative paths and COPY's relative destinations are
// relative to.
std::string resolve_dir(const build_context& c, const std::string& dir) {
  if (!dir.empty() && dir[0] == '/')
    return dir;
  return c.workdir + "/" + dir;
}

} // namespace

template_ref split_template_ref(const std::string& ref) {
  auto colon = ref.find(':');
  if (colon == std::string::npos)
    return {ref, "default", false};
  return {ref.substr(0, colon), ref.substr(colon + 1), true};
}

bool valid_tag(const std::string& t) {
  static const std::regex re{"[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}"};
  return std::regex_match(t, re);
}

std::string not_a_tag(const std::string& t) {
  return "not a tag: \"" + t + "\" (1 to 128 of letters, digits, '.', '_' and '-', starting"
         " with a letter or digit)";
}

result<std::vector<std::string>> tags_field(const json& body) {
  std::vector<std::string> out;
  auto t = body.find("tags");
  if (t == body.end() || t->is_null())
    return out;
  if (!t->is_array() || t->size() > max_tags)
    return bad_request("tags must be a list of at most " + std::to_string(max_tags)
                       + " strings");
  for (auto& x : *t) {
    if (!x.is_string())
      return bad_request("tags must be a list of strings");
    out.push_back(x.get<std::string>());
    if (!valid_tag(out.back()))
      return bad_request(not_a_tag(out.back()));
  }
  return out;
}

result<code_template_request> parse_code_template_request(const json& body,
                                                          const std::string& org_id) {
  if (!body.is_object())
    return bad_request("the body must be a JSON object");
  static const std::set<std::string> known = {"name",     "tags",     "alias",        "teamID",
                                              "cpuCount", "memoryMB", "minFreeDiskMb"};
  for (auto& [k, v] : body.items())
    if (!known.count(k))
      return bad_request("unknown field \"" + k + "\" (known: name, tags, cpuCount, memoryMB)");
  code_template_request r;
  r.org_id = org_id;
  auto name = body.find("name");
  if (name == body.end() || name->is_null())
    name = body.find("alias"); // SDKs before 2.3 send alias
  if (name == body.end() || !name->is_string() || name->get<std::string>().empty())
    return bad_request("name is required: a string");
  auto ref = split_template_ref(name->get<std::string>());
  if (ref.tagged)
    r.tags.push_back(ref.tag);
  r.name = ref.name;
  if (!valid_template_name(r.name))
    return bad_request("name must be 1 to 63 of a-z, 0-9, '.', '_' and '-', starting with a"
                       " letter or digit: " + r.name);
  if (!r.tags.empty() && !valid_tag(r.tags.front()))
    return bad_request(not_a_tag(r.tags.front()));
  auto tags = tags_field(body);
  if (!tags)
    return tags.error();
  r.tags.insert(r.tags.end(), tags->begin(), tags->end());
  if (r.tags.empty())
    r.tags.push_back("default");
  if (auto s = parse_resources(body, r.cpu_count, r.memory_mb); !s)
    return s.error();
  return r;
}

result<std::string> template_for_image(const std::string& image) {
  auto colon = image.rfind(':');
  auto repo = colon == std::string::npos ? image : image.substr(0, colon);
  auto tag = colon == std::string::npos ? std::string{"latest"} : image.substr(colon + 1);
  auto is = [&](std::initializer_list<const char*> tags) {
    for (auto t : tags)
      if (tag == t)
        return true;
    return false;
  };
  if (repo == "e2bdev/base" || repo == "e2bdev/code-interpreter")
    return std::string{repo == "e2bdev/base" ? "base" : "code_interpreter"};
  if (repo == "debian" && is({"latest", "stable", "bookworm", "12", "stable-slim",
                              "bookworm-slim", "12-slim"}))
    return std::string{"base"};
  if (repo == "python" && is({"3", "3.11", "3-bookworm", "3.11-bookworm", "3-slim",
                              "3.11-slim", "3-slim-bookworm", "3.11-slim-bookworm"}))
    return std::string{"base"};
  if (repo == "node" && is({"18", "18-bookworm", "18-slim", "18-bookworm-slim"}))
    return std::string{"base"};
  return bad_request(
    "image " + image + " cannot be fetched here: this server has no registry access and builds"
    " from Debian 12 packages. Start from fromTemplate('base' or another template of this"
    " server or of your own), fromBaseImage(), fromDebianImage('bookworm' | 'stable' | '12'),"
    " fromPythonImage('3' | '3.11'), or fromNodeImage('18') (all Debian 12: Python 3.11,"
    " Node.js 18)");
}

result<template_steps> parse_template_steps(const json& body) {
  if (!body.is_object())
    return bad_request("the body must be a JSON object");
  static const std::set<std::string> known = {"fromImage", "fromTemplate", "fromImageRegistry",
                                              "force",     "steps",        "startCmd",
                                              "readyCmd"};
  for (auto& [k, v] : body.items())
    if (!known.count(k))
      return bad_request("unknown field \"" + k + "\"");
  template_steps r;
  if (auto reg = body.find("fromImageRegistry"); reg != body.end() && !reg->is_null())
    return bad_request("fromImageRegistry: this server fetches no registry images (no"
                       " registry access); start from a template or a Debian-based image");
  auto tpl = body.find("fromTemplate");
  auto img = body.find("fromImage");
  bool has_tpl = tpl != body.end() && !tpl->is_null();
  bool has_img = img != body.end() && !img->is_null();
  if (has_tpl == has_img)
    return bad_request("exactly one of fromTemplate and fromImage is required");
  if (has_tpl) {
    if (!tpl->is_string() || tpl->get<std::string>().empty())
      return bad_request("fromTemplate must be a template name");
    // "name:tag" stays whole: the builder starts from the build holding the tag.
    r.from_template = tpl->get<std::string>();
    if (auto ref = split_template_ref(r.from_template); ref.tagged && !valid_tag(ref.tag))
      return bad_request("fromTemplate: " + not_a_tag(ref.tag));
  } else {
    if (!img->is_string() || img->get<std::string>().empty())
      return bad_request("fromImage must be an image name");
    r.from_image = img->get<std::string>();
    auto mapped = template_for_image(r.from_image);
    if (!mapped)
      return mapped.error();
    r.from_template = *mapped;
  }
  if (auto f = body.find("force"); f != body.end() && !f->is_null()) {
    if (!f->is_boolean())
      return bad_request("force must be a boolean");
    r.force = f->get<bool>();
  }
  auto start = command_field(body, "startCmd");
  if (!start)
    return start.error();
  r.start_cmd = *start;
  auto ready = command_field(body, "readyCmd");
  if (!ready)
    return ready.error();
  r.ready_cmd = *ready;
  if (auto s = body.find("steps"); s != body.end() && !s->is_null()) {
    if (!s->is_array())
      return bad_request("steps must be a list");
    if (s->size() > max_template_steps)
      return bad_request("steps: at most " + std::to_string(max_template_steps)
                         + " steps (each that changes files is a layer); join RUN steps");
    for (auto& x : *s) {
      auto n = r.steps.size();
      auto where = "steps[" + std::to_string(n) + "]";
      if (!x.is_object())
        return bad_request(where + " must be an object");
      template_step step;
      auto type = x.find("type");
      if (type == x.end() || !type->is_string())
        return bad_request(where + ".type is required: a string");
      step.type = type->get<std::string>();
      if (auto a = x.find("args"); a != x.end() && !a->is_null()) {
        if (!a->is_array() || a->size() > max_args)
          return bad_request(where + ".args must be a list of at most "
                             + std::to_string(max_args) + " strings");
        for (auto& arg : *a) {
          if (!arg.is_string())
            return bad_request(where + ".args must be a list of strings");
          auto v = arg.get<std::string>();
          if (v.size() > max_arg || has_nul(v))
            return bad_request(where + ".args: each at most " + std::to_string(max_arg >> 10)
                               + " KiB without NUL");
          step.args.push_back(std::move(v));
        }
      }
      if (auto h = x.find("filesHash"); h != x.end() && !h->is_null()) {
        if (!h->is_string())
          return bad_request(where + ".filesHash must be a string");
        step.files_hash = h->get<std::string>();
      }
      if (auto f = x.find("force"); f != x.end() && !f->is_null()) {
        if (!f->is_boolean())
          return bad_request(where + ".force must be a boolean");
        step.force = f->get<bool>();
      }
      if (auto st = check_step(step, n); !st)
        return st.error();
      r.steps.push_back(std::move(step));
    }
  }
  return r;
}

void apply_step(build_context& c, const template_step& s) {
  if (s.type == "ENV")
    for (size_t i = 0; i + 1 < s.args.size(); i += 2)
      c.env[s.args[i]] = s.args[i + 1];
  else if (s.type == "WORKDIR")
    c.workdir = resolve_dir(c, s.args.at(0));
  else if (s.type == "USER")
    c.user = s.args.at(0);
}

bool changes_files(const template_step& s) {
  return s.type == "RUN" || s.type == "COPY" || s.type == "WORKDIR";
}

std::vector<std::string> step_keys(const std::string& base_identity,
                                   const std::vector<template_step>& steps) {
  std::vector<std::string> keys;
  auto key = sha256_hex("sandboxd-template-v1\n" + base_identity);
  for (auto& s : steps) {
    // JSON keeps arguments apart unambiguously.
    json j = {{"type", s.type}, {"args", s.args}, {"files", s.files_hash}};
    key = sha256_hex(key + "\n" + j.dump());
    keys.push_back(key);
  }
  return keys;
}

std::string describe(const template_step& s) {
  std::string out = s.type;
  for (auto& a : s.args) {
    if (a.empty())
      continue;
    out += " " + a;
    if (out.size() > 200)
      return out.substr(0, 200) + "...";
  }
  return out;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

int ready_port_of(const std::string& ready_cmd) {
  // waitForPort(p): `[ -n "$(ss -Htuln sport = :p)" ]` (SDK 2.x), once
  // `ss -tuln | grep :p`.
  static const std::regex now{R"re(\s*\[ -n "\$\(ss -Htuln sport = :(\d{1,5})\)" \]\s*)re"};
  static const std::regex before{R"(\s*ss -tuln \| grep :(\d{1,5})\s*)"};
  std::smatch m;
  if (!std::regex_match(ready_cmd, m, now) && !std::regex_match(ready_cmd, m, before))
    return 0;
  auto port = std::stoi(m[1]);
  return port > 0 && port < 65536 ? port : 0;
}

std::string copy_script(const template_step& s, const build_context& c,
                        const std::string& archive) {
  auto src = s.args.at(0);
  while (src.size() > 1 && src.back() == '/')
    src.pop_back();
  auto dest = resolve_dir(c, s.args.at(1));
  auto owner = s.args.size() > 2 && !s.args[2].empty() ? s.args[2] : c.user;
  auto mode = s.args.size() > 3 ? s.args[3] : std::string{};
  // Unpacked in a fresh directory, then copied with Docker's COPY rules: a
  // directory's contents go into dest; a file goes into dest when dest ends
  // in '/' or is a directory, else becomes dest. The source may be a glob.
  std::string sh = "set -e\n";
  sh += "ctx=$(mktemp -d /tmp/.sandboxd-copy.XXXXXX)\n";
  sh += "trap 'rm -rf \"$ctx\"' EXIT\n";
  sh += "tar -xf " + shell_quote(archive) + " -C \"$ctx\" --no-same-owner\n";
  sh += "rm -f " + shell_quote(archive) + "\n";
  sh += "dest=" + shell_quote(dest) + "\n";
  sh += "owner=" + shell_quote(owner) + "\n";
  sh += "cd \"$ctx\"\n";
  sh += "set -- " + (src.find_first_of("*?[") == std::string::npos ? shell_quote(src) : src)
        + "\n";
  sh += "[ -e \"$1\" ] || { echo \"COPY: $1: no such file in the uploaded context\" >&2; exit 1; }\n";
  sh += "chown -R \"$owner:$(id -gn \"$owner\")\" \"$ctx\"\n";
  if (!mode.empty())
    sh += "for s in \"$@\"; do [ -d \"$s\" ] || chmod " + mode + " \"$s\"; "
          "[ ! -d \"$s\" ] || find \"$s\" -type f -exec chmod " + mode + " {} +; done\n";
  sh += "for s in \"$@\"; do\n"
        "  if [ -d \"$s\" ]; then mkdir -p \"$dest\"; cp -a \"$s/.\" \"$dest/\"\n"
        "  else case \"$dest\" in\n"
        "    */) mkdir -p \"$dest\"; cp -a \"$s\" \"$dest\" ;;\n"
        "    *) if [ -d \"$dest\" ] || [ $# -gt 1 ]; then mkdir -p \"$dest\"; cp -a \"$s\" \"$dest/\";\n"
        "       else mkdir -p \"$(dirname \"$dest\")\"; cp -a \"$s\" \"$dest\"; fi ;;\n"
        "  esac; fi\n"
        "done\n";
  return sh;
}

} // namespace sandboxd
