// The hash chain: intact logs verify, and any change to a stored event is
// named by `verify` — a flipped byte, a missing event, a truncated tail.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include <rocksdb/db.h>

#include "core/ids.hpp"
#include "storage/store.hpp"
#include "storage/record_codec.hpp"
#include "tests/unit/lifecycle_event.hpp"
#include "tests/unit/raw_db.hpp"

using namespace sandboxd;
namespace fs = std::filesystem;

namespace {

struct chain : ::testing::Test {
  std::string dir = (fs::temp_directory_path() / ("sandboxd-audit-" + random_hex(6))).string();
  std::vector<event> appended;

  void TearDown() override {
    fs::remove_all(dir);
  }

  // Five events, the third carrying a recognisable metadata value.
  void write_log() {
    auto db = store::open(dir);
    ASSERT_TRUE(db);
    for (int i = 0; i < 5; ++i) {
      event e;
      e.id = new_uuid();
      e.type = i == 0 ? event_type::created : event_type::updated;
      e.sandbox_id = "sbx";
      e.team_id = "org";
      e.timestamp_ms = 1000 + i;
      if (i == 2)
        e.metadata = {{"note", "MARKER-VALUE"}};
      auto r = (*db)->append({e});
      ASSERT_TRUE(r);
      appended.push_back(r->front());
    }
  }

  // Opens the raw database (the store closed) and hands `f` the events family.
  template <class F>
  void with_raw_events(F f) {
    with_raw_db(dir, [&](rocksdb::DB* raw, auto& families) {
      f(raw, families.at("events"));
    });
  }

  static std::string key(uint64_t seq) {
    std::string k(8, '\0');
    for (int i = 7; i >= 0; --i, seq >>= 8)
      k[i] = static_cast<char>(seq & 0xff);
    return k;
  }

  store::verify_report verify() {
    auto db = store::open_secondary(dir);
    EXPECT_TRUE(db);
    return (*db)->verify();
  }
};

} // namespace

TEST_F(chain, events_link_to_their_predecessor) {
  write_log();
  EXPECT_EQ(appended[0].prev_hash, "");
  for (size_t i = 1; i < appended.size(); ++i)
    EXPECT_EQ(appended[i].prev_hash, appended[i - 1].hash);
  for (auto& e : appended) {
    EXPECT_EQ(e.hash.size(), 64u);
    EXPECT_EQ(chain_hash(e), e.hash);
  }
  auto r = verify();
  EXPECT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.checked, 5u);
  auto db = store::open_secondary(dir);
  EXPECT_EQ((*db)->head().seq, 5u);
  EXPECT_EQ((*db)->head().hash, appended.back().hash);
}

TEST_F(chain, a_flipped_byte_is_named) {
  write_log();
  with_raw_events([&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf) {
    std::string value;
    ASSERT_TRUE(db->Get({}, cf, key(3), &value).ok());
    auto at = value.find("MARKER-VALUE");
    ASSERT_NE(at, std::string::npos);
    value[at] ^= 0x01; // 'M' → 'L': still decodes, no longer hashes
    ASSERT_TRUE(db->Put({}, cf, key(3), value).ok());
  });
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.broken_seq, 3u);
  EXPECT_EQ(r.broken_id, appended[2].id);
  EXPECT_EQ(r.reason, "its hash does not match its contents");
  EXPECT_EQ(r.checked, 2u);
}

TEST_F(chain, undecodable_bytes_are_named_by_position) {
  write_log();
  with_raw_events([&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf) {
    ASSERT_TRUE(db->Put({}, cf, key(4), "\x02garbage").ok());
  });
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.broken_seq, 4u);
  EXPECT_EQ(r.reason, "the stored bytes do not decode");
}

TEST_F(chain, a_removed_event_breaks_the_chain) {
  write_log();
  with_raw_events([&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf) {
    ASSERT_TRUE(db->Delete({}, cf, key(2)).ok());
  });
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.broken_seq, 3u);
  EXPECT_EQ(r.reason, "events 2..2 are missing");
}

