// Stored records (storage/record_codec.hpp): each type comes back whole,
// bytes it did not write are refused, and a store written by a version
// before record format 1 (JSON text) is rewritten when it opens, its signed
// checkpoint included.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>
#include <rocksdb/db.h>

#include "core/crypto.hpp"
#include "core/ids.hpp"
#include "storage/record_codec.hpp"
#include "storage/store.hpp"
#include "storage/store_detail.hpp"
#include "tests/unit/lifecycle_event.hpp"
#include "tests/unit/raw_db.hpp"

using namespace sandboxd;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

template_build a_build() {
  template_build b;
  b.id = "build-1";
  b.template_id = "tpl01";
  b.org_id = "org";
  b.status = build_status::ready;
  b.packages = {"jq"};
  b.env = {{"A", "1"}};
  b.hash = "h";
  b.code = true;
  b.steps = template_steps{"base", "", {{"RUN", {"echo hi"}, "", false}}, "", "true", false};
  b.tags = {"prod"};
  b.tag_times = {{"prod", 42}};
  b.asked_cpu = 4;
  return b;
}

sandbox_record a_record(const std::string& id) {
  sandbox_record r;
  r.id = id;
  r.org_id = "org";
  r.template_id = "base";
  r.metadata = {{"k", "v"}};
  r.env_vars = {{"E", "x"}};
  r.cpu_count = 2;
  r.memory_mb = 512;
  r.state = sandbox_state::paused;
  r.end_reason = kill_reason::idle;
  r.last_seq = 7;
  r.ext = {{"agent", "a"}};
  return r;
}

// Written, read, and written again: the same bytes (every field inspected is
// every field: tests/unit/message_types_test.cpp checks that per type).
template <class T>
void expect_round_trip(const char* what, const T& x) {
  auto bytes = encode_record(x);
  ASSERT_TRUE(bytes) << what;
  ASSERT_FALSE(bytes->empty());
  EXPECT_EQ(bytes->front(), record_format_v1) << what;
  auto back = decode_record<T>(*bytes);
  ASSERT_TRUE(back) << what;
  EXPECT_EQ(*encode_record(*back), *bytes) << what;
  // Any shorter prefix, or a byte more, is not this record.
  for (size_t n = 0; n < bytes->size(); ++n)
    EXPECT_FALSE(decode_record<T>(std::string_view{*bytes}.substr(0, n))) << what << " cut at " << n;
  EXPECT_FALSE(decode_record<T>(*bytes + "x")) << what;
}

} // namespace

namespace {

webhook a_webhook() {
  return {"wh1", "org", "n", "http://127.0.0.1/h", "s3cret",
          {event_type::created, event_type::volume_deleted}, false, 5};
}

delivery a_delivery() {
  return {"wh1", 9, "ev", event_type::killed, "sbx", {{"a1", true, 12, "http://x", 200, "", "", 77}},
          true};
}

volume a_volume() {
  return {"vol-0123456789abcdef0123", "org", "data", 1700000000000, 64};
}

secret_record a_secret() {
  secret_record s;
  s.id = "sec_0123456789abcdef0123";
  s.org_id = "org";
  s.name = "k";
  s.metadata = {{"team", "ml"}};
  s.current_version = 1;
  s.versions = {{1, 2, std::string("\0\x01sealed\xff", 9)}};
  return s;
}

snapshot_info a_snapshot() {
  return {"snap1", "org", "n", "sbx", "base", {"/l/1", "/l/2"}, "node-b", 3, true};
}

user_template a_template() {
  user_template t;
  t.id = "tpl01";
  t.org_id = "org";
  t.name = "mine";
  t.latest_status = build_status::building;
  t.ready = a_build();
  return t;
}

// Each stored type's filled value and its bytes.
template <class F>
void for_each_record(F f) {
  f("webhook", a_webhook());
  f("delivery", a_delivery());
  f("volume", a_volume());
  f("secret", a_secret());
  f("snapshot", a_snapshot());
  f("user_template", a_template());
  f("template_build", a_build());
  f("build_log_entry", build_log_entry{1, "error", "3", "apt: \xff failed"});
  f("sandbox_record", a_record("a"));
  f("container_sample", container_sample{1, 2, 33.5, 4, 5, 6, 7, 8});
  f("log_line", store::log_line{1, "stdout", std::string("\0\xfe", 2)});
  f("checkpoint", store::checkpoint{4, "hash", 9, {a_record("a"), a_record("b")}, "sig"});
  f("drained nodes", std::set<std::string>{"n1", "n2"});
}

} // namespace

