// Points in wall-clock time as people write them, for flags, config and query parameters.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace yard {

// A point in wall-clock time, as microseconds since the Unix epoch: Unix seconds ("1764064800",
// "1764064800.25") or ISO-8601 with a zone ("2026-11-25T10:00:00Z", "2026-11-25T10:00Z",
// "2026-11-25T11:00:00.5+01:00"). kInvalidArgument otherwise, naming the accepted forms.
StatusOr<int64_t> ParseWallTime(std::string_view text);

}  // namespace yard
