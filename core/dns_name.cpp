#include "core/dns_name.hpp"

namespace sandboxd {

namespace {

bool is_label(const std::string& l) {
  if (l.empty() || l.size() > 63 || l.front() == '-' || l.back() == '-')
    return false;
  for (char c : l)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
          || c == '-'))
      return false;
  return true;
}

} // namespace

bool is_domain(const std::string& text) {
  if (text.empty() || text.size() > 253)
    return false;
  size_t labels = 0, start = 0;
  std::string last;
  for (;;) {
    auto dot = text.find('.', start);
    last = text.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!is_label(last))
      return false;
    ++labels;
    if (dot == std::string::npos)
      break;
    start = dot + 1;
  }
  return labels >= 2 && last.find_first_not_of("0123456789") != std::string::npos;
}

bool is_wildcard_domain(const std::string& text) {
  return text.size() > 2 && text.compare(0, 2, "*.") == 0 && is_domain(text.substr(2));
}

} // namespace sandboxd
