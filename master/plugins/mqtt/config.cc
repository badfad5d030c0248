#include "master/plugins/mqtt/config.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <set>

#include "common/duration.h"
#include "master/plugins/table_reader.h"

namespace yard::mqtt {
namespace {

using plugins::TableReader;

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.' || c == ':';
}

bool IsValidId(std::string_view id, size_t max) {
  return !id.empty() && id.size() <= max && std::all_of(id.begin(), id.end(), IsIdChar);
}

std::vector<Rule> DefaultRules() {
  Rule telemetry;
  telemetry.topic = "telemetry/#";
  telemetry.type = "telemetry.stats";
  telemetry.batch_count = 100;
  telemetry.batch_window = kSeconds;
  Rule echo;
  echo.topic = "requests/echo";
  echo.request = true;
  echo.type = "echo";
  Rule stats = echo;
  stats.topic = "requests/stats";
  stats.type = "telemetry.stats";
  return {telemetry, echo, stats};
}

std::vector<std::string_view> Levels(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t slash = s.find('/', start);
    out.push_back(s.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) return out;
    start = slash + 1;
  }
}

Status ParseRule(const toml::table& t, const std::string& path, Rule* r) {
  TableReader in(t, path);
  RETURN_IF_ERROR(in.String("topic", &r->topic));
  if (r->topic.empty()) return in.Error("topic", "required (e.g. \"telemetry/#\")");
  const auto levels = Levels(r->topic);
  for (size_t i = 0; i < levels.size(); ++i) {
    const auto l = levels[i];
    if (l.empty()) return in.Error("topic", "empty level in '" + r->topic + "'");
    if (l.find_first_of("+#") != std::string_view::npos && l != "+" && l != "#") {
      return in.Error("topic", "a wildcard must be a whole level");
    }
    if (l == "#" && i + 1 != levels.size()) return in.Error("topic", "# must be the last level");
  }
  if (levels[0] == "requests") {
    r->request = true;
    if (levels.size() != 2 || levels[1] == "+" || levels[1] == "#") {
      return in.Error("topic", "a request rule names one type: requests/TYPE");
    }
  } else if (levels[0] != "telemetry") {
    return in.Error("topic", "must start with telemetry or requests/ (got '" + r->topic + "')");
  }
  r->type = r->request ? std::string(levels[1]) : "";
  RETURN_IF_ERROR(in.String("type", &r->type));
  if (r->type.empty()) return in.Error("type", "required for telemetry rules");
  std::string format = "json";
  RETURN_IF_ERROR(in.String("format", &format));
  if (format == "json") {
    r->format = Format::kJson;
  } else if (format == "raw") {
    r->format = Format::kRaw;
  } else {
    return in.Error("format", "expected json or raw");
  }
  std::string key = "device";
  RETURN_IF_ERROR(in.String("key", &key));
  if (key == "device") {
    r->key = KeyBy::kDevice;
  } else if (key == "stream") {
    r->key = KeyBy::kStream;
  } else if (key == "none") {
    r->key = KeyBy::kNone;
  } else {
    return in.Error("key", "expected device, stream or none");
  }
  RETURN_IF_ERROR(in.Uint("batch_count", &r->batch_count, 1, 100000));
  RETURN_IF_ERROR(in.Duration("batch_window", &r->batch_window));
  if (r->request && (in.Has("batch_count") || in.Has("batch_window"))) {
    return in.Error("batch_count", "requests are not batched");
  }
  if (r->batch_count > 1 && r->batch_window == 0) r->batch_window = kSeconds;
  RETURN_IF_ERROR(in.String("split", &r->split));
  RETURN_IF_ERROR(in.String("aggregate", &r->aggregate));
  std::string policy = "fail-fast";
  RETURN_IF_ERROR(in.String("policy", &policy));
  if (policy == "fail-fast") {
    r->policy = protocol::JobPolicy::kFailFast;
  } else if (policy == "continue") {
    r->policy = protocol::JobPolicy::kContinue;
  } else {
    return in.Error("policy", "expected fail-fast or continue");
  }
  RETURN_IF_ERROR(in.Uint("priority", &r->priority, 0, 9));
  RETURN_IF_ERROR(in.Uint("max_attempts", &r->max_attempts));
  Micros timeout = 0, deadline = 0;
  RETURN_IF_ERROR(in.Duration("timeout", &timeout));
  RETURN_IF_ERROR(in.Duration("deadline", &deadline));
  r->timeout_ms = static_cast<uint32_t>(std::min<Micros>(timeout / kMillis, 0xFFFFFFFF));
  r->deadline_ms = static_cast<uint64_t>(deadline / kMillis);
  RETURN_IF_ERROR(in.StringList("require", &r->require));
  return in.CheckAllRead();
}

}  // namespace

std::string Broker::ToString() const {
  return std::string(tls ? "mqtts://" : "tcp://") + host + ":" + std::to_string(port);
}

StatusOr<Broker> ParseBroker(std::string_view url) {
  Broker b;
  std::string_view rest = url;
  if (const size_t at = rest.find("://"); at != std::string_view::npos) {
    const std::string_view scheme = rest.substr(0, at);
    if (scheme == "mqtts" || scheme == "ssl") {
      b.tls = true;
      b.port = 8883;
    } else if (scheme != "tcp" && scheme != "mqtt") {
      return InvalidArgument("broker '" + std::string(url) +
                             "': scheme must be tcp, mqtt, mqtts or ssl");
    }
    rest.remove_prefix(at + 3);
  }
  if (const size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    const std::string_view port = rest.substr(colon + 1);
    int p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || ptr != port.data() + port.size() || p <= 0 || p > 65535) {
      return InvalidArgument("broker '" + std::string(url) + "': bad port");
    }
    b.port = p;
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return InvalidArgument("broker '" + std::string(url) + "': no host");
  b.host = std::string(rest);
  return b;
}

