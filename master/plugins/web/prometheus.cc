#include "master/plugins/web/prometheus.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <string_view>
#include <tuple>

namespace yard::web {
namespace {

// Counters of the core and plugins that are gauges (the rest only grow).
const std::set<std::string_view>& Gauges() {
  static const std::set<std::string_view> kGauges = {
      "tasks.queued",        "tasks.ready",      "tasks.running",   "tasks.scheduled",
      "workers.connected",   "idempotency.keys", "jobs.open",       "recovery.tasks",
      "recovery.ms",         "mqtt.paused",      "mqtt.lag_ms",     "mqtt.buffered",
      "mqtt.awaiting_reply", "mqtt.connected",   "web.sse_clients", "workers.heartbeat_ms"};
  return kGauges;
}

std::string MetricName(std::string_view name) {
  std::string out = "yard_";
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    out += ok ? c : '_';
  }
  return out;
}

std::string Number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

// Writes families in the order they were first used; one TYPE line each.
class Writer {
 public:
  void Sample(const std::string& family, const char* type, const std::string& labels,
              const std::string& value, const std::string& suffix = "") {
    auto& f = families_[family];
    if (f.type.empty()) {
      f.type = type;
      order_.push_back(family);
    }
    f.lines += family + suffix + (labels.empty() ? "" : "{" + labels + "}") + " " + value + "\n";
  }
  std::string Text() const {
    std::string out;
    for (const auto& name : order_) {
      const auto& f = families_.at(name);
      out += "# TYPE " + name + " " + f.type + "\n" + f.lines;
    }
    return out;
  }

 private:
  struct Family {
    std::string type, lines;
  };
  std::map<std::string, Family> families_;
  std::vector<std::string> order_;
};

std::string Label(const char* name, const std::string& value) {
  return std::string(name) + "=\"" + EscapeLabel(value) + "\"";
}

bool IsTaskEndState(std::string_view s) {
  return s == "succeeded" || s == "failed" || s == "cancelled" || s == "dead" || s == "expired";
}

}  // namespace

std::string EscapeLabel(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void HttpMetrics::Record(const std::string& route, const std::string& method, int status,
                         double seconds) {
  std::lock_guard lock(mu_);
  ++requests_[{route, method, status}];
  Series& s = durations_[route];
  const auto* b = std::lower_bound(kBoundsSeconds.begin(), kBoundsSeconds.end(), seconds);
  if (b != kBoundsSeconds.end()) ++s.buckets[static_cast<size_t>(b - kBoundsSeconds.begin())];
  ++s.count;
  s.sum += seconds;
}

void HttpMetrics::RenderInto(std::string* out) const {
  std::lock_guard lock(mu_);
  Writer w;
  for (const auto& [key, n] : requests_) {
    const auto& [route, method, status] = key;
    w.Sample("yard_http_requests_total", "counter",
             Label("route", route) + "," + Label("method", method) + "," +
                 Label("status", std::to_string(status)),
             std::to_string(n));
  }
  for (const auto& [route, s] : durations_) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kBoundsSeconds.size(); ++i) {
      cumulative += s.buckets[i];
      w.Sample("yard_http_request_duration_seconds", "histogram",
               Label("route", route) + "," + Label("le", Number(kBoundsSeconds[i])),
               std::to_string(cumulative), "_bucket");
    }
    w.Sample("yard_http_request_duration_seconds", "histogram",
             Label("route", route) + ",le=\"+Inf\"", std::to_string(s.count), "_bucket");
    w.Sample("yard_http_request_duration_seconds", "histogram", Label("route", route),
             Number(s.sum), "_sum");
    w.Sample("yard_http_request_duration_seconds", "histogram", Label("route", route),
             std::to_string(s.count), "_count");
  }
  *out += w.Text();
}

