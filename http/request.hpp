// One HTTP request as the route handlers see it: copied out of Pistache so a
// reply can be sent later, from whichever thread the answer arrives on
// (a single send() from another thread is safe in Pistache 0.0.5).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace Pistache::Http {
class ResponseWriter;
} // namespace Pistache::Http

namespace sandboxd::http {

using json = nlohmann::json;

/// Sends the reply exactly once; later sends are ignored.
class responder {
public:
  explicit responder(Pistache::Http::ResponseWriter&& w);
  ~responder();
  void send_json(int status, const json& body);
  void send_json_with_headers(int status, const json& body,
                              const std::map<std::string, std::string>& headers);
  /// JSON already rendered (a cached listing), sent as it is.
  void send_json_text(int status, const std::string& body,
                      const std::map<std::string, std::string>& headers = {});
  void send_empty(int status);
  /// A non-JSON body (e.g. Prometheus' text format) with its content type.
  void send_text(int status, const std::string& body, const std::string& content_type,
                 const std::map<std::string, std::string>& headers = {});
  void send_error(const failure& f);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

struct request {
  std::string method;
  std::string path;
  std::map<std::string, std::string> params;             // from the route
  std::unordered_map<std::string, std::string> query;
  std::map<std::string, std::string> headers;            // lowercase names
  std::string body;
  std::string org;                                       // after auth
  std::shared_ptr<responder> out;

  std::string header(const std::string& lowercase_name) const {
    auto i = headers.find(lowercase_name);
    return i == headers.end() ? std::string{} : i->second;
  }
  std::optional<std::string> query_param(const std::string& name) const {
    auto i = query.find(name);
    if (i == query.end())
      return std::nullopt;
    return i->second;
  }
};

} // namespace sandboxd::http
