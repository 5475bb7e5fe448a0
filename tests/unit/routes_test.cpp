// The route table and http/openapi.yaml describe the same API: every route
// served is documented, and every documented operation is served.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>

#include "http/routes.hpp"

using namespace sandboxd::http;

namespace {

// "/sandboxes/{sandboxID}/pause" → "/sandboxes/:id/pause"; other
// parameters keep their name ("{eventId}" → ":eventId").
std::string normalize(std::string path) {
  path = std::regex_replace(path, std::regex{"\\{[A-Za-z]*ID\\}"}, ":id");
  return std::regex_replace(path, std::regex{"\\{([^}]+)\\}"}, ":$1");
}

std::set<std::string> documented() {
  std::ifstream in{SANDBOXD_SOURCE_DIR "/http/openapi.yaml"};
  EXPECT_TRUE(in.good());
  std::set<std::string> ops;
  std::string line, path;
  bool in_paths = false;
  std::regex path_re{"^  (/[^:]*):\\s*$"};
  std::regex method_re{"^    (get|post|put|patch|delete):\\s*$"};
  std::smatch m;
  while (std::getline(in, line)) {
    if (line.rfind("paths:", 0) == 0) {
      in_paths = true;
      continue;
    }
    if (in_paths && !line.empty() && line[0] != ' ' && line[0] != '#')
      in_paths = false;
    if (!in_paths)
      continue;
    if (std::regex_match(line, m, path_re))
      path = normalize(m[1]);
    else if (std::regex_match(line, m, method_re)) {
      auto method = m[1].str();
      for (auto& c : method)
        c = static_cast<char>(toupper(c));
      ops.insert(method + " " + path);
    }
  }
  return ops;
}

} // namespace

TEST(routes, openapi_documents_exactly_the_served_routes) {
  std::set<std::string> served;
  for (auto& r : control_plane_routes())
    served.insert(r.method + " " + r.pattern);
  auto docs = documented();
  for (auto& op : served)
    EXPECT_TRUE(docs.count(op)) << "served but not in openapi.yaml: " << op;
  for (auto& op : docs)
    EXPECT_TRUE(served.count(op)) << "in openapi.yaml but not served: " << op;
}

TEST(routes, match_fills_parameters) {
  std::map<std::string, std::string> p;
  EXPECT_TRUE(match_route("/sandboxes/:id/pause", "/sandboxes/abc/pause", p));
  EXPECT_EQ(p["id"], "abc");
  EXPECT_TRUE(match_route("/sandboxes/:id", "/sandboxes/abc/", p));
  EXPECT_FALSE(match_route("/sandboxes/:id", "/sandboxes/", p));
  EXPECT_FALSE(match_route("/sandboxes/:id", "/sandboxes/a/b", p));
  EXPECT_FALSE(match_route("/sandboxes", "/sandboxesx", p));
  EXPECT_TRUE(match_route("/sandboxes", "/sandboxes", p));
  // Parameters arrive percent-decoded ('+' stays itself in a path).
  EXPECT_TRUE(match_route("/templates/:id", "/templates/snap-a%3Adefault", p));
  EXPECT_EQ(p["id"], "snap-a:default");
  EXPECT_TRUE(match_route("/templates/:id", "/templates/a+b", p));
  EXPECT_EQ(p["id"], "a+b");
}