TEST(RecordCodec, EveryStoredTypeComesBackWhole) {
  for_each_record([](const char* what, const auto& x) { expect_round_trip(what, x); });
}

// What is stored today must read tomorrow. A type whose bytes changed (a
// field added, moved or removed in its inspect) fails here: its records on
// disk would no longer decode. See storage/record_codec.hpp for what a
// layout change takes; only then are these bytes updated.
TEST(RecordCodec, LayoutsAreFrozen) {
  const std::map<std::string, std::string> frozen = {
    {"webhook", "0103776831036f7267016e12687474703a2f2f3132372e302e302e312f6806733363726574020006000000000000000005"},
    {"delivery", "0103776831000000000000000902657603037362780102613101000000000000000c08687474703a2f2f78000000c80000000000000000004d01"},
    {"volume", "0118766f6c2d3031323334353637383961626364656630313233036f726704646174610000018bcfe568000000000000000040"},
    {"secret", "01187365635f3031323334353637383961626364656630313233036f7267016b01047465616d026d6c00000000000000000000000000000000000000000000000101000000000000000100000000000000020900017365616c6564ff"},
    {"snapshot", "0105736e617031036f7267016e03736278046261736502042f6c2f31042f6c2f32066e6f64652d62000000000000000301"},
    {"user_template", "010574706c3031036f7267046d696e65000000000000000000000000000000000000000000000000000101076275696c642d310574706c3031036f726702000000000000000000000000000000000000000000000000000001026a710001014101310000000000000000020000020001680101046261736500010352554e01076563686f2068690000000474727565000000010470726f640000010470726f64000000000000002a010000000400"},
    {"template_build", "01076275696c642d310574706c3031036f726702000000000000000000000000000000000000000000000000000001026a710001014101310000000000000000020000020001680101046261736500010352554e01076563686f2068690000000474727565000000010470726f640000010470726f64000000000000002a010000000400"},
    {"build_log_entry", "010000000000000001056572726f7201330d6170743a20ff206661696c6564"},
    {"sandbox_record", "010161036f726704626173650001016b0176010145017800000002000002000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000020000000000000000000104000000000000000701056167656e740161"},
    {"container_sample", "010000000000000001000000024040c0000000000000000000000000040000000000000005000000000000000600000000000000070000000000000008"},
    {"log_line", "010000000000000001067374646f75740200fe"},
    {"checkpoint", "01000000000000000404686173680000000000000009020161036f726704626173650001016b0176010145017800000002000002000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000020000000000000000000104000000000000000701056167656e7401610162036f726704626173650001016b0176010145017800000002000002000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000020000000000000000000104000000000000000701056167656e74016103736967"},
    {"drained nodes", "0102026e31026e32"},
  };
  for_each_record([&](const char* what, const auto& x) {
    auto bytes = encode_record(x);
    ASSERT_TRUE(bytes);
    auto hex = hex_encode(*bytes);
    auto it = frozen.find(what);
    EXPECT_TRUE(it != frozen.end() && it->second == hex)
      << what << "'s stored layout changed; its bytes now: {\"" << what << "\", \"" << hex
      << "\"},";
  });
}

