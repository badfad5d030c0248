// yard-devices: an MQTT device simulator, the load generator for the master's MQTT plugin.
//
// N devices publish telemetry to yard/devices/{device}/telemetry[/{stream}] and, with
// --requests, publish requests to yard/devices/{device}/requests/{type} and wait for the
// master's replies on yard/devices/{device}/responses/{request_id}. Devices are spread over C
// connections, each driven by its own thread; one device's messages always go in seq order on
// one connection. --raw adds a subscriber to measure the broker alone (the "Mosquitto raw"
// baseline).
//
// Exit codes: 0 every telemetry message sent (QoS 1: acknowledged) and every request answered;
// 1 anything missing, timed out or failed to send, the broker unreachable, or interrupted;
// 2 usage error.
#include <mosquitto.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "benchmarks/devices/mqtt_client.h"
#include "common/duration.h"
#include "common/signals.h"

namespace {

using yard::kMillis;
using yard::kSeconds;
using yard::Micros;
using yard::Status;
using yard::devices::BrokerAddress;
using yard::devices::ClientOptions;
using yard::devices::MqttClient;
using Json = nlohmann::ordered_json;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kKeepaliveS = 30;
constexpr Micros kConnectTimeout = 5 * kSeconds;
constexpr Micros kSubscribeTimeout = 30 * kSeconds;
constexpr Micros kStallTimeout = 10 * kSeconds;  // no acknowledgement or receipt for this long
constexpr Micros kProgressEvery = 200 * kMillis;
constexpr Micros kProgressEveryNoTty = 1 * kSeconds;
constexpr Micros kIdlePump = 20 * kMillis;
constexpr Micros kGoPoll = 200;     // us
constexpr Micros kWindowNap = 500;  // us
constexpr uint64_t kBatch = 256;    // publishes per corked write batch

Micros Now() { return yard::SystemClock::Get().Now(); }
Micros WallNow() { return yard::SystemClock::Get().WallNow(); }

struct Options {
  std::string broker = "tcp://127.0.0.1:1883";
  int devices = 10;
  int connections = 0;  // 0: min(devices, 4)
  int qos = 1;
  double rate = 0;
  uint64_t count = 10;
  std::string duration;  // empty: --count
  uint64_t requests = 0;
  std::string request_type = "echo";
  std::string request_payload = "ping";
  std::string request_timeout = "10s";
  std::string stream;
  size_t payload_bytes = 0;
  std::string prefix = "dev-";
  std::string client_prefix = "yard-devices";
  std::string username;
  std::string password;
  int max_inflight = 100;  // libmosquitto scans its in-flight list on every PUBACK
  bool raw = false;
  bool json = false;
  bool quiet = false;
};

// Options checked and converted.
struct Plan {
  Options o;
  BrokerAddress broker;
  Micros duration = 0;  // 0: o.count messages per device
  Micros request_timeout = 0;
};

// Shared by main and every connection thread.
struct Control {
  std::atomic<bool> stop{false};  // a signal, or a connection failed while connecting
  std::atomic<bool> go{false};    // every connection is ready: publish from t0
  std::atomic<Micros> t0{0};
  Micros connect_deadline = 0;
};

// Counters have one writer (their connection's thread) and are read by main for progress: a
// relaxed load and store is enough and cheaper than an atomic add.
void Bump(std::atomic<uint64_t>& c, int64_t by = 1) {
  c.store(c.load(std::memory_order_relaxed) + static_cast<uint64_t>(by), std::memory_order_relaxed);
}
uint64_t Load(const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); }

struct Device {
  int index = 0;
  std::string id;
  std::string telemetry_topic;
  std::string request_topic;
  std::string response_filter;
  uint64_t seq = 0;       // telemetry messages published
  uint64_t requests = 0;  // requests published
};

enum class Phase { kConnecting, kReady, kFailed, kDone };

// Connects, then subscribes to `filters` (if any); fails past the deadline.
class Endpoint : public MqttClient {
 public:
  Endpoint(const ClientOptions& options, const Control& control)
      : MqttClient(options), control_(control) {}

  std::atomic<Phase> phase{Phase::kConnecting};
  std::string error;  // set before phase becomes kFailed, or (run errors) before kDone

