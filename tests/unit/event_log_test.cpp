// actors/event_log on a real actor system and a real RocksDB: concurrent
// appends (group commit) are all acknowledged, each with its own sequence
// number, in one unbroken hash chain, and what was acknowledged is there
// after the database is reopened.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <thread>

#include <caf/all.hpp>

#include "actors/event_log.hpp"
#include "actors/executor.hpp"
#include "core/ids.hpp"
#include "storage/store.hpp"

using namespace sandboxd;
namespace fs = std::filesystem;

namespace {

// A directory for a test's store, removed after it.
struct temp_dir {
  std::string path = (fs::temp_directory_path() / ("sandboxd-log-" + random_hex(6))).string();
  ~temp_dir() { fs::remove_all(path); }
};

} // namespace

TEST(EventLog, ConcurrentAppendsShareWritesAndKeepTheChain) {
  temp_dir cleanup;
  auto dir = cleanup.path;
  constexpr int writers = 16, per_writer = 40;
  std::vector<std::vector<uint64_t>> seqs(writers);
  {
    auto opened = store::open(dir);
    ASSERT_TRUE(opened);
    std::shared_ptr<store> db = std::move(*opened);
    caf::actor_system_config cfg;
    caf::actor_system sys{cfg};
    blocking_executors executors{sys};
    auto log = spawn_event_log(sys, db, webhook_dispatcher_actor{}, {std::chrono::milliseconds{0}, {}});
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w)
      threads.emplace_back([&, w] {
        caf::scoped_actor self{sys};
        for (int i = 0; i < per_writer; ++i) {
          event e;
          e.id = new_uuid();
          e.sandbox_id = "s" + std::to_string(w);
          e.team_id = "o";
          e.timestamp_ms = i;
          self->request(log, caf::infinite, atom::append::value, std::move(e))
            .receive([&](const event& got) { seqs[w].push_back(got.seq); },
                     [&](const caf::error&) {});
        }
      });
    for (auto& t : threads)
      t.join();
    caf::anon_send_exit(log, caf::exit_reason::user_shutdown);
  }
  std::set<uint64_t> all;
  for (auto& s : seqs) {
    ASSERT_EQ(s.size(), size_t(per_writer));
    // One writer's events are in the order it sent them.
    EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
    all.insert(s.begin(), s.end());
  }
  EXPECT_EQ(all.size(), size_t(writers * per_writer));
  EXPECT_EQ(*all.begin(), 1u);
  EXPECT_EQ(*all.rbegin(), uint64_t(writers * per_writer));
  auto reopened = store::open(dir);
  ASSERT_TRUE(reopened);
  EXPECT_EQ((*reopened)->last_seq(), uint64_t(writers * per_writer));
  auto report = (*reopened)->verify();
  EXPECT_TRUE(report.ok) << report.reason;
  EXPECT_EQ(report.checked, uint64_t(writers * per_writer));
}

// A long poll's wait: at once when the log is past `after`, on the next
// append otherwise, and with the head unchanged when its time runs out.
TEST(EventLog, WaitAnswersOnTheNextAppendOrWhenItsTimeRunsOut) {
  temp_dir cleanup;
  auto dir = cleanup.path;
  auto opened = store::open(dir);
  ASSERT_TRUE(opened);
  std::shared_ptr<store> db = std::move(*opened);
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  blocking_executors executors{sys};
  auto log = spawn_event_log(sys, db, webhook_dispatcher_actor{}, {std::chrono::milliseconds{0}, {}});
  caf::scoped_actor self{sys};
  // Each thread appends with an actor of its own (a scoped actor is one
  // thread's).
  auto append = [&] {
    caf::scoped_actor appender{sys};
    event e;
    e.id = new_uuid();
    e.sandbox_id = "s";
    e.team_id = "o";
    uint64_t seq = 0;
    appender->request(log, caf::infinite, atom::append::value, std::move(e))
      .receive([&](const event& got) { seq = got.seq; }, [&](const caf::error&) {});
    return seq;
  };
  auto first = append();
  auto wait = [&](uint64_t after, uint32_t ms) {
    uint64_t newest = 0;
    self->request(log, caf::infinite, atom::wait::value, after, ms)
      .receive([&](uint64_t n) { newest = n; }, [&](const caf::error&) {});
    return newest;
  };
  EXPECT_EQ(wait(first - 1, 10000), first); // past already: at once
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(wait(first, 200), first); // nothing new: after its time
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(190));
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    append();
  });
  started = std::chrono::steady_clock::now();
  EXPECT_EQ(wait(first, 10000), first + 1);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  later.join();
  caf::anon_send_exit(log, caf::exit_reason::user_shutdown);
}
