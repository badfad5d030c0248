// /metrics: the master's counters (core and plugins, as `yard stats` reports them), the
// workers, and the web role's own HTTP counters in the Prometheus text format 0.0.4. A small
// hand-written exposer: Debian packages none.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/protocol/messages.h"

namespace yard::web {

// HTTP requests by route pattern, method and status, and their durations. Thread-safe.
class HttpMetrics {
 public:
  void Record(const std::string& route, const std::string& method, int status, double seconds);
  void RenderInto(std::string* out) const;
  static constexpr std::array<double, 12> kBoundsSeconds = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5};

 private:
  struct Series {
    std::array<uint64_t, kBoundsSeconds.size()> buckets{};  // not cumulative
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> requests_;
  std::map<std::string, Series> durations_;  // by route
};

// The text of /metrics. `dead_letters`: the dead-letter count, when known.
std::string RenderMetrics(const std::map<std::string, uint64_t>& stats,
                          const std::vector<protocol::WorkerInfo>& workers,
                          std::optional<uint64_t> dead_letters, const HttpMetrics& http);

// A label value with \, " and newlines escaped.
std::string EscapeLabel(const std::string& v);

}  // namespace yard::web