 protected:
  Status Open(const BrokerAddress& broker, const std::vector<std::string>& filters, int qos) {
    if (Status st = Connect(broker, kKeepaliveS); !st.ok()) return st;
    while (!connected()) {
      if (control_.stop.load()) return yard::Cancelled("stopped");
      if (connack_rc_ > 0) return Refused();
      if (Now() >= control_.connect_deadline) {
        return yard::Unavailable("no answer (CONNACK) from the broker at " + broker.ToString() +
                                 " within 5s");
      }
      if (Status st = Pump(kIdlePump); !st.ok()) {
        if (connack_rc_ > 0) return Refused();
        return st.WithContext("no MQTT session with the broker at " + broker.ToString());
      }
    }
    if (filters.empty()) return Status::Ok();
    auto packets = Subscribe(filters, qos);
    if (!packets.ok()) return packets.status();
    const Micros deadline = Now() + kSubscribeTimeout;
    while (subacks_ < *packets) {
      if (control_.stop.load()) return yard::Cancelled("stopped");
      if (Now() >= deadline) return yard::Unavailable("no SUBACK from the broker within 30s");
      if (Status st = Pump(kIdlePump); !st.ok()) return st;
    }
    if (suback_refused_) {
      return yard::Unavailable("the broker refused the subscription to " + filters.front() +
                               (filters.size() > 1 ? " (and others)" : ""));
    }
    return Status::Ok();
  }

  void OnConnect(int rc) final { connack_rc_ = rc; }
  void OnSubscribe(int, bool granted) final {
    ++subacks_;
    if (!granted) suback_refused_ = true;
  }

  const Control& control_;

 private:
  Status Refused() const {
    return yard::Unavailable(std::string("the broker refused the connection: ") +
                             mosquitto_connack_string(connack_rc_));
  }

  int connack_rc_ = -1;
  int subacks_ = 0;
  bool suback_refused_ = false;
};

// The --raw subscriber: counts what the broker delivers on yard/devices/+/telemetry/#.
class RawSubscriber : public Endpoint {
 public:
  RawSubscriber(const ClientOptions& options, const Control& control, const Plan& plan)
      : Endpoint(options, control), plan_(plan) {}

  void Run() {
    Status st = Open(plan_.broker, {"yard/devices/+/telemetry/#"}, plan_.o.qos);
    if (!st.ok()) {
      error = st.message();
      phase.store(Phase::kFailed);
      return;
    }
    phase.store(Phase::kReady);
    while (!finish.load(std::memory_order_relaxed)) {
      st = Pump(kIdlePump);
      if (!st.ok()) {
        error = "raw subscriber: " + st.message();
        break;
      }
    }
    Disconnect();
    phase.store(Phase::kDone);
  }

  std::atomic<bool> finish{false};  // set by main
  std::atomic<uint64_t> received{0};
  std::atomic<Micros> last_us{0};

 protected:
  void OnMessage(const mosquitto_message&) override {
    Bump(received);
    last_us.store(Now(), std::memory_order_relaxed);
  }

 private:
  const Plan& plan_;
};

// One connection and the devices on it.
class Publisher : public Endpoint {
 public:
  Publisher(const ClientOptions& options, const Control& control, const Plan& plan,
            std::vector<Device> devices)
      : Endpoint(options, control), plan_(plan), devices_(std::move(devices)) {}

  void Run() {
    std::vector<std::string> filters;
    if (plan_.o.requests > 0) {
      for (const Device& d : devices_) filters.push_back(d.response_filter);
    }
    Status st = Open(plan_.broker, filters, 1);
    if (!st.ok()) {
      error = st.message();
      phase.store(Phase::kFailed);
      return;
    }
    phase.store(Phase::kReady);
    // Short pumps: t0 is taken before go is set, so a late start shows in the rate.
    while (!control_.go.load() && !control_.stop.load() && st.ok()) st = Pump(kGoPoll);
    if (st.ok() && !control_.stop.load()) {
      t0_ = control_.t0.load();
      st = Telemetry();
      if (st.ok()) st = Requests();
    }
    if (!st.ok() && st.code() != yard::StatusCode::kCancelled) error = st.message();
    telemetry_end = std::max(t0_, last_ack_);
    Disconnect();
    phase.store(Phase::kDone);
  }

  // Progress, read by main at any time.
  std::atomic<uint64_t> sent{0};    // telemetry publishes accepted by the socket or its queue
  std::atomic<uint64_t> acked{0};   // QoS 1: PUBACK received; QoS 0: written to the socket
  std::atomic<uint64_t> failed{0};  // publishes libmosquitto refused
  std::atomic<uint64_t> req_sent{0};
  std::atomic<uint64_t> replied{0};
  std::atomic<uint64_t> ok{0};
  std::atomic<uint64_t> errors{0};

