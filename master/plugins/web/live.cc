#include "master/plugins/web/live.h"

#include <algorithm>
#include <string_view>
#include <vector>

namespace yard::web {

double RatePerSecond(uint64_t before, uint64_t after, Micros elapsed) {
  if (after < before || elapsed <= 0) return 0;
  return static_cast<double>(after - before) * 1e6 / static_cast<double>(elapsed);
}

uint64_t CounterValue(const Counters& c, const std::string& name) {
  auto it = c.find(name);
  return it == c.end() ? 0 : it->second;
}

protocol::Json LatencyBetween(const Counters& before, const Counters& after) {
  constexpr std::string_view kPrefix = "task_latency_us.le.";
  // (bound_us, tasks within it) for this interval, increasing bounds.
  std::vector<std::pair<double, uint64_t>> buckets;
  for (auto it = after.lower_bound(std::string(kPrefix)); it != after.end(); ++it) {
    const std::string& name = it->first;
    if (!std::string_view(name).starts_with(kPrefix)) break;
    const std::string bound = name.substr(kPrefix.size());
    if (bound == "inf") continue;
    const uint64_t was = CounterValue(before, name);
    buckets.emplace_back(std::stod(bound), it->second >= was ? it->second - was : 0);
  }
  std::sort(buckets.begin(), buckets.end());
  const uint64_t count_after = CounterValue(after, "task_latency_us.count");
  const uint64_t count_before = CounterValue(before, "task_latency_us.count");
  const uint64_t count = count_after >= count_before ? count_after - count_before : 0;
  protocol::Json out = {{"count", count}};
  for (auto [name, q] : {std::pair{"p50", 0.5}, std::pair{"p90", 0.9}, std::pair{"p99", 0.99}}) {
    if (count == 0 || buckets.empty()) {
      out[name] = nullptr;
      continue;
    }
    const double rank = q * static_cast<double>(count);
    double lower = 0;
    uint64_t below = 0;
    double value = buckets.back().first;  // past the last bound: report the last bound
    for (const auto& [bound, cumulative] : buckets) {
      if (static_cast<double>(cumulative) >= rank) {
        const uint64_t in_bucket = cumulative - below;
        const double frac =
            in_bucket == 0 ? 1.0 : (rank - static_cast<double>(below)) / double(in_bucket);
        value = lower + (bound - lower) * frac;
        break;
      }
      lower = bound;
      below = cumulative;
    }
    out[name] = value / 1000.0;
  }
  return out;
}

const char* WorkerHealth(uint32_t last_seen_ms, Micros heartbeat) {
  const auto seen = Micros{last_seen_ms} * kMillis;
  if (seen <= 2 * heartbeat) return "ok";
  if (seen <= 4 * heartbeat) return "late";
  return "silent";
}

}  // namespace yard::web
