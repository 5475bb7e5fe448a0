#include <gtest/gtest.h>

#include <climits>
#include <cstdio>
#include <filesystem>
#include <set>

#include <rocksdb/db.h>

#include "core/ids.hpp"
#include "core/sandbox.hpp"
#include "storage/store.hpp"
#include "tests/unit/raw_db.hpp"

using namespace sandboxd;
namespace fs = std::filesystem;

namespace {

// A fresh database directory, removed even when the test fails.
struct temp_db : ::testing::Test {
  std::string dir = (fs::temp_directory_path() / ("sandboxd-store-" + random_hex(6))).string();
  void TearDown() override {
    fs::remove_all(dir);
  }
};

event ev(event_type t, const std::string& sbx, const std::string& org) {
  event e;
  e.id = new_uuid();
  e.type = t;
  e.sandbox_id = sbx;
  e.team_id = org;
  e.timestamp_ms = 1;
  return e;
}

} // namespace

TEST_F(temp_db, append_assigns_increasing_sequence_numbers) {
  auto db = store::open(dir);
  ASSERT_TRUE(db);
  auto a = (*db)->append({ev(event_type::created, "s1", "o1")});
  auto b = (*db)->append({ev(event_type::paused, "s1", "o1"), ev(event_type::created, "s2", "o2")});
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->front().seq, 1u);
  EXPECT_EQ((*b)[0].seq, 2u);
  EXPECT_EQ((*b)[1].seq, 3u);
  EXPECT_EQ((*db)->last_seq(), 3u);
}

TEST_F(temp_db, replay_after_reopen_rebuilds_state) {
  {
    auto db = store::open(dir);
    ASSERT_TRUE(db);
    ASSERT_TRUE((*db)->append({ev(event_type::created, "s1", "o1")}));
    ASSERT_TRUE((*db)->append({ev(event_type::created, "s2", "o1")}));
    ASSERT_TRUE((*db)->append({ev(event_type::paused, "s1", "o1")}));
    auto k = ev(event_type::killed, "s2", "o1");
    k.reason = kill_reason::request;
    ASSERT_TRUE((*db)->append({k}));
  }
  auto db = store::open(dir);
  ASSERT_TRUE(db);
  EXPECT_EQ((*db)->last_seq(), 4u);
  std::map<std::string, sandbox_record> recs;
  ASSERT_TRUE((*db)->scan(0, [&](const event& e) {
    EXPECT_TRUE(apply(recs[e.sandbox_id], e).ok());
    return true;
  }));
  EXPECT_EQ(recs["s1"].state, sandbox_state::paused);
  EXPECT_EQ(recs["s2"].state, sandbox_state::stopped);
  // Appends continue after the last stored sequence number.
  auto next = (*db)->append({ev(event_type::resumed, "s1", "o1")});
  ASSERT_TRUE(next);
  EXPECT_EQ(next->front().seq, 5u);
}