  // Valid once phase is kDone.
  Micros telemetry_end = 0;  // last telemetry acknowledgement (or t0 when there was none)
  std::vector<Micros> latencies;
  uint64_t timed_out = 0;   // requests sent and never answered
  uint64_t unexpected = 0;  // replies to no pending request (late, duplicate, unknown)

 protected:
  void OnPublish(int) override {
    if (in_requests_) {
      ++req_acked_;
    } else {
      Bump(acked);
      last_ack_ = Now();
    }
  }

  void OnMessage(const mosquitto_message& m) override {
    const std::string_view topic(m.topic);
    const size_t at = topic.rfind("/responses/");
    if (at == std::string_view::npos) {
      ++unexpected;
      return;
    }
    std::string id(topic.substr(at + 11));
    std::string state;
    const char* p = static_cast<const char*>(m.payload);
    Json j = Json::parse(p, p + m.payloadlen, nullptr, false);
    if (!j.is_discarded() && j.is_object()) {
      if (auto it = j.find("request_id"); it != j.end() && it->is_string()) {
        id = it->get<std::string>();
      }
      if (auto it = j.find("state"); it != j.end() && it->is_string()) {
        state = it->get<std::string>();
      }
    }
    auto it = pending_.find(id);
    if (it == pending_.end()) {
      ++unexpected;
      return;
    }
    latencies.push_back(Now() - it->second);
    pending_.erase(it);
    Bump(replied);
    Bump(state == "succeeded" || state == "partial" ? ok : errors);
  }

 private:
  bool Stopped() const { return control_.stop.load(std::memory_order_relaxed); }

  // `{"seq":n,"value":x,"ts_us":t}`, padded with a "pad" field to --payload-bytes.
  void FormatTelemetry(const Device& d, std::string& out) const {
    const double value = 20.0 + 5.0 * std::sin(static_cast<double>(d.seq) / 10.0) + d.index;
    char head[128];
    int n = std::snprintf(head, sizeof(head), "{\"seq\":%llu,\"value\":%.3f,\"ts_us\":%lld",
                          static_cast<unsigned long long>(d.seq), value,
                          static_cast<long long>(WallNow()));
    out.assign(head, static_cast<size_t>(n));
    constexpr size_t kPadOverhead = sizeof(",\"pad\":\"\"}") - 1;
    if (plan_.o.payload_bytes > out.size() + kPadOverhead) {
      out += ",\"pad\":\"";
      out.append(plan_.o.payload_bytes - (out.size() + 2), 'x');
      out += '"';
    }
    out += '}';
  }

