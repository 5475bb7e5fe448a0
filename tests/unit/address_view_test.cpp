// runtime/address_view: the host's IPv4 addresses kept from notifications,
// checked in a network namespace the test makes (a thread of its own enters
// it; the `ip` processes it starts inherit it): changes made by another
// process are seen after sync(), and a burst that overflows the queue still
// ends in the right answer.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <sched.h>

#include <string>
#include <thread>
#include <vector>

#include "runtime/address_view.hpp"
#include "runtime/command.hpp"

using namespace sandboxd;

namespace {

uint32_t ip(const char* text) {
  in_addr a{};
  inet_pton(AF_INET, text, &a);
  return ntohl(a.s_addr);
}

// Runs `body` on a thread inside a fresh network namespace (gone with it).
void in_scratch_netns(const std::function<void()>& body) {
  std::thread t([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      ADD_FAILURE() << "unshare(CLONE_NEWNET): " << strerror(errno);
      return;
    }
    body();
  });
  t.join();
}

void run(const std::vector<std::string>& argv) {
  auto out = run_command(argv, std::chrono::seconds(30));
  ASSERT_TRUE(out) << out.error().message;
  ASSERT_EQ(out->exit_code, 0) << argv[0] << " " << argv[1] << ": " << out->output;
}

} // namespace

TEST(address_view, SeesAddressesAnotherProcessAdds) {
  in_scratch_netns([] {
    address_view view;
    ASSERT_TRUE(view.sync());
    EXPECT_FALSE(view.any_in(ip("10.250.0.0"), 4));
    run({"ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"});
    run({"ip", "addr", "add", "10.250.0.1/30", "dev", "d0"});
    ASSERT_TRUE(view.sync());
    EXPECT_TRUE(view.any_in(ip("10.250.0.0"), 4));
    EXPECT_FALSE(view.any_in(ip("10.250.0.4"), 4));
    EXPECT_FALSE(view.any_in(ip("10.249.255.252"), 4));
    auto index = static_cast<int>(::if_nametoindex("d0"));
    ASSERT_GT(index, 0);
    ASSERT_TRUE(view.address_on(index));
    EXPECT_EQ(*view.address_on(index), ip("10.250.0.1"));
    run({"ip", "addr", "del", "10.250.0.1/30", "dev", "d0"});
    ASSERT_TRUE(view.sync());
    EXPECT_FALSE(view.any_in(ip("10.250.0.0"), 4));
    EXPECT_FALSE(view.address_on(index));
  });
}

TEST(address_view, ABurstThatOverflowsTheQueueStillEndsRight) {
  in_scratch_netns([] {
    address_view view{4096}; // a few notifications' room
    run({"ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"});
    ASSERT_TRUE(view.sync());
    std::string script;
    for (int i = 0; i < 200; ++i)
      script += "addr add 10.251.0." + std::to_string(i) + "/32 dev d0\n";
    // ip -batch reads a file: give it one.
    char path[] = "/tmp/sandboxd-address-view-XXXXXX";
    int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, script.data(), script.size()), static_cast<ssize_t>(script.size()));
    ::close(fd);
    run({"ip", "-batch", path});
    ::unlink(path);
    ASSERT_TRUE(view.sync());
    for (int i = 0; i < 200; ++i)
      EXPECT_TRUE(view.any_in(ip(("10.251.0." + std::to_string(i)).c_str()), 1)) << i;
    EXPECT_FALSE(view.any_in(ip("10.251.0.200"), 56));
    run({"ip", "link", "del", "d0"});
    ASSERT_TRUE(view.sync());
    EXPECT_FALSE(view.any_in(ip("10.251.0.0"), 256));
  });
}
