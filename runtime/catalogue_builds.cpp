#include "runtime/catalogue_builds.hpp"

#include <pthread.h>
#include <signal.h>

#include <spdlog/spdlog.h>

#include <thread>
#include <vector>

#include "core/clock.hpp"

namespace sandboxd {

struct catalogue_builds::shared {
  mutable std::mutex mtx;
  std::map<std::string, catalogue_build_progress> builds; // by template name
};

const char* build_status_name(catalogue_build_progress::phase p) {
  switch (p) {
  case catalogue_build_progress::phase::waiting:
    return "waiting";
  case catalogue_build_progress::phase::building:
    return "building";
  case catalogue_build_progress::phase::ready:
    return "ready";
  case catalogue_build_progress::phase::failed:
    return "error";
  }
  return "error";
}

std::shared_ptr<catalogue_builds> catalogue_builds::start(std::shared_ptr<const template_catalog> cat) {
  auto out = std::shared_ptr<catalogue_builds>(new catalogue_builds);
  out->s_ = std::make_shared<shared>();
  std::vector<template_spec> todo;
  for (auto& spec : cat->all())
    if (!cat->is_built(spec)) {
      todo.push_back(spec);
      out->s_->builds[spec.name] = {};
    }
  if (todo.empty())
    return out;
  spdlog::info("building {} templates in the background, {} first", todo.size(), todo.front().name);
  // The thread holds what it uses (the process may end while it builds: a
  // stopped server's build is finished or cleared by the next one).
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  std::thread([s = out->s_, cat, todo = std::move(todo)] {
    for (auto& spec : todo) {
      {
        std::lock_guard<std::mutex> guard{s->mtx};
        auto& p = s->builds[spec.name];
        p.state = catalogue_build_progress::phase::building;
        p.started_ms = now_ms();
      }
      spdlog::info("template {}: building", spec.name);
      auto st = cat->build(spec, [&s, &spec](const std::string& line) {
        std::lock_guard<std::mutex> guard{s->mtx};
        auto& p = s->builds[spec.name];
        ++p.lines;
        p.last_line = line.substr(0, 200);
      });
      std::lock_guard<std::mutex> guard{s->mtx};
      auto& p = s->builds[spec.name];
      if (st) {
        p.state = catalogue_build_progress::phase::ready;
        spdlog::info("template {}: built in {} s", spec.name, (now_ms() - p.started_ms) / 1000);
      } else {
        p.state = catalogue_build_progress::phase::failed;
        p.error = st.error().message;
        spdlog::error("template {}: build failed: {}", spec.name, p.error);
      }
    }
  }).detach();
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return out;
}

std::optional<catalogue_build_progress> catalogue_builds::progress(const std::string& name) const {
  std::lock_guard<std::mutex> guard{s_->mtx};
  auto it = s_->builds.find(name);
  if (it == s_->builds.end())
    return std::nullopt;
  return it->second;
}

std::optional<failure> catalogue_builds::refusal(const std::string& name) const {
  auto p = progress(name);
  if (!p)
    return std::nullopt;
  using phase = catalogue_build_progress::phase;
  switch (p->state) {
  case phase::ready:
    return std::nullopt;
  case phase::waiting:
    return failure{409, "template " + name + " is waiting to be built (this server builds its "
                          "templates one after another as it starts); GET /templates shows it "
                          "ready when it is"};
  case phase::building: {
    auto secs = (now_ms() - p->started_ms) / 1000;
    return failure{409, "template " + name + " is being built (for " + std::to_string(secs)
                          + " s, " + std::to_string(p->lines) + " steps so far"
                          + (p->last_line.empty() ? "" : ", now: " + p->last_line)
                          + "); GET /templates shows it ready when it is"};
  }
  case phase::failed:
    return failure{503, "template " + name + " could not be built: " + p->error
                          + "; run: sandboxd template build " + name};
  }
  return std::nullopt;
}

} // namespace sandboxd
