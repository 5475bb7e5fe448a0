// The web console's files (http/console/, and Debian's Chart.js), built into
// the binary as they are: the console needs nothing at run time but the
// server, and no CDN.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace sandboxd::http {

/// By the path they are served at ("/", "/console/console.js", ...).
const std::map<std::string, std::string_view>& console_files();

} // namespace sandboxd::http
