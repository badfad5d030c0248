// Ingest: the mqtt plugin's logic without the network. It turns device messages into tasks
// and jobs by the routing rules (batching telemetry per device), hands them to the core in
// order through MasterApi, watches requests until their task or job ends and publishes the
// reply, and decides when the plugin may read from the broker (backpressure).
//
// Order: units (a task, a batch, a job) go to the core strictly in the order they were made,
// with one SUBMIT (or JOB_SUBMIT) in flight at a time. A refused submit is retried before
// anything after it, so a device's tasks are created in the order its messages arrived.
// Batching comes from the pipeline itself: what arrives while one SUBMIT waits for its
// group commit goes in the next one.
//
// Single-threaded: the plugin's loop thread calls everything, including the API's Process().
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "master/api/master_api.h"
#include "master/plugins/mqtt/config.h"

namespace yard::mqtt {

struct Message {
  std::string topic;
  std::string payload;
  int qos = 0;
  std::string correlation;     // MQTT 5 correlation data (empty: none)
  std::string response_topic;  // MQTT 5 response topic (empty: none)
};

// Where replies go (the MQTT client, or a fake in tests).
class Publisher {
 public:
  virtual ~Publisher() = default;
  // Queues a message for the broker; false if it cannot (not connected, too large).
  virtual bool Publish(const std::string& topic, const std::string& payload, int qos,
                       const std::string& correlation) = 0;
};

class Ingest {
 public:
  Ingest(const MqttConfig& config, api::MasterApi& api, Publisher& out, Metrics& metrics,
         const Clock& clock);

  // One message from the broker. Bad input is counted as mqtt.rejected.<reason>, logged
  // (rate-limited) and, for a request with a known id, answered on its response topic.
  void OnMessage(const Message& m);
  // Whether the plugin may read more from the broker now.
  bool WantRead() const;
  // Flushes due batches, sends the next submit, reads the core's queue depth, and updates
  // the gauges. Call after every poll.
  void Tick();
  // Stop: flushes every batch now (its readings then go out with the next submit).
  void FlushAll();
  // Messages read from the broker and not yet durable in the core.
  size_t buffered() const { return buffered_; }
  // Requests whose reply has not been published yet.
  size_t awaiting_reply() const { return awaiting_reply_; }
  // True while the core's queue is over pause_above (until it falls to resume_below).
  bool paused() const { return paused_; }
  // How long reading has been paused for the queue (0 when not paused).
  Micros paused_for() const;

 private:
  struct Origin {
    uint32_t messages = 1;
    Micros received = 0;  // when its oldest message was read
    bool request = false;
    std::string device, request_id, correlation, response_topic;
  };
  // A task or a job for the core, with what it came from.
  struct Unit {
    protocol::TaskSpec task;
    std::optional<protocol::JobSpec> job;
    Origin origin;
  };
  struct Batch {
    size_t rule = 0;
    std::string device, key;
    std::string payload;  // json: "[r1,r2" (closed on flush); raw: lines
    uint32_t count = 0;
    Micros first = 0;
  };

  void Reject(const std::string& reason, const std::string& detail, const Origin* request);
  void Reply(const Origin& o, const std::string& json);
  void AddReading(size_t rule_index, const std::string& device, const std::string& key,
                  const std::string& payload, Micros now);
  void FlushBatch(std::map<std::string, Batch>::iterator it);
  // Queues the task (or, for a rule with a splitter, the job) that `payload` becomes.
  void Enqueue(const Rule& rule, const std::string& key, std::string payload, Origin origin);
  void SendNext();
  void OnSubmitted(std::vector<Unit> units, const StatusOr<std::vector<uint64_t>>& ids);
  void OnJobSubmitted(Unit unit, const StatusOr<protocol::JobSubmitReply>& reply);
  // Puts `units` back at the front (in order) to be sent again after a back-off.
  void Retry(std::vector<Unit> units, const Status& why);
  void PollStats(Micros now);

  const MqttConfig& config_;
  api::MasterApi& api_;
  Publisher& out_;
  Metrics& metrics_;
  const Clock& clock_;

  std::map<std::string, Batch> batches_;          // by rule + key
  std::multimap<Micros, std::string> batch_due_;  // flush time -> batch (may be stale)
  std::deque<Unit> outgoing_;
  bool in_flight_ = false;
  size_t send_singly_ = 0;  // after an invalid batch: send this many units one at a time
  Micros retry_at_ = 0;
  Micros retry_delay_ = 0;
  size_t buffered_ = 0;
  size_t awaiting_reply_ = 0;

  // The core's active tasks: the last STATS reading plus the tasks this plugin has sent
  // since that request (the core answers in order, so those are not in the reading), so
  // that a fast intake pauses at pause_above, not one stats period late.
  uint64_t core_active_ = 0;
  int64_t sent_total_ = 0;  // tasks sent in SUBMITs, less those refused
  int64_t sent_at_stats_ = 0;
  uint64_t ActiveEstimate() const {
    return core_active_ + static_cast<uint64_t>(std::max<int64_t>(0, sent_total_ - sent_at_stats_));
  }
  void Pause(const char* why);
  bool stats_in_flight_ = false;
  Micros next_stats_ = 0;
  bool paused_ = false;
  Micros paused_since_ = 0;
  Micros next_reject_log_ = 0;
  uint64_t rejects_unlogged_ = 0;
};

}  // namespace yard::mqtt
