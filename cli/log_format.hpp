// --log-format text|json: how the server's log lines look. json: one object
// per line, {ts, level, msg} (and `logger` when not the default), for
// journald/Loki/etc.; bytes that are not UTF-8 become U+FFFD.
#pragma once

#include <string>

#include "core/result.hpp"

namespace sandboxd::cli {

status set_log_format(const std::string& format);

} // namespace sandboxd::cli
