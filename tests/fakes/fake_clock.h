// FakeClock: a Clock that moves only when told, so heartbeat, lease and retry logic is tested
// without sleeping. Thread-safe.
#pragma once

#include <atomic>

#include "common/clock.h"

namespace yard::testing {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(Micros start = 1'000'000'000)
      : start_(start), mono_(start), wall_(1'700'000'000'000'000) {}
  Micros Now() const override { return mono_.load(); }
  Micros WallNow() const override { return wall_.load() + (mono_.load() - start_); }
  void Advance(Micros d) { mono_ += d; }

 private:
  const Micros start_;
  std::atomic<Micros> mono_;
  std::atomic<Micros> wall_;
};

}  // namespace yard::testing