  // A publish that failed: counted; an error only when the connection is gone.
  Status PublishFailed(int rc) {
    Bump(failed);
    if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_ERRNO) {
      Cork(false);
      return yard::Unavailable(std::string("publish: ") + mosquitto_strerror(rc));
    }
    return Status::Ok();
  }

  // How many more publishes may go now: the batch size, less what QoS 1's window allows. 0
  // after a wait when none may (the window is full or the socket is): call again.
  yard::StatusOr<uint64_t> Room(uint64_t inflight) {
    const auto window = static_cast<uint64_t>(plan_.o.max_inflight);
    if (plan_.o.qos > 0 && inflight >= window) {
      // Nap rather than wake for every PUBACK (a context switch each), then take them all.
      std::this_thread::sleep_for(std::chrono::microseconds(kWindowNap));
      if (Status st = Pump(0); !st.ok()) return st;
      return uint64_t{0};
    }
    if (WantWrite()) {
      if (Status st = Pump(kIdlePump); !st.ok()) return st;  // until the socket drains
      return uint64_t{0};
    }
    return plan_.o.qos > 0 ? std::min(kBatch, window - inflight) : kBatch;
  }

  Status Telemetry() {
    const uint64_t n = devices_.size();
    const uint64_t total =
        plan_.duration > 0 ? std::numeric_limits<uint64_t>::max() : plan_.o.count * n;
    const Micros deadline =
        plan_.duration > 0 ? t0_ + plan_.duration : std::numeric_limits<Micros>::max();
    // This connection's share of --rate.
    const double rate = plan_.o.rate * static_cast<double>(n) / plan_.o.devices;
    uint64_t attempted = 0;
    size_t next = 0;
    std::string payload;
    while (attempted < total && !Stopped()) {
      const Micros now = Now();
      if (now >= deadline) break;
      auto room = Room(Load(sent) - Load(acked));
      if (!room.ok()) return room.status();
      if (*room == 0) continue;
      uint64_t budget = std::min(*room, total - attempted);
      if (rate > 0) {
        const auto due = static_cast<uint64_t>(static_cast<double>(now - t0_) * rate / 1e6) + 1;
        if (due <= attempted) {
          const Micros at = t0_ + static_cast<Micros>(static_cast<double>(attempted) * 1e6 / rate);
          if (Status st = Pump(std::min({at, deadline, now + kIdlePump}) - now); !st.ok()) {
            return st;
          }
          continue;
        }
        budget = std::min(budget, due - attempted);
      }
      if (budget > 1) Cork(true);
      for (uint64_t i = 0; i < budget; ++i) {
        Device& d = devices_[next];
        next = next + 1 == n ? 0 : next + 1;
        ++attempted;
        ++d.seq;
        FormatTelemetry(d, payload);
        Bump(sent);  // before: a QoS 0 publish is acknowledged inside Publish()
        if (int rc = Publish(d.telemetry_topic, payload, plan_.o.qos); rc != MOSQ_ERR_SUCCESS) {
          Bump(sent, -1);
          if (Status st = PublishFailed(rc); !st.ok()) return st;
        }
        if (WantWrite()) break;
      }
      Cork(false);
      if (Status st = Pump(0); !st.ok()) return st;
    }
    // Every publish acknowledged (QoS 1) or written (QoS 0), unless nothing moves for a while.
    Micros progress_at = Now();
    uint64_t seen = Load(acked);
    while (Load(acked) < Load(sent) && !Stopped()) {
      if (Status st = Pump(kIdlePump); !st.ok()) return st;
      const Micros now = Now();
      if (Load(acked) != seen) {
        seen = Load(acked);
        progress_at = now;
      } else if (now - progress_at > kStallTimeout) {
        return yard::DeadlineExceeded("no acknowledgement from the broker for 10s");
      }
    }
    return Status::Ok();
  }

  Status Requests() {
    if (plan_.o.requests == 0) return Status::Ok();
    in_requests_ = true;
    const uint64_t n = devices_.size();
    const uint64_t total = plan_.o.requests * n;
    uint64_t attempted = 0;
    size_t next = 0;
    while (attempted < total && !Stopped()) {
      auto room = Room(Load(req_sent) - req_acked_);
      if (!room.ok()) return room.status();
      if (*room == 0) continue;
      const uint64_t budget = std::min(*room, total - attempted);
      if (budget > 1) Cork(true);
      for (uint64_t i = 0; i < budget; ++i) {
        Device& d = devices_[next];
        next = next + 1 == n ? 0 : next + 1;
        ++attempted;
        std::string id = d.id + "-" + std::to_string(++d.requests);
        const std::string payload =
            Json{{"request_id", id}, {"payload", plan_.o.request_payload}}.dump();
        const auto it = pending_.emplace(std::move(id), Now()).first;
        Bump(req_sent);
        if (int rc = Publish(d.request_topic, payload, plan_.o.qos); rc != MOSQ_ERR_SUCCESS) {
          pending_.erase(it);
          Bump(req_sent, -1);
          if (Status st = PublishFailed(rc); !st.ok()) return st;
        }
        if (WantWrite()) break;
      }
      Cork(false);
      if (Status st = Pump(0); !st.ok()) return st;
    }
    const Micros deadline = Now() + plan_.request_timeout;
    while (!pending_.empty() && !Stopped()) {
      const Micros now = Now();
      if (now >= deadline) break;
      if (Status st = Pump(std::min(deadline - now, kIdlePump)); !st.ok()) {
        timed_out = pending_.size();
        return st;
      }
    }
    timed_out = pending_.size();
    return Status::Ok();
  }

  const Plan& plan_;
  std::vector<Device> devices_;
  Micros t0_ = 0;
  Micros last_ack_ = 0;
  bool in_requests_ = false;
  uint64_t req_acked_ = 0;
  std::unordered_map<std::string, Micros> pending_;  // request id -> when it was published
};

struct Totals {
  uint64_t sent = 0, acked = 0, failed = 0, requests = 0, replied = 0, ok = 0, errors = 0;
  uint64_t received = 0;
};

