// Human durations for flags and config: "250ms", "30s", "5m", "1h", "2d". A bare number is
// seconds ("30" == "30s"). Used by every binary so that --timeout means the same everywhere.
#pragma once

#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace yard {

StatusOr<Micros> ParseDuration(std::string_view text);

}  // namespace yard