TEST(RecordCodec, RefusesBytesItDidNotWrite) {
  EXPECT_FALSE(decode_record<webhook>(""));
  EXPECT_FALSE(decode_record<webhook>(R"({"id":"wh1"})")); // the old JSON form
  // A string's length far past the bytes there are.
  auto line = encode_record(store::log_line{1, "stdout", "x"});
  ASSERT_TRUE(line);
  auto longer = line->substr(0, 9) + "\xff\xff\xff\xff\x0f" + line->substr(10);
  EXPECT_FALSE(decode_record<store::log_line>(longer));
  // A sequence announcing 2^32 entries, with none there.
  auto nodes = encode_record(std::set<std::string>{});
  ASSERT_TRUE(nodes);
  EXPECT_FALSE(decode_record<std::set<std::string>>(nodes->substr(0, 1) + "\xff\xff\xff\xff\x0f"));
  // Enumerators out of their type, and ids that are not ids.
  webhook w;
  w.id = "wh1";
  w.events = {static_cast<event_type>(200)};
  EXPECT_FALSE(decode_record<webhook>(*encode_record(w)));
  auto r = a_record("a");
  r.state = static_cast<sandbox_state>(9);
  EXPECT_FALSE(decode_record<sandbox_record>(*encode_record(r)));
  r = a_record("a");
  r.end_reason = static_cast<kill_reason>(99);
  EXPECT_FALSE(decode_record<sandbox_record>(*encode_record(r)));
  // One bad record in a checkpoint makes it unreadable, not shorter.
  store::checkpoint c{1, "h", 2, {a_record("a"), r}, ""};
  EXPECT_FALSE(decode_record<store::checkpoint>(*encode_record(c)));
  auto b = a_build();
  b.status = static_cast<build_status>(7);
  EXPECT_FALSE(decode_record<template_build>(*encode_record(b)));
  user_template t;
  t.id = "tpl01";
  t.ready = b; // a bad build inside a good template
  EXPECT_FALSE(decode_record<user_template>(*encode_record(t)));
  EXPECT_FALSE(decode_record<volume>(*encode_record(volume{"../x", "org", "n", 0, 0})));
  secret_record s;
  s.id = "sec_x";
  EXPECT_FALSE(decode_record<secret_record>(*encode_record(s)));
}

namespace {

struct upgrade : ::testing::Test {
  std::string dir = (fs::temp_directory_path() / ("sandboxd-upgrade-" + random_hex(6))).string();
  void TearDown() override {
    fs::remove_all(dir);
  }
};

// A sandbox record as versions before record format 1 wrote it.
json old_record(const sandbox_record& r) {
  json j = {{"id", r.id},           {"org", r.org_id},        {"template", r.template_id},
            {"alias", r.alias},     {"metadata", r.metadata}, {"env", r.env_vars},
            {"cpu", r.cpu_count},   {"memory", r.memory_mb},  {"disk", r.disk_size_mb},
            {"timeout", r.timeout_s}, {"idle", r.idle_timeout_s}, {"maxEnd", r.max_end_ms},
            {"startedAt", r.started_at_ms}, {"endAt", r.end_at_ms},
            {"state", static_cast<int>(r.state)}, {"execution", r.execution_id},
            {"executionStarted", r.execution_started_ms}, {"lastSeq", r.last_seq}};
  if (r.end_reason)
    j["endReason"] = static_cast<int>(*r.end_reason);
  if (!r.ext.empty())
    j["ext"] = r.ext;
  return j;
}

} // namespace

