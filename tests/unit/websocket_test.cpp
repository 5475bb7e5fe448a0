// The WebSocket frame reader and writer behind the console's terminal.
#include "http/websocket.hpp"

#include <gtest/gtest.h>

namespace ws = sandboxd::http::websocket;

namespace {

// A client frame: masked, as browsers send them.
std::string client_frame(uint8_t first_byte, const std::string& payload, bool masked = true) {
  std::string out;
  out.push_back(static_cast<char>(first_byte));
  auto n = payload.size();
  uint8_t mask_bit = masked ? 0x80 : 0;
  if (n < 126) {
    out.push_back(static_cast<char>(mask_bit | n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xFF));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8)
      out.push_back(static_cast<char>((static_cast<uint64_t>(n) >> shift) & 0xFF));
  }
  const char mask[4] = {0x12, 0x34, 0x56, 0x78};
  if (masked)
    out.append(mask, 4);
  for (size_t i = 0; i < n; ++i)
    out.push_back(masked ? static_cast<char>(payload[i] ^ mask[i % 4]) : payload[i]);
  return out;
}

} // namespace

TEST(websocket, accept_key_is_the_rfc_example) {
  // RFC 6455 section 1.3.
  EXPECT_EQ(ws::accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_TRUE(ws::valid_client_key("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_FALSE(ws::valid_client_key("c2hvcnQ="));
  EXPECT_FALSE(ws::valid_client_key("not base64!"));
}

TEST(websocket, server_frames_carry_their_length) {
  EXPECT_EQ(ws::frame(ws::opcode::text, "hi"), std::string("\x81\x02hi", 4));
  auto mid = ws::frame(ws::opcode::binary, std::string(300, 'x'));
  EXPECT_EQ(mid.substr(0, 4), std::string("\x82\x7e\x01\x2c", 4));
  EXPECT_EQ(mid.size(), 304u);
  auto big = ws::frame(ws::opcode::binary, std::string(70000, 'x'));
  EXPECT_EQ(static_cast<uint8_t>(big[1]), 127);
  EXPECT_EQ(big.size(), 70010u);
  auto close = ws::close_frame(1009, std::string(500, 'r'));
  EXPECT_EQ(close.size(), 2u + 125u); // a control frame stays within 125 bytes
  EXPECT_EQ(close.substr(2, 2), std::string("\x03\xf1", 2));
}

TEST(websocket, reads_masked_messages_split_anywhere) {
  ws::reader r{1024};
  auto bytes = client_frame(0x82, "keys") + client_frame(0x81, "{\"resize\":{}}")
               + client_frame(0x89, "p");
  std::vector<ws::message> got;
  for (char c : bytes) { // one byte at a time
    auto m = r.feed(std::string_view(&c, 1));
    ASSERT_TRUE(m);
    for (auto& x : *m)
      got.push_back(x);
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].op, ws::opcode::binary);
  EXPECT_EQ(got[0].payload, "keys");
  EXPECT_EQ(got[1].op, ws::opcode::text);
  EXPECT_EQ(got[2].op, ws::opcode::ping);
  EXPECT_EQ(got[2].payload, "p");
}

TEST(websocket, joins_fragments_with_control_frames_between) {
  ws::reader r{1024};
  auto m = r.feed(client_frame(0x02, "ab") + client_frame(0x89, "") + client_frame(0x80, "cd"));
  ASSERT_TRUE(m);
  ASSERT_EQ(m->size(), 2u);
  EXPECT_EQ((*m)[0].op, ws::opcode::ping);
  EXPECT_EQ((*m)[1].op, ws::opcode::binary);
  EXPECT_EQ((*m)[1].payload, "abcd");
}

TEST(websocket, refuses_what_the_rfc_forbids) {
  auto fails_with = [](const std::string& bytes, size_t max = 1024) {
    ws::reader r{max};
    auto m = r.feed(bytes);
    return m ? 0 : m.error().status;
  };
  EXPECT_EQ(fails_with(client_frame(0x82, "x", false)), 1002);                 // unmasked
  EXPECT_EQ(fails_with(client_frame(0xC2, "x")), 1002);                        // RSV1 set
  EXPECT_EQ(fails_with(client_frame(0x83, "x")), 1002);                        // opcode 3
  EXPECT_EQ(fails_with(client_frame(0x80, "x")), 1002);                        // continuation of nothing
  EXPECT_EQ(fails_with(client_frame(0x02, "a") + client_frame(0x82, "b")), 1002); // new message mid-message
  EXPECT_EQ(fails_with(client_frame(0x09, "x")), 1002);                        // fragmented ping
  EXPECT_EQ(fails_with(client_frame(0x89, std::string(126, 'x'))), 1002);      // ping over 125 bytes
  EXPECT_EQ(fails_with(client_frame(0x82, std::string(2000, 'x'))), 1009);     // past the bound
  // Fragments together past the bound.
  EXPECT_EQ(fails_with(client_frame(0x02, std::string(600, 'x')) + client_frame(0x80, std::string(600, 'x'))), 1009);
}

TEST(websocket, a_huge_announced_length_is_refused_before_it_is_buffered) {
  ws::reader r{64 * 1024};
  std::string head = "\x82\xff";
  for (int i = 0; i < 8; ++i)
    head.push_back(static_cast<char>(0x7f));
  auto m = r.feed(head);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().status, 1009);
}

TEST(websocket, lengths_that_would_wrap_are_refused) {
  // A fragment, then a continuation announcing 2^64 - 14 bytes: its length
  // plus what came before wraps to 0 unless compared with care.
  ws::reader r{64 * 1024};
  std::string cont = "\x80\xff";
  uint64_t n = ~uint64_t{0} - 13;
  for (int shift = 56; shift >= 0; shift -= 8)
    cont.push_back(static_cast<char>((n >> shift) & 0xFF));
  auto m = r.feed(client_frame(0x01, std::string(14, 'a')) + cont + "mask");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().status, 1002); // the top bit of a 64-bit length is set
  // With the top bit clear, the size bound catches it.
  ws::reader r2{64 * 1024};
  std::string big = "\x82\xff";
  uint64_t huge = (uint64_t{1} << 63) - 4;
  for (int shift = 56; shift >= 0; shift -= 8)
    big.push_back(static_cast<char>((huge >> shift) & 0xFF));
  auto m2 = r2.feed(big);
  ASSERT_FALSE(m2);
  EXPECT_EQ(m2.error().status, 1009);
}
