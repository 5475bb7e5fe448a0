#include <gtest/gtest.h>

#include "http/body.hpp"

using namespace sandboxd;
using namespace sandboxd::http;

TEST(body, rejects_non_objects_with_a_reason) {
  EXPECT_EQ(parse_object("not json").error().message, "request body is not valid JSON");
  EXPECT_EQ(parse_object("[1]").error().status, 400);
  EXPECT_FALSE(parse_object(""));
  EXPECT_TRUE(parse_object("", true));
  EXPECT_TRUE(parse_object(" {\"a\":1} "));
}

TEST(body, fields_are_typed_and_bounded) {
  auto j = *parse_object(R"({"s":"x","n":5,"neg":-1,"f":1.5,"m":{"a":"b"},"bad":{"a":1}})");
  EXPECT_EQ(*string_field(j, "s"), "x");
  EXPECT_EQ(string_field(j, "n").error().message, "n must be a string");
  EXPECT_EQ(string_field(j, "missing").error().message, "missing is required");
  EXPECT_EQ(*string_field(j, "missing", std::string{"d"}), "d");
  EXPECT_EQ(*int_field(j, "n", std::nullopt, 0, 10), 5);
  EXPECT_EQ(int_field(j, "neg", 1, 0, 10).error().message, "neg must be between 0 and 10");
  EXPECT_EQ(int_field(j, "f", 1, 0, 10).error().message, "f must be an integer");
  EXPECT_EQ(*int_field(j, "missing", 7, 0, 10), 7);
  EXPECT_EQ(string_map_field(j, "m")->at("a"), "b");
  EXPECT_EQ(string_map_field(j, "bad").error().message, "bad.a must be a string");
  EXPECT_TRUE(string_map_field(j, "missing")->empty());
}

TEST(body, int_params) {
  EXPECT_EQ(*int_param(std::nullopt, "limit", 10, 1, 100), 10);
  EXPECT_EQ(*int_param(std::string{"5"}, "limit", 10, 1, 100), 5);
  EXPECT_FALSE(int_param(std::string{"5x"}, "limit", 10, 1, 100));
  EXPECT_FALSE(int_param(std::string{"0"}, "limit", 10, 1, 100));
}

TEST(body, env_names_must_fit_a_process_environment) {
  auto j = *parse_object(R"({"ok":{"A":"1"},"eq":{"A=B":"1"},"empty":{"":"1"},"num":{"A":1}})");
  EXPECT_EQ(env_field(j, "ok")->at("A"), "1");
  EXPECT_EQ(env_field(j, "eq").error().message, "eq has an invalid name: 'A=B'");
  EXPECT_EQ(env_field(j, "empty").error().message, "empty has an invalid name: ''");
  EXPECT_EQ(env_field(j, "num").error().message, "num.A must be a string");
  json nul = {{"env", {{std::string("A\0B", 3), "1"}}}};
  EXPECT_FALSE(env_field(nul, "env"));
}