StatusOr<MqttConfig> ParseMqttConfig(const toml::table& section) {
  MqttConfig c;
  TableReader in(section, "mqtt");
  bool enabled = true;
  RETURN_IF_ERROR(in.Bool("enabled", &enabled));  // read by the host; accepted here
  std::vector<std::string> brokers;
  RETURN_IF_ERROR(in.StringList("brokers", &brokers));
  if (brokers.empty()) {
    return in.Error("brokers", "required: at least one broker such as \"tcp://127.0.0.1:1883\"");
  }
  for (const auto& url : brokers) {
    auto b = ParseBroker(url);
    if (!b.ok()) return in.Error("brokers", b.status().message());
    c.brokers.push_back(*b);
  }
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  c.client_id = std::string("yard-master-") + (host[0] ? host : "local");
  RETURN_IF_ERROR(in.String("client_id", &c.client_id));
  if (c.client_id.empty() || c.client_id.size() > 128) {
    return in.Error("client_id", "must be 1..128 characters");
  }
  RETURN_IF_ERROR(in.String("username", &c.username));
  RETURN_IF_ERROR(in.String("password", &c.password));
  RETURN_IF_ERROR(in.String("tls_ca_file", &c.tls_ca_file));
  RETURN_IF_ERROR(in.String("tls_cert_file", &c.tls_cert_file));
  RETURN_IF_ERROR(in.String("tls_key_file", &c.tls_key_file));
  RETURN_IF_ERROR(in.Bool("tls_insecure", &c.tls_insecure));
  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    return in.Error("tls_cert_file", "tls_cert_file and tls_key_file go together");
  }
  const bool any_tls =
      std::any_of(c.brokers.begin(), c.brokers.end(), [](const Broker& b) { return b.tls; });
  if (any_tls && c.tls_ca_file.empty()) {
    return in.Error("tls_ca_file", "required for an mqtts:// broker");
  }
  RETURN_IF_ERROR(in.Uint("protocol", &c.protocol, 5, 311));
  if (c.protocol != 5 && c.protocol != 311) return in.Error("protocol", "expected 311 or 5");
  RETURN_IF_ERROR(in.Uint("keepalive_s", &c.keepalive_s, 5, 3600));
  RETURN_IF_ERROR(in.Uint("qos", &c.qos, 0, 1));
  RETURN_IF_ERROR(in.Uint("session_expiry_s", &c.session_expiry_s));
  RETURN_IF_ERROR(in.String("prefix", &c.prefix));
  if (c.prefix.empty() || c.prefix.find_first_of("+#") != std::string::npos ||
      c.prefix.back() == '/') {
    return in.Error("prefix", "must be a topic without wildcards or a trailing /");
  }
  RETURN_IF_ERROR(in.Duration("reconnect_min", &c.reconnect_min));
  RETURN_IF_ERROR(in.Duration("reconnect_max", &c.reconnect_max));
  if (c.reconnect_min <= 0 || c.reconnect_max < c.reconnect_min) {
    return in.Error("reconnect_max", "need 0 < reconnect_min <= reconnect_max");
  }
  RETURN_IF_ERROR(in.Uint("max_payload_bytes", &c.max_payload_bytes, 1, 256u << 20));
  RETURN_IF_ERROR(in.Uint("pause_above", &c.pause_above, 1));
  RETURN_IF_ERROR(in.Uint("resume_below", &c.resume_below));
  if (!in.Has("resume_below")) c.resume_below = c.pause_above / 2;
  if (c.resume_below >= c.pause_above) {
    return in.Error("resume_below", "must be below pause_above");
  }
  RETURN_IF_ERROR(in.Uint("shed_qos0_above", &c.shed_qos0_above));
  RETURN_IF_ERROR(in.Uint("max_buffered", &c.max_buffered, 1));
  RETURN_IF_ERROR(in.Uint("submit_batch", &c.submit_batch, 1, 100000));
  RETURN_IF_ERROR(in.Duration("stats_interval", &c.stats_interval));
  if (c.stats_interval < kMillis) return in.Error("stats_interval", "must be at least 1ms");
  RETURN_IF_ERROR(in.Duration("reply_timeout", &c.reply_timeout));
  if (c.reply_timeout <= 0) return in.Error("reply_timeout", "must be > 0");
  RETURN_IF_ERROR(in.Uint("reply_qos", &c.reply_qos, 0, 1));
  if (const toml::array* rules = in.Array("rules")) {
    for (size_t i = 0; i < rules->size(); ++i) {
      const std::string path = "mqtt.rules[" + std::to_string(i) + "]";
      const auto* t = (*rules)[i].as_table();
      if (!t) return InvalidArgument(path + ": expected a table ([[mqtt.rules]])");
      Rule r;
      RETURN_IF_ERROR(ParseRule(*t, path, &r));
      c.rules.push_back(std::move(r));
    }
  } else if (section.contains("rules")) {
    return in.Error("rules", "expected [[mqtt.rules]] tables");
  } else {
    c.rules = DefaultRules();
  }
  RETURN_IF_ERROR(in.CheckAllRead());
  return c;
}

bool TopicMatches(std::string_view filter, std::string_view topic) {
  const auto f = Levels(filter);
  const auto t = Levels(topic);
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return true;  // also matches the parent level ("a/#" matches "a")
    if (i >= t.size()) return false;
    if (f[i] != "+" && f[i] != t[i]) return false;
  }
  return f.size() == t.size();
}

bool IsValidDeviceId(std::string_view id) { return IsValidId(id, 64); }
bool IsValidRequestId(std::string_view id) { return IsValidId(id, 128); }

}  // namespace yard::mqtt