TEST_F(chain, a_truncated_tail_is_noticed) {
  write_log();
  with_raw_events([&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf) {
    ASSERT_TRUE(db->Delete({}, cf, key(5)).ok());
  });
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.reason.find("head"), std::string::npos);
}

TEST_F(chain, a_secondary_reader_works_beside_the_writer) {
  auto writer = store::open(dir);
  ASSERT_TRUE(writer);
  event e;
  e.id = new_uuid();
  e.sandbox_id = "s";
  e.team_id = "o";
  ASSERT_TRUE((*writer)->append({e}));
  auto readers_dirs = [] {
    size_t n = 0;
    for (auto& d : std::filesystem::directory_iterator("/tmp"))
      n += d.path().filename().string().rfind("sandboxd-reader-", 0) == 0;
    return n;
  };
  auto dirs_before = readers_dirs();
  {
    auto reader = store::open_secondary(dir);
    ASSERT_TRUE(reader) << reader.error().message;
    EXPECT_EQ((*reader)->last_seq(), 1u);
    EXPECT_TRUE((*reader)->verify().ok);
    EXPECT_EQ(readers_dirs(), dirs_before + 1);
    // The writer goes on (its WAL only, nothing flushed): a second reader
    // opened now sees the new event and the chain still holds.
    e.id = new_uuid();
    ASSERT_TRUE((*writer)->append({e}));
    auto later = store::open_secondary(dir);
    ASSERT_TRUE(later) << later.error().message;
    EXPECT_EQ((*later)->last_seq(), 2u);
    EXPECT_EQ((*later)->head().hash, (*writer)->head().hash);
    auto report = (*later)->verify();
    EXPECT_TRUE(report.ok) << report.reason;
    EXPECT_EQ(report.checked, 2u);
  }
  EXPECT_EQ(readers_dirs(), dirs_before); // each reader's own directory is gone
  // The writer was not disturbed.
  e.id = new_uuid();
  ASSERT_TRUE((*writer)->append({e}));
  EXPECT_EQ((*writer)->last_seq(), 3u);
}

TEST(event_hash, covers_every_field_but_itself) {
  event e;
  e.id = "x";
  e.seq = 7;
  e.prev_hash = "p";
  auto h = chain_hash(e);
  e.hash = h;
  EXPECT_EQ(chain_hash(e), h); // the hash is not part of what it covers
  auto changed = e;
  changed.seq = 8;
  EXPECT_NE(chain_hash(changed), h);
  changed = e;
  changed.prev_hash = "q";
  EXPECT_NE(chain_hash(changed), h);
  changed = e;
  changed.metadata["k"] = "v";
  EXPECT_NE(chain_hash(changed), h);
  // Stored bytes round-trip with the chain fields; extra bytes are refused.
  auto back = decode_event(encode(e));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->hash, h);
  EXPECT_EQ(back->prev_hash, "p");
  EXPECT_FALSE(decode_event(encode(e) + "x"));
}

TEST_F(chain, replay_hands_ended_sandboxes_on_and_rebuilds_one_by_id) {
  auto db = store::open(dir);
  ASSERT_TRUE(db);
  ASSERT_TRUE((*db)->append({lifecycle(event_type::created, "a", 100),
                             lifecycle(event_type::created, "b", 200)}));
  ASSERT_TRUE((*db)->append({lifecycle(event_type::paused, "a", 300)}));
  ASSERT_TRUE((*db)->append({lifecycle(event_type::killed, "b", 400)}));
  // An event after b's end does not apply, and leaves nothing behind.
  ASSERT_TRUE((*db)->append({lifecycle(event_type::updated, "b", 500)}));
  std::vector<std::string> ended, bad;
  auto replayed = (*db)->replay([&](const std::string& why) { bad.push_back(why); },
                                [&](sandbox_record&& r) { ended.push_back(r.id); });
  ASSERT_TRUE(replayed);
  auto& live = *replayed;
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live["a"].state, sandbox_state::paused);
  EXPECT_EQ(ended, std::vector<std::string>{"b"});
  EXPECT_EQ(bad.size(), 1u);
  // Without the callback, every sandbox stays in the result (audit replay).
  EXPECT_EQ((*db)->replay()->size(), 2u);
  auto b = *(*db)->replay_sandbox("b");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->state, sandbox_state::stopped);
  EXPECT_EQ(b->org_id, "org");
  EXPECT_EQ(b->started_at_ms, 200);
  auto nobody = (*db)->replay_sandbox("nobody");
  ASSERT_TRUE(nobody);
  EXPECT_FALSE(*nobody);
  // One alive at a compaction comes back from the checkpoint's snapshot.
  ASSERT_TRUE((*db)->compact(1000));
  auto a = *(*db)->replay_sandbox("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->state, sandbox_state::paused);
}