TEST_F(temp_db, events_of_sandbox_come_from_its_index) {
  auto db = store::open(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE((*db)->append({ev(event_type::created, "s1", "o1"),
                             ev(event_type::created, "s10", "o1"),
                             ev(event_type::paused, "s1", "o1")}));
  auto evs = *(*db)->events_of_sandbox("s1");
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(evs[0].type, event_type::created);
  EXPECT_EQ(evs[1].type, event_type::paused);
}

TEST_F(temp_db, keys_are_hashed_and_map_to_their_org) {
  auto db = store::open(dir);
  ASSERT_TRUE(db);
  EXPECT_FALSE(*(*db)->has_keys());
  auto k1 = (*db)->create_key("acme");
  auto k2 = (*db)->create_key("globex");
  ASSERT_TRUE(k1 && k2);
  EXPECT_EQ(k1->size(), 44u);
  EXPECT_EQ(k1->rfind("e2b_", 0), 0u);
  EXPECT_TRUE(*(*db)->has_keys());
  auto o1 = *(*db)->org_of_key(*k1);
  auto o2 = *(*db)->org_of_key(*k2);
  ASSERT_TRUE(o1 && o2);
  EXPECT_NE(*o1, *o2);
  EXPECT_EQ(*o1, *(*db)->ensure_org("acme"));
  auto unknown = (*db)->org_of_key("e2b_0000000000000000000000000000000000000000");
  ASSERT_TRUE(unknown);
  EXPECT_FALSE(*unknown);
}

TEST_F(temp_db, second_open_is_refused_while_the_first_holds_it) {
  auto db = store::open(dir);
  ASSERT_TRUE(db);
  auto again = store::open(dir);
  EXPECT_FALSE(again);
}

TEST_F(temp_db, secret_is_stable_across_reopen) {
  std::string first;
  {
    auto db = store::open(dir);
    ASSERT_TRUE(db);
    first = (*db)->secret();
  }
  auto db = store::open(dir);
  ASSERT_TRUE(db);
  EXPECT_EQ((*db)->secret(), first);
  EXPECT_EQ(first.size(), 64u);
}

TEST_F(temp_db, event_pages_are_stable_while_events_are_appended) {
  auto db = store::open(dir);
  ASSERT_TRUE(db);
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE((*db)->append({ev(event_type::created, "s" + std::to_string(i), "o1")}));
  ASSERT_TRUE((*db)->append({ev(event_type::created, "x", "o2")})); // another org
  store::event_query q;
  q.org_id = "o1";
  q.limit = 2;
  bool more = false;
  auto page1 = *(*db)->query_events(q, &more);
  ASSERT_EQ(page1.size(), 2u);
  EXPECT_TRUE(more);
  EXPECT_EQ(page1[0].seq, 5u); // newest first
  // New events arrive between pages: the next page is unaffected.
  ASSERT_TRUE((*db)->append({ev(event_type::paused, "s4", "o1")}));
  q.after_seq = page1.back().seq;
  auto page2 = *(*db)->query_events(q, &more);
  ASSERT_EQ(page2.size(), 2u);
  EXPECT_EQ(page2[0].seq, 3u);
  EXPECT_EQ(page2[1].seq, 2u);
  EXPECT_TRUE(more);
  q.after_seq = page2.back().seq;
  auto page3 = *(*db)->query_events(q, &more);
  ASSERT_EQ(page3.size(), 1u);
  EXPECT_FALSE(more);
  // Ascending from a cursor, and a type filter.
  q.ascending = true;
  q.after_seq = 3;
  q.limit = 10;
  auto asc = *(*db)->query_events(q, &more);
  ASSERT_EQ(asc.size(), 3u);
  EXPECT_EQ(asc[0].seq, 4u);
  EXPECT_EQ(asc.back().type, event_type::paused);
  q.after_seq.reset();
  q.types = {event_type::paused};
  EXPECT_EQ((*db)->query_events(q)->size(), 1u);
}

TEST_F(temp_db, metrics_history_is_a_ring_filtered_by_time) {
  auto db = store::open(dir);
  ASSERT_TRUE(db);
  auto sample = [](int i) {
    container_sample s;
    s.timestamp_ms = i * 1000;
    s.mem_used = i;
    return s;
  };
  for (int i = 1; i <= 10; ++i)
    ASSERT_TRUE((*db)->append_metric("sbx", sample(i), 4));
  container_sample other;
  other.timestamp_ms = 5000;
  ASSERT_TRUE((*db)->append_metric("sbx2", other, 4));
  auto all = *(*db)->metrics("sbx", 0, INT64_MAX);
  ASSERT_EQ(all.size(), 4u) << "only the newest 4 are kept";
  EXPECT_EQ(all.front().mem_used, 7);
  EXPECT_EQ(all.back().mem_used, 10);
  auto some = *(*db)->metrics("sbx", 8000, 9000);
  ASSERT_EQ(some.size(), 2u);
  EXPECT_EQ(some[0].timestamp_ms, 8000);
  EXPECT_EQ((*(*db)->latest_metric("sbx"))->mem_used, 10);
  EXPECT_FALSE(*(*db)->latest_metric("nope"));
  EXPECT_EQ((*db)->metrics("sbx2", 0, INT64_MAX)->size(), 1u);
  // The ring's size survives a reopen: still the newest 4.
  db->reset();
  auto again = store::open(dir);
  ASSERT_TRUE(again);
  for (int i = 11; i <= 12; ++i)
    ASSERT_TRUE((*again)->append_metric("sbx", sample(i), 4));
  auto kept = *(*again)->metrics("sbx", 0, INT64_MAX);
  ASSERT_EQ(kept.size(), 4u);
  EXPECT_EQ(kept.front().mem_used, 9);
  EXPECT_EQ(kept.back().mem_used, 12);
}

// A metrics tick appends every running sandbox's sample in one write; each
// ring keeps its own cap.
TEST_F(temp_db, a_tick_appends_to_every_ring_at_once) {
  auto db = store::open(dir);
  ASSERT_TRUE(db);
  for (int i = 1; i <= 5; ++i) {
    std::vector<std::pair<std::string, container_sample>> tick;
    for (auto id : {"a", "b", "c"}) {
      container_sample s;
      s.timestamp_ms = i * 1000;
      s.mem_used = i;
      tick.emplace_back(id, s);
    }
    ASSERT_TRUE((*db)->append_metrics(tick, 3));
  }
  for (auto id : {"a", "b", "c"}) {
    auto kept = *(*db)->metrics(id, 0, INT64_MAX);
    ASSERT_EQ(kept.size(), 3u) << id;
    EXPECT_EQ(kept.front().mem_used, 3);
    EXPECT_EQ(kept.back().mem_used, 5);
  }
  EXPECT_TRUE((*db)->append_metrics({}, 3)); // a tick with nothing running
}

TEST_F(temp_db, log_pages_walk_both_ways_from_a_cursor) {
  auto db = store::open(dir);
  ASSERT_TRUE(db);
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE((*db)->append_logs("sbx", {{1000 + i, i % 2 ? "stderr" : "stdout", "l" + std::to_string(i)}}));
  auto all = [](auto&) { return true; };
  auto text = [](const result<std::vector<store::log_line>>& v) {
    std::string s;
    for (auto& l : *v)
      s += l.line + " ";
    return s;
  };
  EXPECT_EQ(text((*db)->logs_page("sbx", std::nullopt, true, 10, all)), "l0 l1 l2 l3 l4 ");
  EXPECT_EQ(text((*db)->logs_page("sbx", std::nullopt, false, 2, all)), "l4 l3 ");
  EXPECT_EQ(text((*db)->logs_page("sbx", int64_t{1002}, true, 10, all)), "l2 l3 l4 ");
  EXPECT_EQ(text((*db)->logs_page("sbx", int64_t{1002}, false, 10, all)), "l2 l1 l0 ");
  auto errors = [](const store::log_line& l) { return l.stream == "stderr"; };
  EXPECT_EQ(text((*db)->logs_page("sbx", std::nullopt, true, 10, errors)), "l1 l3 ");
  EXPECT_TRUE((*db)->logs_page("other", std::nullopt, true, 10, all)->empty());
}

TEST_F(temp_db, auditors_open_a_store_from_before_the_newer_families) {
  {
    auto db = store::open(dir);
    ASSERT_TRUE(db);
    ASSERT_TRUE((*db)->append({ev(event_type::created, "s1", "o1")}));
  }
  // Drop the newest family as an older sandboxd never made it.
  with_raw_db(dir, [](rocksdb::DB* raw, auto& families) {
    ASSERT_TRUE(raw->DropColumnFamily(families.at("metrics")).ok());
  });
  auto ro = store::open_secondary(dir);
  ASSERT_TRUE(ro) << ro.error().message;
  EXPECT_EQ((*ro)->last_seq(), 1u);
  EXPECT_TRUE((*ro)->verify().ok);
}

TEST_F(temp_db, all_snapshots_are_found_in_every_org) {
  auto db = store::open(dir);
  ASSERT_TRUE(db);
  auto snap = [](std::string id, std::string org, bool hidden, int64_t at) {
    snapshot_info s;
    s.id = std::move(id);
    s.org_id = std::move(org);
    s.template_id = "base";
    s.created_ms = at;
    s.hidden = hidden;
    return s;
  };
  ASSERT_TRUE((*db)->put_snapshot(snap("fork-a", "org-1", true, 1)));
  auto on_worker = snap("named-a", "org-1", false, 2);
  on_worker.node = "w1";
  ASSERT_TRUE((*db)->put_snapshot(on_worker));
  ASSERT_TRUE((*db)->put_snapshot(snap("fork-b", "org-2", true, 3)));
  auto all = *(*db)->all_snapshots();
  std::set<std::string> ids;
  for (auto& s : all)
    ids.insert(s.org_id + "/" + s.id + (s.hidden ? " (hidden)" : ""));
  EXPECT_EQ(ids, (std::set<std::string>{"org-1/fork-a (hidden)", "org-1/named-a",
                                        "org-2/fork-b (hidden)"}));
  for (auto& s : all)
    EXPECT_EQ(s.node, s.id == "named-a" ? "w1" : "") << s.id; // where its layer is
  ASSERT_TRUE((*db)->delete_snapshot(all.front()));
  EXPECT_EQ((*db)->all_snapshots()->size(), 2u);
}

// `sandboxd worker drain` outlives a restart: the set is stored whole.
TEST_F(temp_db, drained_nodes_survive_a_reopen) {
  {
    auto db = store::open(dir);
    ASSERT_TRUE(db);
    EXPECT_EQ(*(*db)->drained_nodes(), std::set<std::string>{});
    ASSERT_TRUE((*db)->put_drained_nodes({"w1", "w2"}));
    ASSERT_TRUE((*db)->put_drained_nodes({"w2"}));
  }
  auto db = store::open(dir);
  ASSERT_TRUE(db);
  EXPECT_EQ(*(*db)->drained_nodes(), std::set<std::string>{"w2"});
}

TEST_F(temp_db, an_unreadable_value_is_an_error_not_an_absence) {
  std::string org, key;
  {
    auto db = store::open(dir);
    ASSERT_TRUE(db);
    auto k = (*db)->create_key("acme");
    ASSERT_TRUE(k);
    key = *k;
    org = *(*db)->ensure_org("acme");
  }
  corrupt_family(dir, "orgs");
  corrupt_family(dir, "api_keys");
  auto db = store::open(dir);
  ASSERT_TRUE(db) << db.error().message;
  // Read as absent, the org would get a second id, and a valid key a 401.
  auto again = (*db)->ensure_org("acme");
  ASSERT_FALSE(again) << "a new id " << *again << " for an org whose id is " << org;
  EXPECT_EQ(again.error().status, 503);
  auto owner = (*db)->org_of_key(key);
  ASSERT_FALSE(owner);
  EXPECT_EQ(owner.error().status, 503);
  // Read as "no keys yet", the first start's bootstrap would make another.
  EXPECT_TRUE(read_failed((*db)->has_keys()));
}

// A listing over a family whose table files are broken fails (503), never
// answers with what it could read: a caller would take that for the whole.
TEST_F(temp_db, a_listing_that_cannot_be_read_fails_rather_than_shortens) {
  container_sample sample;
  sample.timestamp_ms = 1000;
  {
    auto db = store::open(dir);
    ASSERT_TRUE(db);
    ASSERT_TRUE((*db)->append({ev(event_type::created, "s1", "o1")}));
    ASSERT_TRUE((*db)->create_key("o1"));
    webhook w;
    w.id = "w1";
    w.org_id = "o1";
    ASSERT_TRUE((*db)->put_webhook(w));
    delivery d;
    d.webhook_id = "w1";
    d.seq = 1;
    ASSERT_TRUE((*db)->put_delivery(d));
    ASSERT_TRUE((*db)->append_logs("s1", {{1, "stdout", "hello"}}));
    ASSERT_TRUE((*db)->append_metric("s1", sample));
    snapshot_info snap;
    snap.id = "snap1";
    snap.org_id = "o1";
    ASSERT_TRUE((*db)->put_snapshot(snap));
  }
  for (auto family : {"events_by_org", "events_by_sandbox", "api_keys", "webhooks", "deliveries",
                      "logs", "metrics", "snapshots"})
    corrupt_family(dir, family);
  auto db = store::open(dir);
  ASSERT_TRUE(db) << db.error().message;
  auto& s = **db;
  store::event_query q;
  q.org_id = "o1";
  EXPECT_TRUE(read_failed(s.query_events(q)));
  q.sandbox_id = "s1";
  EXPECT_TRUE(read_failed(s.query_events(q)));
  EXPECT_TRUE(read_failed(s.events_of_sandbox("s1")));
  EXPECT_TRUE(read_failed(s.replay_sandbox("s1")));
  EXPECT_TRUE(read_failed(s.has_keys()));
  EXPECT_TRUE(read_failed(s.webhooks()));
  EXPECT_TRUE(read_failed(s.webhooks("o1")));
  EXPECT_TRUE(read_failed(s.deliveries("w1", std::nullopt, 10, {}, nullptr)));
  auto all = [](auto&) { return true; };
  EXPECT_TRUE(read_failed(s.logs("s1", 10, 0)));
  EXPECT_TRUE(read_failed(s.logs_page("s1", std::nullopt, true, 10, all)));
  EXPECT_TRUE(read_failed(s.logs_page("s1", std::nullopt, false, 10, all)));
  EXPECT_TRUE(read_failed(s.metrics("s1", 0, INT64_MAX)));
  EXPECT_TRUE(read_failed(s.latest_metric("s1")));
  EXPECT_TRUE(read_failed(s.snapshots("o1", 10, all, std::nullopt, nullptr)));
  EXPECT_TRUE(read_failed(s.find_snapshot("o1", "snap1")));
  EXPECT_TRUE(read_failed(s.all_snapshots()));
  // A ring past its cap is walked to drop its oldest: a walk that fails
  // fails the append (the stored count would be wrong).
  EXPECT_TRUE(read_failed(s.append_logs("s1", {{2, "stdout", "more"}}, 1)));
  sample.timestamp_ms = 2000;
  EXPECT_TRUE(read_failed(s.append_metric("s1", sample, 1)));
}

// The indexes whole, the events they point to unreadable: the listing fails.
TEST_F(temp_db, an_indexed_event_that_cannot_be_read_fails_its_listing) {
  {
    auto db = store::open(dir);
    ASSERT_TRUE(db);
    ASSERT_TRUE((*db)->append({ev(event_type::created, "s1", "o1")}));
    // Enough later events for more than one block: the newest, which the
    // store reads when it opens, stays whole.
    std::vector<event> later;
    for (int i = 0; i < 300; ++i)
      later.push_back(ev(event_type::created, "s" + std::to_string(i + 2), "o2"));
    ASSERT_TRUE((*db)->append(later));
  }
  corrupt_family(dir, "events");
  auto db = store::open(dir);
  ASSERT_TRUE(db) << db.error().message;
  EXPECT_TRUE(read_failed((*db)->events_of_sandbox("s1")));
  store::event_query q;
  q.org_id = "o1";
  EXPECT_TRUE(read_failed((*db)->query_events(q)));
}
