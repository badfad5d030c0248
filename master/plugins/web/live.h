// The live view's arithmetic: rates and latency percentiles between two samples of the
// master's counters, and a worker's health from when the master last heard from it. Pure
// functions of their arguments (unit-tested); the web plugin's sampler feeds them.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "common/clock.h"
#include "common/protocol/json.h"

namespace yard::web {

using Counters = std::map<std::string, uint64_t>;

// A counter's value; 0 when the master did not report it.
uint64_t CounterValue(const Counters& c, const std::string& name);

// Per second between two samples `elapsed` apart (0 when the counter went backwards: the
// master restarted).
double RatePerSecond(uint64_t before, uint64_t after, Micros elapsed);

// Percentiles (in ms) of the tasks that ended between two samples, from the deltas of the
// core's cumulative latency histogram (task_latency_us.le.*), interpolated linearly inside
// the bucket as Prometheus' histogram_quantile does:
// {"p50", "p90", "p99", "count"}; percentiles are null when no task ended.
protocol::Json LatencyBetween(const Counters& before, const Counters& after);

// "ok" (heard from within two heartbeats), "late", or "silent" (over four).
const char* WorkerHealth(uint32_t last_seen_ms, Micros heartbeat);

}  // namespace yard::web
