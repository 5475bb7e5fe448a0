#include <gtest/gtest.h>

#include "core/volume.hpp"
#include "tests/unit/stored_copy.hpp"

namespace sandboxd {
namespace {

nlohmann::json mounts(nlohmann::json list) { return {{"volumeMounts", std::move(list)}}; }

TEST(Volume, IdsAndNames) {
  auto id = new_volume_id();
  EXPECT_TRUE(valid_volume_id(id)) << id;
  EXPECT_NE(id, new_volume_id());
  for (auto bad : {"", "vol-", "vol-0123456789ABCDEF0123", "vol-0123456789abcdef012",
                   "vol-../../../etc/passwd", "xol-0123456789abcdef0123"})
    EXPECT_FALSE(valid_volume_id(bad)) << bad;
  for (std::string good : std::vector<std::string>{"a", "data", "my_vol-2", "A1", std::string(63, 'x')})
    EXPECT_TRUE(valid_volume_name(good)) << good;
  for (std::string bad : std::vector<std::string>{"", "-a", "a/b", "a b", "..", "é", std::string(64, 'x')})
    EXPECT_FALSE(valid_volume_name(bad)) << bad;
}

TEST(Volume, MountsParse) {
  auto none = parse_volume_mounts(nlohmann::json::object());
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  auto got = parse_volume_mounts(mounts({{{"name", "a"}, {"path", "/mnt/a/"}},
                                         {{"name", "b"}, {"path", "/home/user/b"}}}));
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].path, "/mnt/a"); // trailing slash dropped
  EXPECT_EQ((*got)[1].name, "b");
}

TEST(Volume, MountsRefused) {
  for (auto path : {"", "rel", "/", "//", "/a//b", "/a/./b", "/a/..", "/proc", "/proc/x",
                    "/sys/fs", "/dev/shm", "/etc", "/usr/lib", "/bin", "/lib64", "/.sandboxd",
                    "/run/sandboxd/x", "/boot"}) {
    auto r = parse_volume_mounts(mounts({{{"name", "a"}, {"path", path}}}));
    EXPECT_FALSE(r) << path;
    if (!r) {
      EXPECT_EQ(r.error().status, 400);
    }
  }
  EXPECT_FALSE(parse_volume_mounts(mounts({{{"name", "a"}, {"path", std::string("/a\0b", 4)}}})));
  EXPECT_FALSE(parse_volume_mounts(mounts({{{"name", "a"}, {"path", "/" + std::string(300, 'x')}}})));
  EXPECT_FALSE(parse_volume_mounts(mounts({{{"name", "a/../b"}, {"path", "/a"}}})));
  EXPECT_FALSE(parse_volume_mounts(mounts({{{"name", "a"}, {"path", 7}}})));
  EXPECT_FALSE(parse_volume_mounts(mounts("x")));
  EXPECT_FALSE(parse_volume_mounts(mounts({{{"name", "a"}, {"path", "/a"}},
                                           {{"name", "b"}, {"path", "/a/b"}}})));
  EXPECT_FALSE(parse_volume_mounts(mounts({{{"name", "a"}, {"path", "/a"}},
                                           {{"name", "b"}, {"path", "/a"}}})));
  // Not a prefix of another's path by characters only.
  EXPECT_TRUE(parse_volume_mounts(mounts({{{"name", "a"}, {"path", "/a"}},
                                          {{"name", "b"}, {"path", "/ab"}}})));
  auto many = nlohmann::json::array();
  for (int i = 0; i < 9; ++i)
    many.push_back({{"name", "a"}, {"path", "/m" + std::to_string(i)}});
  EXPECT_FALSE(parse_volume_mounts(mounts(many)));
}

TEST(Volume, TokenIsPerVolumeAndOrg) {
  volume v{"vol-0123456789abcdef0123", "org", "data", 1, 64};
  auto t = volume_token("secret", v);
  EXPECT_TRUE(volume_token_matches("secret", v, t));
  EXPECT_FALSE(volume_token_matches("other", v, t));
  auto w = v;
  w.org_id = "org2";
  EXPECT_FALSE(volume_token_matches("secret", w, t));
  w = v;
  w.id = "vol-0123456789abcdef0124";
  EXPECT_FALSE(volume_token_matches("secret", w, t));
  EXPECT_FALSE(volume_token_matches("secret", v, ""));
  EXPECT_EQ(to_json(v), (nlohmann::json{{"volumeID", v.id}, {"name", "data"}}));
  EXPECT_EQ(to_json_with_token(v, "secret")["token"], t);
}

TEST(Volume, RecordsRoundTrip) {
  volume v{"vol-0123456789abcdef0123", "org", "data", 1700000000000, 64};
  auto back = stored_copy(v);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->id, v.id);
  EXPECT_EQ(back->org_id, v.org_id);
  EXPECT_EQ(back->created_ms, v.created_ms);
  EXPECT_EQ(back->size_mb, 64);
  EXPECT_FALSE(decode_record<volume>("{"));
  auto bad = v;
  bad.id = "../x";
  EXPECT_FALSE(stored_copy(bad));
  std::vector<volume_mount> ms{{"a", "/mnt/a", v.id, 64}};
  auto m = decode_mounts(encode_mounts(ms));
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].volume_id, v.id);
  EXPECT_EQ(m[0].size_mb, 64);
  EXPECT_TRUE(decode_mounts("not json").empty());
  EXPECT_EQ(mounts_json(ms), nlohmann::json::parse(R"([{"name":"a","path":"/mnt/a"}])"));
}

} // namespace
} // namespace sandboxd