Totals Sum(const std::vector<std::unique_ptr<Publisher>>& pubs, const RawSubscriber* sub) {
  Totals t;
  for (const auto& p : pubs) {
    t.sent += Load(p->sent);
    t.acked += Load(p->acked);
    t.failed += Load(p->failed);
    t.requests += Load(p->req_sent);
    t.replied += Load(p->replied);
    t.ok += Load(p->ok);
    t.errors += Load(p->errors);
  }
  if (sub != nullptr) t.received = Load(sub->received);
  return t;
}

std::string Rate(double per_s) {
  char buf[32];
  if (per_s >= 1e6) {
    std::snprintf(buf, sizeof(buf), "%.2fM", per_s / 1e6);
  } else if (per_s >= 1e3) {
    std::snprintf(buf, sizeof(buf), "%.1fk", per_s / 1e3);
  } else {
    std::snprintf(buf, sizeof(buf), "%.0f", per_s);
  }
  return buf;
}

// The progress line on stderr: redrawn on a terminal, else one line per second.
class Progress {
 public:
  Progress(const Plan& plan, bool enabled, Micros start)
      : plan_(plan),
        enabled_(enabled),
        tty_(isatty(STDERR_FILENO) != 0),
        next_(start + (tty_ ? kProgressEvery : kProgressEveryNoTty)),
        last_at_(start) {}

