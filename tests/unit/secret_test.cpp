#include <gtest/gtest.h>

#include "core/crypto.hpp"
#include "core/secret.hpp"
#include "tests/unit/stored_copy.hpp"

namespace sandboxd {
namespace {

secret_record a_secret() {
  secret_record s;
  s.id = "sec_0123456789abcdef0123";
  s.org_id = "org";
  s.name = "api-key";
  s.current_version = 1;
  return s;
}

TEST(Secret, SealedValuesOpenOnlyForTheirRecord) {
  auto key = secrets_key("install secret");
  EXPECT_EQ(key.size(), 32u);
  EXPECT_NE(key, secrets_key("another install"));
  auto s = a_secret();
  s.versions.push_back(seal_secret(key, s, 1, "the value", 5));
  EXPECT_EQ(s.versions[0].sealed.find("the value"), std::string::npos);
  EXPECT_EQ(open_secret(key, s), "the value");
  EXPECT_FALSE(open_secret(secrets_key("another install"), s));
  auto moved = s;
  moved.org_id = "org2"; // sealed bytes copied onto another org's record
  EXPECT_FALSE(open_secret(key, moved));
  moved = s;
  moved.id = "sec_0123456789abcdef0124";
  EXPECT_FALSE(open_secret(key, moved));
  auto flipped = s;
  flipped.versions[0].sealed[14] ^= 1;
  EXPECT_FALSE(open_secret(key, flipped));
  auto cut = s;
  cut.versions[0].sealed.pop_back();
  EXPECT_FALSE(open_secret(key, cut));
  // A version relabelled as another does not open either.
  auto relabelled = s;
  relabelled.versions[0].version = 2;
  relabelled.current_version = 2;
  EXPECT_FALSE(open_secret(key, relabelled));
  // Two seals of one value differ (random nonces).
  EXPECT_NE(seal_secret(key, s, 1, "v", 0).sealed, seal_secret(key, s, 1, "v", 0).sealed);
}

TEST(Secret, RecordsRoundTripWithoutTheValue) {
  auto key = secrets_key("k");
  auto s = a_secret();
  s.metadata = {{"team", "ml"}};
  s.versions.push_back(seal_secret(key, s, 1, "plain", 7));
  auto bytes = encode_record(s);
  ASSERT_TRUE(bytes);
  EXPECT_EQ(bytes->find("plain"), std::string::npos);
  auto back = decode_record<secret_record>(*bytes);
  ASSERT_TRUE(back);
  EXPECT_EQ(open_secret(key, *back), "plain");
  EXPECT_EQ(back->metadata, s.metadata);
  auto j = to_json(*back);
  EXPECT_EQ(j.dump().find("plain"), std::string::npos);
  EXPECT_FALSE(j.contains("value"));
  EXPECT_FALSE(decode_record<secret_record>("{}"));
  auto bad = s;
  bad.id = "sec_x";
  EXPECT_FALSE(stored_copy(bad));
}

TEST(Secret, NamesIdsMetadataValues) {
  EXPECT_EQ(*canonical_secret_name("OpenAI_Key.v2"), "openai_key.v2");
  for (auto bad : {"", "sec_x", "SEC_x", "a b", "${x}", "-a", ".a", "a/b", "é"})
    EXPECT_FALSE(canonical_secret_name(bad)) << bad;
  EXPECT_FALSE(canonical_secret_name(std::string(129, 'a')));
  EXPECT_TRUE(valid_secret_id(new_secret_id()));
  EXPECT_FALSE(valid_secret_id("sec_../../x"));
  EXPECT_TRUE(parse_secret_metadata(nlohmann::json::object())->empty());
  EXPECT_FALSE(parse_secret_metadata({{"metadata", {{"k", 1}}}}));
  EXPECT_FALSE(parse_secret_metadata({{"metadata", {{std::string(129, 'k'), "v"}}}}));
  nlohmann::json big = nlohmann::json::object();
  for (int i = 0; i < 9; ++i)
    big[std::to_string(i)] = std::string(1000, 'v');
  EXPECT_FALSE(parse_secret_metadata({{"metadata", big}})); // 9,009 bytes
  EXPECT_FALSE(parse_secret_value({{"value", ""}}));
  EXPECT_FALSE(parse_secret_value({{"value", std::string(65537, 'x')}}));
  EXPECT_EQ(*parse_secret_value({{"value", "x"}}), "x");
}

} // namespace
} // namespace sandboxd