TEST_F(upgrade, records_of_the_json_form_are_rewritten_when_the_store_opens) {
  using store_detail::be64;
  using store_detail::index_key;
  std::string secret;
  store::checkpoint cp;
  {
    auto db = store::open(dir);
    ASSERT_TRUE(db);
    secret = (*db)->secret();
    ASSERT_TRUE((*db)->append({lifecycle(event_type::created, "a", 100)}));
    ASSERT_TRUE((*db)->append({lifecycle(event_type::paused, "a", 300)}));
    ASSERT_TRUE((*db)->append({lifecycle(event_type::created, "c", 5000)}));
    ASSERT_TRUE((*db)->compact(1000));
    cp = **(*db)->load_checkpoint();
    ASSERT_EQ(cp.sandboxes.size(), 1u);
  }
  // Everything as an older version left it: JSON text, no record_format.
  with_raw_db(dir, [&](rocksdb::DB* raw, auto& cf) {
    auto put = [&](const char* family, const std::string& key, const json& j) {
      ASSERT_TRUE(raw->Put({}, cf.at(family), key, j.dump()).ok()) << family;
    };
    ASSERT_TRUE(raw->Delete({}, cf.at("meta"), "record_format").ok());
    json body = {{"seq", cp.seq}, {"hash", cp.hash}, {"at", cp.at_ms},
                 {"sandboxes", {old_record(cp.sandboxes.front())}}};
    body["signature"] = hmac_sha256_hex(secret, "checkpoint:" + body.dump());
    put("meta", "checkpoint", body);
    put("meta", "drained_nodes", json::array({"node-b"}));
    put("webhooks", "wh1",
        {{"id", "wh1"}, {"teamId", "org"}, {"name", "n"}, {"url", "http://127.0.0.1:9/h"},
         {"secret", "s3"}, {"enabled", true}, {"createdMs", 5},
         {"events", {"sandbox.lifecycle.created", "sandbox.lifecycle.killed"}}});
    put("deliveries", index_key("wh1", 3),
        {{"webhook", "wh1"}, {"seq", 3}, {"event", "ev"}, {"type", 3}, {"sandbox", "a"},
         {"gaveUp", false},
         {"attempts", {{{"id", "d1"}, {"ok", true}, {"ms", 4}, {"url", "http://127.0.0.1:9/h"},
                        {"http", 204}, {"class", ""}, {"msg", ""}, {"at", 6}}}}});
    put("volumes", "vol-0123456789abcdef0123",
        {{"id", "vol-0123456789abcdef0123"}, {"org", "org"}, {"name", "data"}, {"created", 7},
         {"size_mb", 64}});
    put("secrets", "sec_0123456789abcdef0123",
        {{"id", "sec_0123456789abcdef0123"}, {"org", "org"}, {"name", "k"},
         {"metadata", {{"team", "ml"}}}, {"created", 1}, {"updated", 2}, {"current", 1},
         {"versions", {{{"v", 1}, {"at", 2}, {"sealed", "00ff"}}}}});
    snapshot_info snap{"snap1", "org", "n", "a", "base", {"/l/1"}, "", 8, false};
    put("snapshots", "org" + std::string(1, '\0') + store::snapshot_cursor(snap),
        {{"id", "snap1"}, {"org", "org"}, {"name", "n"}, {"sandbox", "a"}, {"template", "base"},
         {"layers", {"/l/1"}}, {"created", 8}, {"hidden", false}});
    json build = {{"id", "b1"},      {"template", "tpl01"}, {"org", "org"},
                  {"status", "ready"}, {"hash", "h"},       {"cpu", 4},
                  {"mem", 1024},     {"packages", {"jq"}},  {"tags", {"prod"}}};
    put("templates", "org" + std::string(1, '\0') + "tpl01",
        {{"id", "tpl01"}, {"org", "org"}, {"name", "mine"}, {"created", 9}, {"builds", 1},
         {"latest", "b1"}, {"status", "ready"}, {"ready", build}});
    put("template_builds", "tpl01" + std::string(1, '\0') + "b1", build);
    put("template_build_logs", "b1" + std::string(1, '\0') + be64(0),
        {{"t", 10}, {"v", "info"}, {"s", "1"}, {"m", "step one"}});
    put("logs", index_key("a", 11000) + be64(0), {{"t", 11}, {"s", "stdout"}, {"l", "hello"}});
    put("metrics", index_key("a", 12), {{"t", 12}, {"c", 2}, {"p", 50.5}, {"mu", 3}});
    // A value no version could read stays as it is, skipped as before.
    ASSERT_TRUE(raw->Put({}, cf.at("volumes"), "vol-junk", "{not json").ok());
  });
  {
    auto db = store::open(dir);
    ASSERT_TRUE(db) << db.error().message;
    auto& s = **db;
    auto v = s.verify();
    EXPECT_TRUE(v.ok) << v.reason; // the checkpoint signed anew, the chain whole
    auto state = s.replay();
    ASSERT_TRUE(state);
    EXPECT_EQ((*state)["a"].state, sandbox_state::paused);
    EXPECT_EQ((*state)["c"].state, sandbox_state::running);
    EXPECT_EQ(*s.drained_nodes(), std::set<std::string>{"node-b"});
    auto hooks = s.webhooks("org");
    ASSERT_TRUE(hooks);
    ASSERT_EQ(hooks->size(), 1u);
    EXPECT_EQ(hooks->front().secret, "s3");
    EXPECT_EQ(hooks->front().events.size(), 2u);
    auto d = s.find_delivery("wh1", 3);
    ASSERT_TRUE(d && *d);
    EXPECT_EQ((*d)->type, event_type::killed);
    EXPECT_EQ((*d)->attempts.at(0).http_status, 204);
    auto vols = s.volumes("org");
    ASSERT_TRUE(vols);
    ASSERT_EQ(vols->size(), 1u);
    EXPECT_EQ(vols->front().size_mb, 64);
    auto sec = s.find_secret("org", "k");
    ASSERT_TRUE(sec && *sec);
    EXPECT_EQ((*sec)->versions.at(0).sealed, std::string("\0\xff", 2));
    auto snaps = s.all_snapshots(nullptr);
    ASSERT_TRUE(snaps);
    ASSERT_EQ(snaps->size(), 1u);
    EXPECT_EQ(snaps->front().layers, std::vector<std::string>{"/l/1"});
    auto tpls = s.user_templates("org");
    ASSERT_TRUE(tpls);
    ASSERT_EQ(tpls->size(), 1u);
    ASSERT_TRUE(tpls->front().ready);
    EXPECT_EQ(tpls->front().ready->memory_mb, 1024);
    auto builds = s.template_builds("tpl01");
    ASSERT_TRUE(builds);
    ASSERT_EQ(builds->size(), 1u);
    EXPECT_EQ(builds->front().tags, std::vector<std::string>{"prod"});
    auto blog = s.build_logs("b1", 0, 10);
    ASSERT_TRUE(blog);
    ASSERT_EQ(blog->size(), 1u);
    EXPECT_EQ(blog->front().message, "step one");
    auto lines = s.logs("a", 10, 0);
    ASSERT_TRUE(lines);
    ASSERT_EQ(lines->size(), 1u);
    EXPECT_EQ(lines->front().line, "hello");
    auto m = s.latest_metric("a");
    ASSERT_TRUE(m && *m);
    EXPECT_EQ((*m)->cpu_used_pct, 50.5);
  }
  // Rewritten once: what is JSON after that is not read as a record again.
  with_raw_db(dir, [&](rocksdb::DB* raw, auto& cf) {
    std::string value;
    ASSERT_TRUE(raw->Get({}, cf.at("meta"), "record_format", &value).ok());
    EXPECT_EQ(value, "1");
    ASSERT_TRUE(raw->Get({}, cf.at("volumes"), "vol-junk", &value).ok());
    EXPECT_EQ(value, "{not json");
    ASSERT_TRUE(raw->Put({}, cf.at("volumes"), "vol-0123456789abcdef0124",
                         R"({"id":"vol-0123456789abcdef0124","org":"org","name":"late"})")
                  .ok());
  });
  auto db = store::open(dir);
  ASSERT_TRUE(db);
  EXPECT_EQ((*db)->volumes("org")->size(), 1u);
}

