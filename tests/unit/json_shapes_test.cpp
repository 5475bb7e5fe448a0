#include <gtest/gtest.h>

#include "core/crypto.hpp"
#include "http/e2b_json.hpp"

using namespace sandboxd;

TEST(json_shapes, sandbox_has_every_e2b_field) {
  sandbox_record rec;
  rec.id = "abcdefghij0123456789";
  rec.template_id = "base";
  rec.alias = "base";
  rec.metadata = {{"k", "v"}};
  rec.cpu_count = 2;
  rec.memory_mb = 512;
  rec.disk_size_mb = 10240;
  rec.started_at_ms = 0;
  rec.end_at_ms = 300000;
  rec.state = sandbox_state::paused;
  auto j = http::sandbox_json(rec, {"secret", ""});
  for (auto k : {"sandboxID", "templateID", "alias", "clientID", "envdVersion",
                 "envdAccessToken", "domain", "metadata", "startedAt", "endAt",
                 "status", "state", "cpuCount", "memoryMB", "diskSizeMB"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["envdVersion"], "0.6.13");
  EXPECT_TRUE(j["domain"].is_null());
  EXPECT_EQ(j["state"], "paused");
  EXPECT_EQ(j["endAt"], "1970-01-01T00:05:00.000Z");
  EXPECT_EQ(j["envdAccessToken"], envd_access_token("secret", rec.id));
  EXPECT_NE(envd_access_token("secret", rec.id), envd_access_token("other", rec.id));
  EXPECT_TRUE(j["trafficAccessToken"].is_null());
  EXPECT_FALSE(j["network"].contains("allowPublicTraffic")); // the default is not echoed
}

TEST(json_shapes, ports_domain_and_a_private_sandboxs_traffic_token) {
  sandbox_record rec;
  rec.id = "abcdefghij0123456789";
  network_view n;
  n.public_traffic = false;
  n.mask_request_host = "localhost:${PORT}";
  for (auto& [k, v] : ingress_ext(n))
    rec.ext[k] = v;
  auto j = http::sandbox_json(rec, {"secret", "sandboxes.example.com"});
  EXPECT_EQ(j["domain"], "sandboxes.example.com");
  EXPECT_EQ(j["trafficAccessToken"], traffic_access_token("secret", rec.id));
  EXPECT_NE(traffic_access_token("secret", rec.id), envd_access_token("secret", rec.id));
  EXPECT_EQ(j["network"]["allowPublicTraffic"], false);
  EXPECT_EQ(j["network"]["maskRequestHost"], "localhost:${PORT}");
}

TEST(json_shapes, metric_is_e2b_sandbox_metric) {
  container_sample s;
  s.timestamp_ms = 1700000000123;
  s.cpu_count = 2;
  s.mem_total = 512 << 20;
  auto j = http::metric_json(s);
  for (auto k : {"timestamp", "timestampUnix", "cpuCount", "cpuUsedPct", "memUsed",
                 "memTotal", "memCache", "diskUsed", "diskTotal"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["timestampUnix"], 1700000000);
}
