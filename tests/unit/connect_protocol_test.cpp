// envelope_reader: a server stream's messages from bytes as they arrive, in
// any split, bounded in size (the CLI's exec and shell read envd with it).
#include <gtest/gtest.h>

#include "http/connect_protocol.hpp"

using namespace sandboxd::http::connect;

TEST(EnvelopeReader, ReadsMessagesSplitAnywhere) {
  auto bytes = envelope({{"event", {{"start", {{"pid", 42}}}}}})
               + envelope({{"event", {{"data", {{"stdout", "aGkK"}}}}}}) + end_stream();
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    envelope_reader r;
    auto a = r.feed(std::string_view(bytes).substr(0, cut));
    ASSERT_TRUE(a);
    auto b = r.feed(std::string_view(bytes).substr(cut));
    ASSERT_TRUE(b);
    a->insert(a->end(), b->begin(), b->end());
    ASSERT_EQ(a->size(), 3u) << cut;
    EXPECT_EQ((*a)[0].body["event"]["start"]["pid"], 42);
    EXPECT_FALSE((*a)[1].end);
    EXPECT_TRUE((*a)[2].end);
  }
}

TEST(EnvelopeReader, RefusesTooLargeAndMalformedMessages) {
  envelope_reader small(64);
  auto big = small.feed(envelope({{"x", std::string(100, 'a')}}));
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("at most 64"), std::string::npos);
  envelope_reader r;
  std::string bad = std::string("\0\0\0\0\3", 5) + "{x}";
  EXPECT_FALSE(r.feed(bad));
  // A huge length announced is refused before anything is buffered.
  envelope_reader r2;
  EXPECT_FALSE(r2.feed(std::string("\0\xff\xff\xff\xff", 5)));
}
