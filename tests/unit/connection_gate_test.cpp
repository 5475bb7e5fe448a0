#include <gtest/gtest.h>

#include "http/connection_gate.hpp"

using namespace sandboxd::http;

using verdict = connection_gate::verdict;

TEST(ConnectionGate, CapsEachClientAndTheTotal) {
  auto gate = std::make_shared<connection_gate>(connection_limits{5, 3, 2});
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(gate->admit("10.0.0.1"), verdict::admit);
  EXPECT_EQ(gate->admit("10.0.0.1"), verdict::explain); // its own limit
  EXPECT_EQ(gate->admit("10.0.0.2"), verdict::admit);
  EXPECT_EQ(gate->admit("10.0.0.2"), verdict::admit);
  EXPECT_EQ(gate->admit("10.0.0.3"), verdict::explain); // the total
  // Two being told why: the next refusal hangs up at once.
  EXPECT_EQ(gate->admit("10.0.0.3"), verdict::hang_up);
  gate->release("10.0.0.3", verdict::explain);
  EXPECT_EQ(gate->admit("10.0.0.3"), verdict::explain);
  EXPECT_EQ(gate->open(), 5u);
  gate->release("10.0.0.1");
  EXPECT_EQ(gate->admit("10.0.0.3"), verdict::admit);
  gate->release("10.0.0.9"); // never admitted: nothing changes
  EXPECT_EQ(gate->open(), 5u);
}

TEST(ConnectionGate, ATicketReleasesOnce) {
  auto gate = std::make_shared<connection_gate>(connection_limits{2, 2, 2});
  ASSERT_EQ(gate->admit("a"), verdict::admit);
  {
    connection_ticket t{gate, "a"};
    t.release();
    t.release();
    EXPECT_EQ(gate->open(), 0u);
  }
  EXPECT_EQ(gate->open(), 0u); // the destructor does not release again
  ASSERT_EQ(gate->admit("a"), verdict::admit);
  { connection_ticket t{gate, "a"}; }
  EXPECT_EQ(gate->open(), 0u);
}

TEST(ConnectionGate, AnIpv6ClientIsItsSlash64) {
  EXPECT_EQ(client_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  EXPECT_EQ(client_key("2001:db8:1:2:bbbb::7"), "2001:db8:1:2::/64");
  EXPECT_EQ(client_key("127.0.0.1"), "127.0.0.1");
  // IPv4 clients of a dual-stack listener each keep their own key.
  EXPECT_EQ(client_key("::ffff:192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(client_key("::ffff:192.0.2.8"), "192.0.2.8");
}

TEST(ConnectionGate, LimitsFitTheOpenFilesLimit) {
  bool lowered = true;
  auto l = fit_connection_limits({4096, 2048, 256}, 1u << 20, 200, &lowered);
  EXPECT_FALSE(lowered);
  EXPECT_EQ(l.total, 4096u);
  // 20,000 files, 1,000 sandboxes: (20000 - 1024 - 8000) / 2 - 256 per listener.
  l = fit_connection_limits({8192, 8192, 256}, 20000, 1000, &lowered);
  EXPECT_TRUE(lowered);
  EXPECT_EQ(l.total, 5232u);
  EXPECT_EQ(l.per_client, 5232u);
  l = fit_connection_limits({4096, 2048, 256}, 1024, 200, &lowered);
  EXPECT_EQ(l.total, 16u); // a floor, however small the limit
}
