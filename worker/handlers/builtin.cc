#include "worker/handlers/builtin.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <thread>

namespace yard::worker {
namespace {

constexpr uint64_t kMaxSleepMs = 24ull * 3600 * 1000;
constexpr uint64_t kMaxCpuIterations = 10'000'000'000ull;
constexpr size_t kMaxReadings = 1'000'000;

StatusOr<uint64_t> ParseCount(std::string_view s, std::string_view what, uint64_t dflt,
                              uint64_t max) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  if (s.empty()) return dflt;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) {
    return InvalidArgument(std::string(what) + ": payload must be a decimal number");
  }
  if (v > max) return InvalidArgument(std::string(what) + ": " + std::to_string(v) + " is too big");
  return v;
}

// Longest a sleeping handler goes without looking at its cancel and stop flags.
constexpr auto kPollInterval = std::chrono::milliseconds(10);

// Sleeps `ms`, waking every kPollInterval to look at the flags, and every `extend_every`
// (if non-zero) to renew the lease. Cancelled: a permanent error (the master already ended the
// task). Stopping: a retryable one (the task did not fail; another worker may run it).
Status SleepFor(const TaskContext& ctx, uint64_t ms, std::chrono::milliseconds extend_every) {
  using SteadyClock = std::chrono::steady_clock;
  const auto until = SteadyClock::now() + std::chrono::milliseconds(ms);
  auto next_extend = SteadyClock::now() + extend_every;
  while (true) {
    if (ctx.Cancelled()) return FailedPrecondition("cancelled");
    if (ctx.Stopping()) return Cancelled("worker stopping");
    auto now = SteadyClock::now();
    if (now >= until) return Status::Ok();
    if (extend_every.count() > 0 && now >= next_extend) {
      ctx.Extend(ctx.lease_ms);
      next_extend = now + extend_every;
    }
    auto wake = std::min<SteadyClock::time_point>(until, now + kPollInterval);
    if (extend_every.count() > 0) wake = std::min(wake, next_extend);
    std::this_thread::sleep_until(wake);
  }
}

StatusOr<std::string> Sleep(const TaskContext& ctx) {
  ASSIGN_OR_RETURN(uint64_t ms, ParseCount(ctx.payload, "sleep", 0, kMaxSleepMs));
  RETURN_IF_ERROR(SleepFor(ctx, ms, std::chrono::milliseconds(0)));
  return std::string(ctx.payload);
}

// Like sleep, but renews its lease every third of it, so it may sleep past its timeout.
StatusOr<std::string> SleepExtend(const TaskContext& ctx) {
  ASSIGN_OR_RETURN(uint64_t ms, ParseCount(ctx.payload, "sleep-extend", 0, kMaxSleepMs));
  const auto every = std::chrono::milliseconds(ctx.lease_ms / 3 > 0 ? ctx.lease_ms / 3 : 1);
  RETURN_IF_ERROR(SleepFor(ctx, ms, ctx.lease_ms > 0 ? every : std::chrono::milliseconds(0)));
  return std::string(ctx.payload);
}

StatusOr<std::string> Cpu(const TaskContext& ctx) {
  ASSIGN_OR_RETURN(uint64_t n, ParseCount(ctx.payload, "cpu", 1000, kMaxCpuIterations));
  // xorshift64*: cheap, not optimisable away, deterministic for a given count.
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (uint64_t i = 0; i < n; ++i) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    if ((i & 0xFFFFF) == 0) {
      if (ctx.Cancelled()) return FailedPrecondition("cancelled");
      if (ctx.Stopping()) return Cancelled("worker stopping");
    }
  }
  return std::to_string(x * 0x2545F4914F6CDD1Dull);
}

StatusOr<std::string> Fail(const TaskContext& ctx) {
  if (ctx.payload == "permanent") return FailedPrecondition("failed on purpose (permanent)");
  return Status(StatusCode::kAborted, "failed on purpose");
}

StatusOr<nlohmann::json> ParseJson(std::string_view payload, std::string_view handler) {
  nlohmann::json j = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument(std::string(handler) + ": payload is not JSON");
  return j;
}

StatusOr<std::vector<double>> Readings(const nlohmann::json& arr, std::string_view handler) {
  if (!arr.is_array()) return InvalidArgument(std::string(handler) + ": expected a JSON array");
  if (arr.size() > kMaxReadings) {
    return InvalidArgument(std::string(handler) + ": more than " + std::to_string(kMaxReadings) +
                           " readings");
  }
  std::vector<double> v;
  v.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    const auto& r = arr[i];
    const nlohmann::json* num = &r;
    if (r.is_object()) {
      auto it = r.find("value");
      if (it == r.end()) {
        return InvalidArgument(std::string(handler) + ": reading " + std::to_string(i) +
                               " has no \"value\"");
      }
      num = &*it;
    }
    if (!num->is_number()) {
      return InvalidArgument(std::string(handler) + ": reading " + std::to_string(i) +
                             " is not a number");
    }
    v.push_back(num->get<double>());
  }
  return v;
}

// Nearest-rank percentile of sorted values.
double Percentile(const std::vector<double>& sorted, double p) {
  const size_t rank =
      static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

StatusOr<std::string> TelemetryStats(const TaskContext& ctx) {
  ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(ctx.payload, "telemetry.stats"));
  ASSIGN_OR_RETURN(std::vector<double> v, Readings(j, "telemetry.stats"));
  nlohmann::json out = {{"count", v.size()}};
  if (!v.empty()) {
    std::sort(v.begin(), v.end());
    double sum = 0;
    for (double x : v) sum += x;
    out["min"] = v.front();
    out["max"] = v.back();
    out["mean"] = sum / static_cast<double>(v.size());
    out["p50"] = Percentile(v, 50);
    out["p95"] = Percentile(v, 95);
  }
  return out.dump();
}

StatusOr<std::string> TelemetryThreshold(const TaskContext& ctx) {
  ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(ctx.payload, "telemetry.threshold"));
  if (!j.is_object() || !j.contains("limit") || !j["limit"].is_number() ||
      !j.contains("readings")) {
    return InvalidArgument(
        "telemetry.threshold: payload must be {\"limit\": number, \"readings\": [...]}");
  }
  const double limit = j["limit"].get<double>();
  ASSIGN_OR_RETURN(std::vector<double> v, Readings(j["readings"], "telemetry.threshold"));
  nlohmann::json alerts = nlohmann::json::array();
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] > limit) alerts.push_back({{"index", i}, {"value", v[i]}});
  }
  return nlohmann::json{{"count", v.size()}, {"limit", limit}, {"alerts", alerts}}.dump();
}

}  // namespace

void RegisterBuiltinHandlers(HandlerRegistry& r) {
  auto must = [](Status st) {
    if (!st.ok()) {
      std::fprintf(stderr, "yard-worker: %s\n", st.ToString().c_str());
      std::abort();
    }
  };
  must(r.Register("echo", [](const TaskContext& ctx) -> StatusOr<std::string> {
    return std::string(ctx.payload);
  }));
  must(r.Register("sleep", Sleep));
  must(r.Register("sleep-extend", SleepExtend));
  must(r.Register("cpu", Cpu));
  must(r.Register("fail", Fail));
  must(r.Register("telemetry.stats", TelemetryStats));
  must(r.Register("telemetry.threshold", TelemetryThreshold));
}

}  // namespace yard::worker
