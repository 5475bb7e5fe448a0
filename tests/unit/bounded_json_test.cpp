#include <gtest/gtest.h>

#include <string>

#include "core/bounded_json.hpp"
#include "http/body.hpp"
#include "http/connect_protocol.hpp"

using namespace sandboxd;

namespace {

std::string nested(int depth, char open = '[', char close = ']') {
  return std::string(static_cast<size_t>(depth), open) + std::string(static_cast<size_t>(depth), close);
}

} // namespace

TEST(bounded_json, nesting_counts_arrays_and_objects_but_not_strings) {
  EXPECT_EQ(json_nesting("1", 64), 0);
  EXPECT_EQ(json_nesting(R"({"a":[{"b":1}]})", 64), 3);
  EXPECT_EQ(json_nesting(R"({"a":"[[[[{{{{"})", 64), 1);
  EXPECT_EQ(json_nesting(R"({"a":"\"[[[["})", 64), 1); // escaped quote stays in the string
  EXPECT_EQ(json_nesting(nested(65), 64), -1);
  EXPECT_EQ(json_nesting(nested(64), 64), 64);
}

TEST(bounded_json, too_deep_is_400_and_too_large_is_413) {
  auto deep = parse_json_bounded(nested(200000), {1u << 20, 64}, "request body");
  ASSERT_FALSE(deep);
  EXPECT_EQ(deep.error().status, 400);
  EXPECT_EQ(deep.error().message, "request body is nested deeper than 64 levels");
  auto big = parse_json_bounded(std::string(100, ' '), {99, 64}, "request body");
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().status, 413);
  auto bad = parse_json_bounded("{", {}, "request body");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, 400);
  EXPECT_TRUE(parse_json_bounded(nested(64), {}, "x"));
}

TEST(bounded_json, every_client_parser_is_bounded) {
  // REST bodies (every API route's parse_object).
  auto body = http::parse_object(R"({"a":)" + nested(200000) + "}");
  ASSERT_FALSE(body);
  EXPECT_EQ(body.error().status, 400);
  std::string big = R"({"a":")" + std::string(http::max_request_body, 'x') + R"("})";
  auto large = http::parse_object(big);
  ASSERT_FALSE(large);
  EXPECT_EQ(large.error().status, 413);
  EXPECT_TRUE(http::parse_object(R"({"metadata":{"k":"v"},"envVars":{"A":"1"}})"));
  // envd's Connect messages, plain and enveloped.
  auto unary = http::connect::parse_unary_request(nested(200000));
  ASSERT_FALSE(unary);
  EXPECT_EQ(unary.error().status, 400);
  std::string msg = R"({"process":{"cmd":)" + nested(100) + "}}";
  std::string env{'\0', '\0', '\0', '\0', '\0'};
  auto n = static_cast<uint32_t>(msg.size());
  for (int i = 0; i < 4; ++i)
    env[static_cast<size_t>(1 + i)] = static_cast<char>((n >> (24 - 8 * i)) & 0xff);
  auto stream = http::connect::parse_stream_request(env + msg);
  ASSERT_FALSE(stream);
  EXPECT_EQ(stream.error().status, 400);
  EXPECT_TRUE(http::connect::parse_unary_request(R"({"path":"/tmp","depth":1})"));
}
