// Logging set-up in one place: every binary calls SetupLogging() once from main().
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace yard {

// Configures spdlog's default logger on stderr. `level` is one of trace, debug, info, warn,
// error, critical, off. `json` switches to one JSON object per line. `name` tags each line.
Status SetupLogging(std::string_view name, std::string_view level, bool json);

// Checks a level name without touching the logger (for flag validation).
bool IsValidLogLevel(std::string_view level);

}  // namespace yard