// A checkpoint of the old form whose signature does not hold is not signed
// anew by the upgrade: verify still reports it.
TEST_F(upgrade, a_forged_checkpoint_of_the_json_form_stays_forged) {
  {
    auto db = store::open(dir);
    ASSERT_TRUE(db);
    ASSERT_TRUE((*db)->append({lifecycle(event_type::created, "a", 100)}));
    ASSERT_TRUE((*db)->append({lifecycle(event_type::created, "c", 5000)}));
    ASSERT_TRUE((*db)->compact(1000));
  }
  store::checkpoint cp;
  with_raw_db(dir, [&](rocksdb::DB* raw, auto& cf) {
    std::string bytes;
    ASSERT_TRUE(raw->Get({}, cf.at("meta"), "checkpoint", &bytes).ok());
    cp = *decode_record<store::checkpoint>(bytes);
    json body = {{"seq", cp.seq}, {"hash", cp.hash}, {"at", cp.at_ms},
                 {"sandboxes", {old_record(cp.sandboxes.at(0))}}};
    body["signature"] = hmac_sha256_hex("not this install's secret", "checkpoint:" + body.dump());
    ASSERT_TRUE(raw->Put({}, cf.at("meta"), "checkpoint", body.dump()).ok());
    ASSERT_TRUE(raw->Delete({}, cf.at("meta"), "record_format").ok());
  });
  { // Before a server opens it, an auditor is told why it cannot check it.
    auto ro = store::open_secondary(dir);
    ASSERT_TRUE(ro);
    EXPECT_NE((*ro)->verify().reason.find("older version's form"), std::string::npos);
  }
  auto db = store::open(dir);
  ASSERT_TRUE(db);
  auto v = (*db)->verify();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.reason, "the retention checkpoint's signature is invalid");
  // Its content is read as before, and compaction does not sign over it.
  auto state = (*db)->replay();
  ASSERT_TRUE(state);
  EXPECT_EQ((*state)["a"].state, sandbox_state::running);
  ASSERT_TRUE((*db)->append({lifecycle(event_type::paused, "c", 6000)}));
  auto compacted = (*db)->compact(7000);
  ASSERT_FALSE(compacted);
  EXPECT_EQ(compacted.error().status, 409);
  EXPECT_FALSE((*db)->verify().ok);
}