  // Draws the line if it is time to (or `force`).
  void Maybe(const Totals& t, Micros now, bool force = false) {
    if (!enabled_ || (now < next_ && !force)) return;
    next_ = now + (tty_ ? kProgressEvery : kProgressEveryNoTty);
    const double dt = static_cast<double>(now - last_at_) / 1e6;
    const double rate = dt <= 0 ? 0 : static_cast<double>(t.acked - last_acked_) / dt;
    last_at_ = now;
    last_acked_ = t.acked;
    std::string line = "sent " + std::to_string(t.sent);
    if (plan_.duration == 0) {
      line += "/" + std::to_string(plan_.o.count * static_cast<uint64_t>(plan_.o.devices));
    }
    line += " acked " + std::to_string(t.acked);
    if (plan_.o.raw) line += " received " + std::to_string(t.received);
    if (plan_.o.requests > 0) {
      line += " replied " + std::to_string(t.replied) + "/" +
              std::to_string(plan_.o.requests * static_cast<uint64_t>(plan_.o.devices));
    }
    line += " (" + Rate(rate) + " msg/s)";
    if (tty_) {
      std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
      drawn_ = true;
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::fflush(stderr);
  }

  void End() {
    if (drawn_) std::fputc('\n', stderr);
    drawn_ = false;
  }

 private:
  const Plan& plan_;
  const bool enabled_;
  const bool tty_;
  bool drawn_ = false;
  Micros next_;
  Micros last_at_;
  uint64_t last_acked_ = 0;
};

double Percentile(const std::vector<Micros>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return static_cast<double>(sorted[std::min(sorted.size(), std::max<size_t>(rank, 1)) - 1]) / 1e3;
}

// Rounds to 3 decimals for output.
double R3(double x) { return std::round(x * 1e3) / 1e3; }

bool ValidTopicPart(const std::string& s, bool allow_slash) {
  if (s.find_first_of("+#") != std::string::npos) return false;
  return allow_slash || s.find('/') == std::string::npos;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "yard-devices: simulated MQTT devices publishing telemetry and requests, for load tests "
      "of the master's MQTT plugin or (--raw) of the broker alone.\n"
      "Exit codes: 0 everything sent, acknowledged and answered; 1 something missing, timed out "
      "or failed, the broker unreachable, or interrupted; 2 usage error."};
  app.add_option("--broker", o.broker, "MQTT broker: tcp://host:port, host:port or host")
      ->capture_default_str();
  app.add_option("--devices", o.devices, "simulated devices")
      ->check(CLI::Range(1, 10'000'000))
      ->capture_default_str();
  app.add_option("--connections", o.connections,
                 "MQTT connections, each with its own thread; devices are spread over them "
                 "round-robin (default: min(devices, 4))")
      ->check(CLI::Range(1, 100'000));
  app.add_option("--qos", o.qos, "QoS of every publish (and of the --raw subscription): 0 or 1")
      ->check(CLI::Range(0, 1))
      ->capture_default_str();
  app.add_option("--rate", o.rate, "telemetry messages/s over all devices (0: as fast as possible)")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  auto* count =
      app.add_option("--count", o.count, "telemetry messages per device")->capture_default_str();
  app.add_option("--duration", o.duration, "publish telemetry for this long instead (e.g. 5s)")
      ->excludes(count);
  app.add_option("--requests", o.requests, "requests per device, sent after the telemetry")
      ->capture_default_str();
  app.add_option("--request-type", o.request_type, "request type (topic .../requests/TYPE)")
      ->capture_default_str();
  app.add_option("--request-payload", o.request_payload, "the requests' \"payload\" string")
      ->capture_default_str();
  app.add_option("--request-timeout", o.request_timeout,
                 "wait this long after the last request for the replies")
      ->capture_default_str();
  app.add_option("--stream", o.stream, "publish telemetry to .../telemetry/STREAM");
  app.add_option("--payload-bytes", o.payload_bytes,
                 "pad each telemetry message to about this many bytes");
  app.add_option("--prefix", o.prefix, "device id prefix (ids are PREFIX0000, PREFIX0001, ...)")
      ->capture_default_str();
  app.add_option("--client-prefix", o.client_prefix,
                 "MQTT client ids are CLIENT_PREFIX-PID-CONNECTION")
      ->capture_default_str();
  auto* user = app.add_option("--username", o.username, "MQTT user name");
  app.add_option("--password", o.password, "MQTT password")->needs(user);
  app.add_option("--max-inflight", o.max_inflight,
                 "QoS 1: unacknowledged publishes per connection (libmosquitto's cost per "
                 "PUBACK grows with it)")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  app.add_flag("--raw", o.raw,
               "also subscribe to all telemetry and report the broker's end-to-end rate");
  app.add_flag("--json", o.json, "print the summary as one JSON object (and no progress)");
  app.add_flag("--quiet", o.quiet, "no progress line");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  auto usage = [](const std::string& msg) {
    std::cerr << "yard-devices: " << msg << "\n";
    return kExitUsage;
  };
  Plan plan;
  auto broker = yard::devices::ParseBrokerUrl(o.broker);
  if (!broker.ok()) return usage(broker.status().message());
  plan.broker = *broker;
  if (!o.duration.empty()) {
    auto d = yard::ParseDuration(o.duration);
    if (!d.ok()) return usage("--duration: " + d.status().message());
    if (*d <= 0) return usage("--duration must be more than 0");
    plan.duration = *d;
  }
  auto rt = yard::ParseDuration(o.request_timeout);
  if (!rt.ok()) return usage("--request-timeout: " + rt.status().message());
  plan.request_timeout = *rt;
  if (o.prefix.empty() || !ValidTopicPart(o.prefix, false)) {
    return usage("--prefix must be non-empty, without '/', '+' or '#'");
  }
  if (o.request_type.empty() || !ValidTopicPart(o.request_type, false)) {
    return usage("--request-type must be non-empty, without '/', '+' or '#'");
  }
  if (!ValidTopicPart(o.stream, true)) return usage("--stream must not contain '+' or '#'");
  if (o.client_prefix.empty()) return usage("--client-prefix must not be empty");
  if (o.connections == 0) o.connections = std::min(o.devices, 4);
  o.connections = std::min(o.connections, o.devices);
  if (o.json) o.quiet = true;
  plan.o = o;

  mosquitto_lib_init();
  Control control;
  yard::InstallStopHandler([](void* c) { static_cast<Control*>(c)->stop.store(true); }, &control);
  auto finish = [](int code) {
    yard::ClearStopHandler();
    mosquitto_lib_cleanup();
    return code;
  };

  const Micros start = Now();
  control.connect_deadline = start + kConnectTimeout;
  auto reachable = yard::devices::ProbeBroker(plan.broker, kConnectTimeout);
  if (!reachable.ok()) {
    std::cerr << "yard-devices: " << reachable.status().message() << "\n";
    return finish(kExitFailed);
  }
  plan.broker = *reachable;

  // Devices, dealt round-robin to the connections.
  std::vector<std::vector<Device>> per_conn(static_cast<size_t>(o.connections));
  for (int i = 0; i < o.devices; ++i) {
    Device d;
    d.index = i;
    char num[16];
    std::snprintf(num, sizeof(num), "%04d", i);
    d.id = o.prefix + num;
    const std::string base = "yard/devices/" + d.id;
    d.telemetry_topic = base + "/telemetry" + (o.stream.empty() ? "" : "/" + o.stream);
    d.request_topic = base + "/requests/" + o.request_type;
    d.response_filter = base + "/responses/#";
    per_conn[static_cast<size_t>(i % o.connections)].push_back(std::move(d));
  }

  const std::string id_base = o.client_prefix + "-" + std::to_string(getpid()) + "-";
  auto client_options = [&](const std::string& suffix) {
    ClientOptions co;
    co.client_id = id_base + suffix;
    co.username = o.username;
    co.password = o.password;
    co.max_inflight = o.max_inflight;
    return co;
  };

  std::vector<std::thread> threads;
  std::unique_ptr<RawSubscriber> sub;
  std::vector<std::unique_ptr<Publisher>> pubs;
  std::vector<Endpoint*> endpoints;
  if (o.raw) {
    ClientOptions co = client_options("raw");
    co.cork_reads = o.qos > 0;
    sub = std::make_unique<RawSubscriber>(co, control, plan);
    endpoints.push_back(sub.get());
  }
  for (int c = 0; c < o.connections; ++c) {
    pubs.push_back(std::make_unique<Publisher>(client_options(std::to_string(c)), control, plan,
                                               std::move(per_conn[static_cast<size_t>(c)])));
    endpoints.push_back(pubs.back().get());
  }
  auto join_all = [&] {
    for (auto& t : threads) t.join();
    threads.clear();
  };
  // Waits until endpoints [first, last) are ready; false (after stopping all) when one
  // failed or a signal came.
  auto wait_ready = [&](size_t first, size_t last) {
    while (true) {
      bool all = true;
      for (size_t i = first; i < last; ++i) {
        const Phase ph = endpoints[i]->phase.load();
        if (ph == Phase::kFailed || ph == Phase::kDone) {  // kDone: lost while waiting
          control.stop.store(true);
          if (sub) sub->finish.store(true);
          join_all();
          const std::string& e = endpoints[i]->error;
          std::cerr << "yard-devices: " << (e.empty() ? "connection to the broker lost" : e)
                    << "\n";
          return false;
        }
        all = all && ph == Phase::kReady;
      }
      if (all) return true;
      if (control.stop.load()) {
        if (sub) sub->finish.store(true);
        join_all();
        std::cerr << "yard-devices: interrupted while connecting\n";
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  };
  // The raw subscriber is subscribed before any publisher connects.
  if (sub) {
    threads.emplace_back([&] { sub->Run(); });
    if (!wait_ready(0, 1)) return finish(kExitFailed);
  }
  for (auto& p : pubs) threads.emplace_back([pub = p.get()] { pub->Run(); });
  if (!wait_ready(0, endpoints.size())) return finish(kExitFailed);

  const Micros t0 = Now();
  const Micros t0_wall = WallNow();  // in --json: when publishing began, for other processes
  control.t0.store(t0);
  control.go.store(true);

  Progress progress(plan, !o.quiet, t0);
  while (true) {
    bool done = true;
    for (const auto& p : pubs) done = done && p->phase.load() == Phase::kDone;
    if (done) break;
    progress.Maybe(Sum(pubs, sub.get()), Now());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // --raw: wait for the subscriber to get all that was acknowledged, unless it stalls.
  bool raw_stalled = false;
  if (sub) {
    const Micros pubs_done = Now();
    while (!control.stop.load() && sub->phase.load() == Phase::kReady) {
      const Totals t = Sum(pubs, sub.get());
      if (t.received >= t.acked) break;
      const Micros now = Now();
      if (now - std::max(pubs_done, sub->last_us.load()) > kStallTimeout) {
        raw_stalled = true;
        break;
      }
      progress.Maybe(t, now);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    sub->finish.store(true);
  }
  join_all();
  const Totals t = Sum(pubs, sub.get());
  progress.Maybe(t, Now(), true);
  progress.End();

  // Summary.
  Micros telemetry_end = t0;
  uint64_t timed_out = 0, unexpected = 0;
  std::vector<Micros> lat;
  std::vector<std::string> problems;
  for (const auto& p : pubs) {
    telemetry_end = std::max(telemetry_end, p->telemetry_end);
    timed_out += p->timed_out;
    unexpected += p->unexpected;
    lat.insert(lat.end(), p->latencies.begin(), p->latencies.end());
    if (!p->error.empty() &&
        std::find(problems.begin(), problems.end(), p->error) == problems.end()) {
      problems.push_back(p->error);
    }
  }
  std::sort(lat.begin(), lat.end());
  const double elapsed = static_cast<double>(telemetry_end - t0) / 1e6;
  const double msgs_per_s = elapsed > 0 ? static_cast<double>(t.acked) / elapsed : 0;
  const Micros last_receipt = sub ? std::max(sub->last_us.load(), t0) : t0;
  const double raw_elapsed = static_cast<double>(last_receipt - t0) / 1e6;
  const double received_per_s = raw_elapsed > 0 ? static_cast<double>(t.received) / raw_elapsed : 0;
  const double p50 = Percentile(lat, 0.50), p90 = Percentile(lat, 0.90),
               p99 = Percentile(lat, 0.99), pmax = lat.empty() ? 0 : lat.back() / 1e3;

  if (o.json) {
    Json j = {
        {"devices", o.devices},
        {"connections", o.connections},
        {"qos", o.qos},
        {"sent", t.sent},
        {"acked", t.acked},
        {"failed", t.failed},
        {"t0_us", t0_wall},
        {"elapsed_s", R3(elapsed)},
        {"msgs_per_s", std::round(msgs_per_s * 10) / 10},
        {"requests", t.requests},
        {"replied", t.replied},
        {"ok", t.ok},
        {"errors", t.errors},
        {"timed_out", timed_out},
        {"latency_ms", {{"p50", R3(p50)}, {"p90", R3(p90)}, {"p99", R3(p99)}, {"max", R3(pmax)}}}};
    if (sub) {
      j["received"] = t.received;
      j["received_per_s"] = std::round(received_per_s * 10) / 10;
    }
    std::cout << j.dump() << "\n";
  } else {
    auto row = [](const char* name, const std::string& value) {
      std::printf("%-16s %s\n", name, value.c_str());
    };
    auto num = [](double v, int decimals) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
      return std::string(buf);
    };
    row("devices", std::to_string(o.devices));
    row("connections", std::to_string(o.connections));
    row("qos", std::to_string(o.qos));
    row("telemetry sent", std::to_string(t.sent) +
                              (t.failed > 0 ? " (" + std::to_string(t.failed) + " failed)" : ""));
    row("acked", std::to_string(t.acked));
    row("elapsed s", num(elapsed, 3));
    row("msgs/s", num(msgs_per_s, 1));
    if (sub) {
      row("received", std::to_string(t.received));
      row("received/s", num(received_per_s, 1));
    }
    row("requests sent", std::to_string(t.requests));
    row("replied", std::to_string(t.replied));
    row("ok", std::to_string(t.ok));
    row("errors", std::to_string(t.errors));
    row("timed out", std::to_string(timed_out));
    row("latency ms", "p50 " + num(p50, 3) + "  p90 " + num(p90, 3) + "  p99 " + num(p99, 3) +
                          "  max " + num(pmax, 3));
  }
  std::fflush(stdout);

  // Anything missing makes the exit code 1; say what on stderr.
  if (control.stop.load()) problems.push_back("interrupted");
  if (t.failed > 0) problems.push_back(std::to_string(t.failed) + " publishes failed");
  const uint64_t expected = plan.duration > 0 ? t.sent : o.count * static_cast<uint64_t>(o.devices);
  if (t.acked < expected) {
    problems.push_back(std::to_string(expected - t.acked) + " of " + std::to_string(expected) +
                       " telemetry messages not " + (o.qos > 0 ? "acknowledged" : "sent"));
  }
  const uint64_t expected_requests = o.requests * static_cast<uint64_t>(o.devices);
  if (t.replied < expected_requests) {
    problems.push_back(std::to_string(expected_requests - t.replied) + " of " +
                       std::to_string(expected_requests) + " requests without a reply");
  }
  if (sub && t.received < t.acked) {
    problems.push_back(std::to_string(t.acked - t.received) +
                       " messages not received by the raw subscriber" +
                       (!raw_stalled ? ""
                        : o.qos > 0  ? " (none for 10s; the broker may have dropped them: a "
                                       "default mosquitto queues at most 1000 QoS 1 messages "
                                       "per subscriber, see max_queued_messages, or use --rate)"
                                     : " (none for 10s)"));
  }
  if (sub && !sub->error.empty()) problems.push_back(sub->error);
  if (unexpected > 0) {
    std::cerr << "yard-devices: note: " << unexpected
              << " replies matched no pending request (late or duplicate)\n";
  }
  for (const auto& p : problems) std::cerr << "yard-devices: " << p << "\n";
  return finish(problems.empty() ? kExitOk : kExitFailed);
}
