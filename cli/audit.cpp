// `sandboxd audit verify|replay`: what an auditor runs against a data dir,
// as a RocksDB secondary instance, safe beside a running server.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "core/clock.hpp"
#include "core/sandbox.hpp"
#include "storage/store.hpp"

namespace sandboxd::cli {

namespace {

int usage() {
  std::fprintf(stderr, "usage: sandboxd audit verify [--data-dir DIR]\n"
                       "       sandboxd audit replay [--data-dir DIR] [--sandbox ID] [--since RFC3339]\n");
  return 2;
}

int verify(store& db) {
  auto r = db.verify();
  auto head = db.head();
  if (r.ok) {
    std::printf("ok: %llu events, the chain is intact; head seq %llu hash %s\n",
                static_cast<unsigned long long>(r.checked),
                static_cast<unsigned long long>(head.seq), head.hash.c_str());
    return 0;
  }
  std::printf("broken: event seq %llu%s: %s (%llu events before it are intact)\n",
              static_cast<unsigned long long>(r.broken_seq),
              r.broken_id.empty() ? "" : (" (id " + r.broken_id + ")").c_str(),
              r.reason.c_str(), static_cast<unsigned long long>(r.checked));
  return 1;
}

// Prints the retained events (JSON lines), then the state each sandbox
// reaches: the retention checkpoint's snapshot with every later event folded
// in, exactly as the server rebuilds itself on start.
int replay(store& db, const std::string& only, std::optional<int64_t> since) {
  int bad = 0;
  auto recs = db.replay([&](const std::string& why) {
    std::fprintf(stderr, "%s\n", why.c_str());
    ++bad;
  });
  auto cp = db.load_checkpoint();
  if (!recs || !cp) {
    std::fprintf(stderr, "%s\n", (!recs ? recs.error() : cp.error()).message.c_str());
    return 1;
  }
  auto scanned = db.scan(*cp ? (*cp)->seq + 1 : 1, [&](const event& e) {
    if ((only.empty() || e.sandbox_id == only) && (!since || e.timestamp_ms >= *since))
      std::printf("%s\n", nlohmann::json{{"event", to_json(e)}}.dump().c_str());
    return true;
  });
  if (!scanned) {
    std::fprintf(stderr, "%s\n", scanned.error().message.c_str());
    return 1;
  }
  for (auto& [id, r] : *recs) {
    if (!only.empty() && id != only)
      continue;
    nlohmann::json s = {{"sandboxID", id},
                        {"teamID", r.org_id},
                        {"state", to_string(r.state)},
                        {"templateID", r.template_id},
                        {"metadata", r.metadata},
                        {"startedAt", to_rfc3339(r.started_at_ms)},
                        {"endAt", to_rfc3339(r.end_at_ms)},
                        {"lastSeq", r.last_seq}};
    if (r.end_reason)
      s["killReason"] = to_string(*r.end_reason);
    std::printf("%s\n", nlohmann::json{{"sandbox", s}}.dump().c_str());
  }
  return bad == 0 ? 0 : 1;
}

} // namespace

int audit(int argc, char** argv) {
  auto opts = parse(argc, argv, 2, {"data-dir", "sandbox", "since"});
  if (!opts || opts->positional.size() != 1)
    return usage();
  auto db = store::open_secondary(opts->get("data-dir", "./data") + "/db");
  if (!db) {
    std::fprintf(stderr, "sandboxd audit: %s\n", db.error().message.c_str());
    return 1;
  }
  auto& verb = opts->positional[0];
  if (verb == "verify")
    return verify(**db);
  if (verb == "replay") {
    std::optional<int64_t> since;
    if (auto s = opts->get("since", ""); !s.empty()) {
      since = parse_rfc3339(s);
      if (!since) {
        std::fprintf(stderr, "sandboxd audit: --since must be an RFC 3339 timestamp\n");
        return 2;
      }
    }
    return replay(**db, opts->get("sandbox", ""), since);
  }
  return usage();
}

} // namespace sandboxd::cli
