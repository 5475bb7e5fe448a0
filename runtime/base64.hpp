// Standard base64 (RFC 4648 alphabet, with '=' padding) for binary payloads
// carried inside JSON frames.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sandboxd::base64 {

/// Encodes arbitrary bytes with the standard alphabet and padding.
std::string encode(std::string_view bytes);

/// Decodes padded standard base64. Returns nullopt for anything malformed:
/// length not a multiple of 4, characters outside the alphabet, misplaced
/// padding or non-zero trailing bits.
std::optional<std::string> decode(std::string_view text);

}  // namespace sandboxd::base64
