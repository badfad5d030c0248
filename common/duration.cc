#include "common/duration.h"

#include <charconv>
#include <string>

namespace yard {

StatusOr<Micros> ParseDuration(std::string_view text) {
  const std::string original(text);
  auto bad = [&] {
    return InvalidArgument("'" + original +
                           "' is not a duration (examples: 250ms, 30s, 5m, 1h; a bare number "
                           "means seconds)");
  };
  if (text.empty()) return bad();
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) return bad();
  const std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
  Micros scale;
  if (unit.empty() || unit == "s") {
    scale = kSeconds;
  } else if (unit == "ms") {
    scale = kMillis;
  } else if (unit == "us") {
    scale = 1;
  } else if (unit == "m") {
    scale = 60 * kSeconds;
  } else if (unit == "h") {
    scale = 3600 * kSeconds;
  } else if (unit == "d") {
    scale = 86400 * kSeconds;
  } else {
    return bad();
  }
  // 10 years is far beyond any sensible timeout and far below overflow.
  constexpr uint64_t kMaxMicros = 10ull * 365 * 86400 * 1000000;
  if (value > kMaxMicros / static_cast<uint64_t>(scale)) {
    return InvalidArgument("'" + original + "' is too long a duration");
  }
  return static_cast<Micros>(value) * scale;
}

}  // namespace yard
