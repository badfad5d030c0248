// Metrics: named counters and gauges that several threads update (plugins) and the master
// reports with its own in STATS (and, later, /metrics). Thread-safe; cheap enough for
// per-message use at tens of thousands of messages a second.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace yard {

class Metrics {
 public:
  // Adds `n` to a counter (created at 0).
  void Add(std::string_view name, uint64_t n = 1) {
    std::lock_guard lock(mu_);
    Slot(name) += n;
  }
  // Sets a gauge to `value`.
  void Set(std::string_view name, uint64_t value) {
    std::lock_guard lock(mu_);
    Slot(name) = value;
  }
  uint64_t Get(std::string_view name) const {
    std::lock_guard lock(mu_);
    auto it = values_.find(name);
    return it == values_.end() ? 0 : it->second;
  }
  // Copies every value into `out` (existing names are overwritten).
  void SnapshotInto(std::map<std::string, uint64_t>* out) const {
    std::lock_guard lock(mu_);
    for (const auto& [k, v] : values_) (*out)[k] = v;
  }

 private:
  uint64_t& Slot(std::string_view name) {
    auto it = values_.find(name);
    if (it == values_.end()) it = values_.emplace(std::string(name), 0).first;
    return it->second;
  }
  mutable std::mutex mu_;
  std::map<std::string, uint64_t, std::less<>> values_;
};

}  // namespace yard
