// Identifiers and secrets, all drawn from the kernel's CSPRNG.
#pragma once

#include <string>

namespace sandboxd {

/// Random bytes as lowercase hex (2 characters per byte).
std::string random_hex(size_t bytes);

/// RFC 4122 version 4 UUID, lowercase.
std::string new_uuid();

/// A sandbox id: 20 characters of [a-z0-9], like E2B's, usable as hostname.
std::string new_sandbox_id();

/// True for strings new_sandbox_id could have produced (guards path use).
bool is_valid_sandbox_id(const std::string& id);

/// `prefix` + `hex_chars` random lowercase hex (volumes' and secrets' ids).
std::string new_prefixed_id(const std::string& prefix, size_t hex_chars);
/// Exactly what new_prefixed_id(prefix, hex_chars) makes.
bool is_prefixed_id(const std::string& id, const std::string& prefix, size_t hex_chars);

}  // namespace sandboxd