std::string RenderMetrics(const std::map<std::string, uint64_t>& stats,
                          const std::vector<protocol::WorkerInfo>& workers,
                          std::optional<uint64_t> dead_letters, const HttpMetrics& http) {
  Writer w;
  const std::string_view kEnded = "tasks.ended_by_type.";
  const std::string_view kActive = "tasks.active_by_type.";
  const std::string_view kPriority = "tasks.queued_by_priority.";
  const std::string_view kLatency = "task_latency_us.";
  std::vector<std::pair<std::string, uint64_t>> latency;  // "le.B" in the stats' order
  for (const auto& [name, value] : stats) {
    const std::string_view n = name;
    const std::string v = std::to_string(value);
    if (n.starts_with(kEnded)) {
      const std::string_view rest = n.substr(kEnded.size());
      const size_t dot = rest.rfind('.');
      if (dot == std::string_view::npos) continue;
      w.Sample("yard_tasks_by_type_total", "counter",
               Label("type", std::string(rest.substr(0, dot))) + "," +
                   Label("state", std::string(rest.substr(dot + 1))),
               v);
    } else if (n.starts_with(kActive)) {
      w.Sample("yard_tasks_active", "gauge", Label("type", std::string(n.substr(kActive.size()))),
               v);
    } else if (n.starts_with(kPriority)) {
      w.Sample("yard_queue_depth", "gauge",
               Label("priority", std::string(n.substr(kPriority.size()))), v);
    } else if (n.starts_with(kLatency)) {
      latency.emplace_back(name.substr(kLatency.size()), value);
    } else if (n.starts_with("tasks.") && IsTaskEndState(n.substr(6))) {
      w.Sample("yard_tasks_total", "counter", Label("state", std::string(n.substr(6))), v);
    } else if (n == "tasks.active") {
      // The sum of yard_tasks_active{type=...}: as an unlabelled sample of that family it
      // would make sum(yard_tasks_active) count every active task twice.
      continue;
    } else if (n == "tasks.retried") {
      w.Sample("yard_retries_total", "counter", "", v);
    } else if (n.starts_with("rejected.") || n.starts_with("mqtt.rejected.") ||
               n.starts_with("web.rejected.")) {
      const size_t dot = n.find("rejected.");
      const std::string source = dot == 0 ? "core" : std::string(n.substr(0, dot - 1));
      w.Sample(
          "yard_rejected_total", "counter",
          Label("source", source) + "," +
              Label("reason", std::string(n.substr(dot + std::string_view("rejected.").size()))),
          v);
    } else if (Gauges().count(n)) {
      w.Sample(MetricName(n), "gauge", "", v);
    } else {
      w.Sample(MetricName(n) + "_total", "counter", "", v);
    }
  }
  // The latency histogram: cumulative buckets in increasing bounds, then +Inf, sum and count.
  std::vector<std::pair<uint64_t, uint64_t>> bounds;  // (bound_us, cumulative)
  uint64_t inf = 0, sum_us = 0, count = 0;
  for (const auto& [k, v] : latency) {
    if (k == "le.inf") {
      inf = v;
    } else if (k == "sum") {
      sum_us = v;
    } else if (k == "count") {
      count = v;
    } else if (k.starts_with("le.")) {
      bounds.emplace_back(std::stoull(k.substr(3)), v);
    }
  }
  if (!latency.empty()) {
    std::sort(bounds.begin(), bounds.end());
    for (const auto& [b, c] : bounds) {
      w.Sample("yard_task_latency_seconds", "histogram", Label("le", Number(double(b) / 1e6)),
               std::to_string(c), "_bucket");
    }
    w.Sample("yard_task_latency_seconds", "histogram", "le=\"+Inf\"", std::to_string(inf),
             "_bucket");
    w.Sample("yard_task_latency_seconds", "histogram", "", Number(double(sum_us) / 1e6), "_sum");
    w.Sample("yard_task_latency_seconds", "histogram", "", std::to_string(count), "_count");
  }
  for (const auto& wk : workers) {
    const std::string l = Label("worker", wk.worker_id);
    w.Sample("yard_worker_inflight", "gauge", l, std::to_string(wk.inflight));
    w.Sample("yard_worker_slots", "gauge", l, std::to_string(wk.slots));
    w.Sample("yard_worker_completed_total", "counter", l, std::to_string(wk.completed));
    w.Sample("yard_worker_failed_total", "counter", l, std::to_string(wk.failed));
  }
  if (dead_letters) w.Sample("yard_dead_letters", "gauge", "", std::to_string(*dead_letters));
  std::string out = w.Text();
  http.RenderInto(&out);
  return out;
}

}  // namespace yard::web
