// DNS names as clients write them in egress settings (allowOut, rules).
#pragma once

#include <string>

namespace sandboxd {

/// A host name with at least one dot (`example.com`, any case), labels of
/// letters, digits and inner hyphens, not ending in an all-digit label.
bool is_domain(const std::string& text);
/// `*.` followed by a domain.
bool is_wildcard_domain(const std::string& text);

} // namespace sandboxd
