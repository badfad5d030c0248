// The mqtt plugin's settings: the [mqtt] config section (master/plugins/mqtt/README.md lists
// every key). Parsed and checked as a whole at start; an error names the key path.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/protocol/messages.h"
#include "common/status.h"

namespace yard::mqtt {

struct Broker {
  std::string host;
  int port = 1883;
  bool tls = false;  // mqtts:// or ssl://
  std::string ToString() const;
};

// tcp://host:port, mqtt://host:port, mqtts://host:port (TLS), host:port or host.
StatusOr<Broker> ParseBroker(std::string_view url);

enum class Format { kJson, kRaw };
enum class KeyBy { kDevice, kStream, kNone };

// One routing rule: device messages whose topic (after `{prefix}/{device}/`) matches `topic`
// become tasks (or jobs) as it says. The first matching rule, in config order, wins.
struct Rule {
  std::string topic;     // an MQTT filter starting with telemetry or requests/TYPE
  bool request = false;  // requests/...: replied to when its task or job ends
  std::string type;      // task type
  Format format = Format::kJson;
  KeyBy key = KeyBy::kDevice;
  uint32_t batch_count = 1;  // telemetry: readings per task (1: no batching)
  Micros batch_window = 0;   // telemetry: most time a reading waits in a batch (0: none)
  std::string split;         // non-empty: a job, split this way
  std::string aggregate = "collect";
  protocol::JobPolicy policy = protocol::JobPolicy::kFailFast;
  uint8_t priority = protocol::kDefaultPriority;
  uint32_t max_attempts = 0;
  uint32_t timeout_ms = 0;
  uint64_t deadline_ms = 0;
  std::vector<std::string> require;
};

struct MqttConfig {
  std::vector<Broker> brokers;  // tried in order; the next on each failure (fail-over)
  std::string client_id;        // default: yard-master-{hostname}
  std::string username, password;
  std::string tls_ca_file, tls_cert_file, tls_key_file;
  bool tls_insecure = false;  // skip the broker host name check (tests only)
  int protocol = 311;         // 311 (MQTT 3.1.1) or 5 (MQTT 5: correlation data, response topic)
  uint32_t keepalive_s = 30;
  int qos = 1;  // of the subscriptions: 1 lets the broker keep messages while we pause or are away
  uint32_t session_expiry_s = 86400;  // MQTT 5: how long the broker keeps our session
  std::string prefix = "yard/devices";
  Micros reconnect_min = 100 * kMillis;
  Micros reconnect_max = 10 * kSeconds;
  uint32_t max_payload_bytes = 256 * 1024;
  // Backpressure on the core's active (queued + running) tasks: stop reading above
  // pause_above, read again at or below resume_below; QoS 0 telemetry is dropped above
  // shed_qos0_above (0: never shed).
  uint64_t pause_above = 100000;
  uint64_t resume_below = 50000;
  uint64_t shed_qos0_above = 0;
  uint32_t max_buffered = 20000;  // messages read but not yet durable; reading stops at it
  uint32_t submit_batch = 2000;   // most tasks per SUBMIT
  Micros stats_interval = 100 * kMillis;
  Micros reply_timeout = 3600 * kSeconds;  // a request not ended by then gets a timeout reply
  int reply_qos = 1;
  std::vector<Rule> rules;
};

// Parses the [mqtt] section. Rules default (when none are given) to: telemetry/# ->
// telemetry.stats in batches of 100 readings or 1 s per device; requests/echo -> echo;
// requests/stats -> telemetry.stats.
StatusOr<MqttConfig> ParseMqttConfig(const toml::table& section);

// MQTT topic-filter match of a topic's levels against a filter's levels (+ and #).
bool TopicMatches(std::string_view filter, std::string_view topic);

// Device ids: 1..64 of [A-Za-z0-9_.:-]. Request ids: 1..128 of the same.
bool IsValidDeviceId(std::string_view id);
bool IsValidRequestId(std::string_view id);

}  // namespace yard::mqtt
