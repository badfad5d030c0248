#include "master/plugins/mqtt/ingest.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace yard::mqtt {
namespace {

constexpr Micros kRetryMin = 100 * kMillis;
constexpr Micros kRetryMax = 2 * kSeconds;

// A result or payload as JSON: itself when it parses, else a JSON string.
nlohmann::json AsJson(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return text;
  return j;
}

std::string Hex(std::string_view bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

// Transient refusals: the same submit may succeed later.
bool IsTransient(const Status& st) {
  return st.code() == StatusCode::kResourceExhausted || st.code() == StatusCode::kUnavailable ||
         st.code() == StatusCode::kDeadlineExceeded;
}

}  // namespace

Ingest::Ingest(const MqttConfig& config, api::MasterApi& api, Publisher& out, Metrics& metrics,
               const Clock& clock)
    : config_(config), api_(api), out_(out), metrics_(metrics), clock_(clock) {}

bool Ingest::WantRead() const {
  return !paused_ && buffered_ < config_.max_buffered && clock_.Now() >= retry_at_;
}

Micros Ingest::paused_for() const { return paused_ ? clock_.Now() - paused_since_ : 0; }

void Ingest::Reject(const std::string& reason, const std::string& detail, const Origin* request) {
  metrics_.Add("mqtt.rejected." + reason);
  const Micros now = clock_.Now();
  if (now >= next_reject_log_) {  // at most one line a second, with how many it stands for
    spdlog::warn("mqtt: rejected ({}): {}{}", reason, detail,
                 rejects_unlogged_
                     ? fmt::format(" (and {} more since the last report)", rejects_unlogged_)
                     : "");
    rejects_unlogged_ = 0;
    next_reject_log_ = now + kSeconds;
  } else {
    ++rejects_unlogged_;
  }
  if (request && !request->request_id.empty()) {
    nlohmann::json j = {{"request_id", request->request_id},
                        {"state", "rejected"},
                        {"error", {{"code", reason}, {"message", detail}}}};
    Reply(*request, j.dump());
  }
}

void Ingest::Reply(const Origin& o, const std::string& json) {
  const std::string topic = !o.response_topic.empty()
                                ? o.response_topic
                                : config_.prefix + "/" + o.device + "/responses/" + o.request_id;
  if (out_.Publish(topic, json, config_.reply_qos, o.correlation)) {
    metrics_.Add("mqtt.replies");
  } else {
    metrics_.Add("mqtt.replies_failed");
  }
}

void Ingest::OnMessage(const Message& m) {
  const Micros now = clock_.Now();
  metrics_.Add("mqtt.received");
  // {prefix}/{device}/{rest}
  const std::string& prefix = config_.prefix;
  if (m.topic.size() <= prefix.size() + 1 || m.topic.compare(0, prefix.size(), prefix) != 0 ||
      m.topic[prefix.size()] != '/') {
    return Reject("unknown_topic", "topic '" + m.topic + "'", nullptr);
  }
  const size_t dev_start = prefix.size() + 1;
  const size_t dev_end = m.topic.find('/', dev_start);
  if (dev_end == std::string::npos)
    return Reject("unknown_topic", "topic '" + m.topic + "'", nullptr);
  const std::string device = m.topic.substr(dev_start, dev_end - dev_start);
  const std::string rest = m.topic.substr(dev_end + 1);
  const bool is_request = rest.starts_with("requests/");

  Origin origin;
  origin.received = now;
  origin.device = device;
  origin.request = is_request;
  origin.correlation = m.correlation;
  origin.response_topic = m.response_topic;
  if (!IsValidDeviceId(device)) {
    return Reject(
        "bad_device_id",
        "device id '" + device.substr(0, 80) + "' in topic '" + m.topic.substr(0, 200) + "'",
        nullptr);
  }
  if (m.payload.size() > config_.max_payload_bytes) {
    if (is_request && !m.correlation.empty()) origin.request_id = Hex(m.correlation);
    return Reject("too_large",
                  "payload of " + std::to_string(m.payload.size()) + " bytes from " + device +
                      " (limit " + std::to_string(config_.max_payload_bytes) + ")",
                  &origin);
  }

  const Rule* rule = nullptr;
  size_t rule_index = 0;
  for (size_t i = 0; i < config_.rules.size(); ++i) {
    if (TopicMatches(config_.rules[i].topic, rest)) {
      rule = &config_.rules[i];
      rule_index = i;
      break;
    }
  }

  if (is_request) {
    // The request id: the payload's "request_id", else MQTT 5 correlation data.
    std::string payload = m.payload;
    nlohmann::json body;
    const bool json = !rule || rule->format == Format::kJson;
    if (json) body = nlohmann::json::parse(m.payload, nullptr, false);
    if (json && body.is_object() && body.contains("request_id")) {
      const auto& id = body["request_id"];
      if (id.is_string()) origin.request_id = id.get<std::string>();
      if (id.is_number_unsigned() || id.is_number_integer()) origin.request_id = id.dump();
      if (!IsValidRequestId(origin.request_id)) {
        origin.request_id.clear();
        if (m.correlation.empty()) {
          return Reject("bad_request_id",
                        "request_id from " + device +
                            " must be 1..128 of "
                            "[A-Za-z0-9_.:-]",
                        nullptr);
        }
      }
    }
    if (origin.request_id.empty() && !m.correlation.empty()) {
      origin.request_id = IsValidRequestId(m.correlation) ? m.correlation : Hex(m.correlation);
    }
    if (origin.request_id.empty()) {
      return Reject(
          json && body.is_discarded() ? "bad_json" : "missing_request_id",
          "request from " + device + " on '" + rest + "' without a request_id (nowhere to reply)",
          nullptr);
    }
    if (!rule) {
      return Reject("unknown_request_type",
                    "no rule for '" + rest + "' (request " + origin.request_id + ")", &origin);
    }
    if (json) {
      if (body.is_discarded()) return Reject("bad_json", "request payload is not JSON", &origin);
      if (!body.is_object()) {
        return Reject("bad_json", "request payload must be a JSON object", &origin);
      }
      payload.clear();
      if (auto it = body.find("payload"); it != body.end()) {
        payload = it->is_string() ? it->get<std::string>() : it->dump();
      }
    }
    ++buffered_;
    Enqueue(*rule, rule->key == KeyBy::kNone ? "" : device, std::move(payload), std::move(origin));
    return;
  }

  if (!rule) return Reject("unknown_topic", "no rule for '" + rest + "' from " + device, nullptr);
  if (rule->format == Format::kJson &&
      !nlohmann::json::accept(m.payload.begin(), m.payload.end())) {
    return Reject("bad_json", "telemetry from " + device + " on '" + rest + "' is not JSON",
                  nullptr);
  }
  if (config_.shed_qos0_above > 0 && m.qos == 0 && ActiveEstimate() >= config_.shed_qos0_above) {
    metrics_.Add("mqtt.dropped.shed_qos0");
    return;
  }
  const std::string stream = rest.size() > 9 ? rest.substr(10) : "";  // after "telemetry/"
  std::string key;
  if (rule->key == KeyBy::kDevice) key = device;
  if (rule->key == KeyBy::kStream) key = stream.empty() ? device : device + "/" + stream;
  ++buffered_;
  if (rule->batch_count > 1) return AddReading(rule_index, device, key, m.payload, now);
  Enqueue(*rule, key, m.payload, std::move(origin));
}

void Ingest::Enqueue(const Rule& rule, const std::string& key, std::string payload, Origin origin) {
  Unit u;
  u.origin = std::move(origin);
  protocol::TaskSpec& t = rule.split.empty() ? u.task : u.job.emplace().task;
  if (u.job) {
    u.job->split = rule.split;
    u.job->aggregate = rule.aggregate;
    u.job->policy = rule.policy;
  }
  t.type = rule.type;
  t.payload = std::move(payload);
  t.key = key;
  t.priority = rule.priority;
  t.max_attempts = rule.max_attempts;
  t.timeout_ms = rule.timeout_ms;
  t.deadline_ms = rule.deadline_ms;
  t.requirements = rule.require;
  outgoing_.push_back(std::move(u));
}

void Ingest::AddReading(size_t rule_index, const std::string& device, const std::string& key,
                        const std::string& payload, Micros now) {
  const Rule& rule = config_.rules[rule_index];
  const std::string id = std::to_string(rule_index) + "/" + device + "/" + key;
  auto it = batches_.find(id);
  // A reading that would take the batch past the payload limit closes it first.
  if (it != batches_.end() &&
      it->second.payload.size() + payload.size() + 2 > config_.max_payload_bytes) {
    FlushBatch(it);
    it = batches_.end();
  }
  if (it == batches_.end()) {
    Batch b;
    b.rule = rule_index;
    b.device = device;
    b.key = key;
    b.first = now;
    it = batches_.emplace(id, std::move(b)).first;
    batch_due_.emplace(now + rule.batch_window, id);
  }
  Batch& b = it->second;
  if (rule.format == Format::kJson) {
    b.payload += b.count == 0 ? "[" : ",";
  } else if (b.count > 0) {
    b.payload += "\n";
  }
  b.payload += payload;
  ++b.count;
  if (b.count >= rule.batch_count) FlushBatch(it);
}

void Ingest::FlushBatch(std::map<std::string, Batch>::iterator it) {
  Batch& b = it->second;
  const Rule& rule = config_.rules[b.rule];
  if (rule.format == Format::kJson) b.payload += "]";
  Origin origin;
  origin.messages = b.count;
  origin.received = b.first;
  origin.device = b.device;
  metrics_.Add("mqtt.batches");
  Enqueue(rule, b.key, std::move(b.payload), std::move(origin));
  batches_.erase(it);
}

void Ingest::FlushAll() {
  while (!batches_.empty()) FlushBatch(batches_.begin());
  batch_due_.clear();
}

void Ingest::Tick() {
  const Micros now = clock_.Now();
  while (!batch_due_.empty() && batch_due_.begin()->first <= now) {
    const std::string id = std::move(batch_due_.begin()->second);
    const Micros due = batch_due_.begin()->first;
    batch_due_.erase(batch_due_.begin());
    auto it = batches_.find(id);
    // Stale entries (the batch filled up and a new one started later) are skipped.
    if (it == batches_.end() ||
        it->second.first + config_.rules[it->second.rule].batch_window != due) {
      continue;
    }
    FlushBatch(it);
  }
  SendNext();
  PollStats(now);
}

void Ingest::SendNext() {
  if (in_flight_ || outgoing_.empty() || clock_.Now() < retry_at_) return;
  if (outgoing_.front().job) {
    Unit u = std::move(outgoing_.front());
    outgoing_.pop_front();
    if (send_singly_ > 0) --send_singly_;
    in_flight_ = true;
    protocol::JobSpec job = *u.job;
    api_.SubmitJob(std::move(job),
                   [this, u = std::move(u)](StatusOr<protocol::JobSubmitReply> r) mutable {
                     OnJobSubmitted(std::move(u), r);
                   });
    return;
  }
  const size_t limit = send_singly_ > 0 ? 1 : config_.submit_batch;
  std::vector<Unit> units;
  std::vector<protocol::TaskSpec> specs;
  while (!outgoing_.empty() && !outgoing_.front().job && units.size() < limit) {
    specs.push_back(outgoing_.front().task);
    units.push_back(std::move(outgoing_.front()));
    outgoing_.pop_front();
  }
  if (send_singly_ > 0) --send_singly_;
  in_flight_ = true;
  sent_total_ += static_cast<int64_t>(specs.size());
  api_.Submit(std::move(specs),
              [this, units = std::move(units)](StatusOr<std::vector<uint64_t>> ids) mutable {
                OnSubmitted(std::move(units), ids);
              });
}

void Ingest::Retry(std::vector<Unit> units, const Status& why) {
  metrics_.Add("mqtt.submit_retries");
  retry_delay_ = retry_delay_ == 0 ? kRetryMin : std::min(retry_delay_ * 2, kRetryMax);
  retry_at_ = clock_.Now() + retry_delay_;
  // The core's own limit: wait for the queue to fall to resume_below.
  if (why.code() == StatusCode::kResourceExhausted) Pause("the core's queue is full");
  spdlog::warn("mqtt: the core refused {} task(s) for now, retrying in {} ms: {}", units.size(),
               retry_delay_ / kMillis, why.ToString());
  for (auto it = units.rbegin(); it != units.rend(); ++it) outgoing_.push_front(std::move(*it));
}

void Ingest::OnSubmitted(std::vector<Unit> units, const StatusOr<std::vector<uint64_t>>& ids) {
  in_flight_ = false;
  if (!ids.ok()) {
    sent_total_ -= static_cast<int64_t>(units.size());
    if (IsTransient(ids.status())) return Retry(std::move(units), ids.status());
    if (units.size() > 1) {
      // One bad task refuses the whole SUBMIT: send these one at a time to find it.
      send_singly_ = units.size();
      for (auto it = units.rbegin(); it != units.rend(); ++it) outgoing_.push_front(std::move(*it));
      return SendNext();
    }
    buffered_ -= units[0].origin.messages;
    Reject("invalid_task", ids.status().message(),
           units[0].origin.request ? &units[0].origin : nullptr);
    return SendNext();
  }
  retry_delay_ = 0;
  size_t messages = 0;
  for (size_t i = 0; i < units.size(); ++i) {
    Origin& o = units[i].origin;
    messages += o.messages;
    if (!o.request) continue;
    ++awaiting_reply_;
    const uint64_t id = (*ids)[i];
    api_.WatchTask(
        id, config_.reply_timeout, [this, o = std::move(o), id](StatusOr<protocol::TaskInfo> t) {
          --awaiting_reply_;
          nlohmann::json j = {{"request_id", o.request_id}, {"task_id", id}};
          if (!t.ok()) {
            j["state"] = t.status().code() == StatusCode::kDeadlineExceeded ? "timeout" : "unknown";
            j["error"] = t.status().message();
            if (t.status().code() == StatusCode::kDeadlineExceeded)
              metrics_.Add("mqtt.replies_timeout");
          } else {
            j["state"] = protocol::TaskStateName(t->state);
            if (t->state == protocol::TaskState::kSucceeded) j["result"] = AsJson(t->result);
            if (!t->error.empty()) j["error"] = t->error;
          }
          Reply(o, j.dump());
        });
  }
  buffered_ -= messages;
  if (ActiveEstimate() >= config_.pause_above) Pause("over pause_above");
  metrics_.Add("mqtt.tasks_submitted", units.size());
  metrics_.Add("mqtt.messages_committed", messages);
  SendNext();
}

void Ingest::OnJobSubmitted(Unit u, const StatusOr<protocol::JobSubmitReply>& reply) {
  in_flight_ = false;
  if (!reply.ok()) {
    if (IsTransient(reply.status())) {
      std::vector<Unit> units;
      units.push_back(std::move(u));
      return Retry(std::move(units), reply.status());
    }
    buffered_ -= u.origin.messages;
    Reject("invalid_job", reply.status().message(), u.origin.request ? &u.origin : nullptr);
    return SendNext();
  }
  retry_delay_ = 0;
  buffered_ -= u.origin.messages;
  metrics_.Add("mqtt.jobs_submitted");
  metrics_.Add("mqtt.messages_committed", u.origin.messages);
  if (u.origin.request) {
    ++awaiting_reply_;
    const uint64_t id = reply->job_id;
    api_.WatchJob(id, config_.reply_timeout,
                  [this, o = std::move(u.origin), id](StatusOr<protocol::JobInfo> job) {
                    --awaiting_reply_;
                    nlohmann::json j = {{"request_id", o.request_id}, {"job_id", id}};
                    if (!job.ok()) {
                      j["state"] = job.status().code() == StatusCode::kDeadlineExceeded ? "timeout"
                                                                                        : "unknown";
                      j["error"] = job.status().message();
                    } else {
                      j["state"] = protocol::JobStateName(job->state);
                      j["parts"] = job->parts;
                      j["succeeded"] = job->succeeded;
                      j["failed"] = job->failed;
                      if (!job->result.empty()) j["result"] = AsJson(job->result);
                      if (!job->error.empty()) j["error"] = job->error;
                    }
                    Reply(o, j.dump());
                  });
  }
  SendNext();
}

void Ingest::Pause(const char* why) {
  if (paused_) return;
  paused_ = true;
  paused_since_ = clock_.Now();
  metrics_.Add("mqtt.pauses");
  metrics_.Set("mqtt.paused", 1);
  spdlog::warn(
      "mqtt: pausing intake ({}): about {} tasks active in the core (pause_above {}, "
      "resume_below {})",
      why, ActiveEstimate(), config_.pause_above, config_.resume_below);
}

void Ingest::PollStats(Micros now) {
  if (now < next_stats_ || stats_in_flight_) return;
  next_stats_ = now + config_.stats_interval;
  // The oldest message not yet durable: how far ingestion lags behind the broker.
  Micros oldest = now;
  for (const auto& [id, b] : batches_) oldest = std::min(oldest, b.first);
  if (!outgoing_.empty()) oldest = std::min(oldest, outgoing_.front().origin.received);
  metrics_.Set("mqtt.lag_ms", static_cast<uint64_t>((now - oldest) / kMillis));
  metrics_.Set("mqtt.buffered", buffered_);
  metrics_.Set("mqtt.awaiting_reply", awaiting_reply_);
  stats_in_flight_ = true;
  const int64_t sent_at_request = sent_total_;
  api_.Stats([this, sent_at_request](StatusOr<std::map<std::string, uint64_t>> s) {
    stats_in_flight_ = false;
    if (!s.ok()) return;
    auto it = s->find("tasks.active");
    if (it == s->end()) return;
    core_active_ = it->second;
    sent_at_stats_ = sent_at_request;
    const Micros t = clock_.Now();
    if (ActiveEstimate() >= config_.pause_above) {
      Pause("over pause_above");
    } else if (paused_ && ActiveEstimate() <= config_.resume_below) {
      paused_ = false;
      metrics_.Set("mqtt.paused", 0);
      metrics_.Add("mqtt.paused_ms", static_cast<uint64_t>((t - paused_since_) / kMillis));
      spdlog::info("mqtt: resuming intake after {} ms: {} tasks active (resume_below {})",
                   (t - paused_since_) / kMillis, core_active_, config_.resume_below);
    }
  });
}

}  // namespace yard::mqtt