TEST_F(chain, compaction_keeps_a_signed_checkpoint_and_the_state) {
  {
    auto db = store::open(dir);
    ASSERT_TRUE(db);
    // Old: "a" created and paused, "b" created and killed. New: "c".
    ASSERT_TRUE((*db)->append({lifecycle(event_type::created, "a", 100)}));
    ASSERT_TRUE((*db)->append({lifecycle(event_type::created, "b", 200)}));
    ASSERT_TRUE((*db)->append({lifecycle(event_type::paused, "a", 300)}));
    ASSERT_TRUE((*db)->append({lifecycle(event_type::killed, "b", 400)}));
    ASSERT_TRUE((*db)->append({lifecycle(event_type::created, "c", 5000)}));
    auto before = *(*db)->replay();
    auto dropped = (*db)->compact(1000);
    ASSERT_TRUE(dropped);
    EXPECT_EQ(*dropped, 4u);
    EXPECT_EQ(*(*db)->compact(1000), 0u); // nothing more to drop
    // The state rebuilt from checkpoint + retained events is the same,
    // but for the stopped sandbox, which retention forgets.
    auto after = *(*db)->replay();
    EXPECT_EQ(after.size(), 2u);
    EXPECT_EQ(after["a"].state, sandbox_state::paused);
    EXPECT_EQ(after["a"].end_at_ms, before["a"].end_at_ms);
    EXPECT_EQ(after["c"].state, sandbox_state::running);
    EXPECT_EQ(after.count("b"), 0u);
    // The chain continues from the checkpoint, and new appends link on.
    auto cp = *(*db)->load_checkpoint();
    ASSERT_TRUE(cp);
    EXPECT_EQ(cp->seq, 4u);
    ASSERT_TRUE((*db)->append({lifecycle(event_type::resumed, "a", 6000)}));
    auto r = (*db)->verify();
    EXPECT_TRUE(r.ok) << r.reason;
    EXPECT_EQ(r.checked, 2u);
    EXPECT_EQ((*(*db)->replay())["a"].state, sandbox_state::running);
    // The newest event is never dropped, however old.
    EXPECT_EQ(*(*db)->compact(1000000), 1u);
    EXPECT_EQ((*db)->last_seq(), 6u);
    EXPECT_TRUE((*db)->verify().ok);
  }
  // A forged checkpoint (its snapshot edited) fails verification.
  with_raw_db(dir, [](rocksdb::DB* raw, auto& families) {
    auto* meta = families.at("meta");
    std::string bytes;
    ASSERT_TRUE(raw->Get({}, meta, "checkpoint", &bytes).ok());
    auto cp = decode_record<store::checkpoint>(bytes);
    ASSERT_TRUE(cp);
    ASSERT_FALSE(cp->sandboxes.empty());
    cp->sandboxes.front().state = sandbox_state::stopped; // the signature kept
    auto forged = encode_record(*cp);
    ASSERT_TRUE(forged);
    ASSERT_TRUE(raw->Put({}, meta, "checkpoint", *forged).ok());
  });
  auto r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.reason, "the retention checkpoint's signature is invalid");
}
