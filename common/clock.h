// Clock: the one source of time. Heartbeat, lease and retry logic takes times from here (or
// as arguments), so tests drive it with a fake clock and never sleep.
#pragma once

#include <cstdint>

namespace yard {

// Microseconds. Monotonic times are only comparable with each other.
using Micros = int64_t;
constexpr Micros kMillis = 1000;
constexpr Micros kSeconds = 1000 * 1000;

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time, for deadlines and intervals.
  virtual Micros Now() const = 0;
  // Wall-clock time since the Unix epoch, for timestamps shown to people.
  virtual Micros WallNow() const = 0;
};

// The process's real clocks. Thread-safe.
class SystemClock final : public Clock {
 public:
  Micros Now() const override;
  Micros WallNow() const override;
  static SystemClock& Get();
};

}  // namespace yard
