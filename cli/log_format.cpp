#include "cli/log_format.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <memory>

#include <nlohmann/json.hpp>

namespace sandboxd::cli {

namespace {

class json_formatter final : public spdlog::formatter {
public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    auto t = system_clock::to_time_t(msg.time);
    auto ms = duration_cast<milliseconds>(msg.time.time_since_epoch()).count() % 1000;
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char ts[40];
    auto n = std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(ts + n, sizeof ts - n, ".%03dZ", static_cast<int>(ms));
    auto level = spdlog::level::to_string_view(msg.level);
    nlohmann::json j = {{"ts", ts},
                        {"level", std::string(level.data(), level.size())},
                        {"msg", std::string(msg.payload.data(), msg.payload.size())}};
    if (msg.logger_name.size() > 0)
      j["logger"] = std::string(msg.logger_name.data(), msg.logger_name.size());
    auto line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_formatter>();
  }
};

} // namespace

status set_log_format(const std::string& format) {
  if (format.empty() || format == "text")
    return success();
  if (format != "json")
    return bad_request("--log-format must be text or json, not " + format);
  spdlog::set_formatter(std::make_unique<json_formatter>());
  return success();
}

} // namespace sandboxd::cli
