// Session: a worker's I/O side. One thread (the caller of Run) owns one DEALER per master and
// speaks the worker protocol (docs/protocol.md): HELLO/WELCOME, credit, heartbeats, results
// kept until ACKed and resent after every new WELCOME, reconnection with exponential back-off.
// Tasks run on the Executor's threads. CANCEL_TASKS skips queued tasks and flags running ones;
// lease renewals (late starts, TaskContext::Extend) leave as EXTEND.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/protocol/messages.h"
#include "common/transport/socket.h"
#include "worker/executor.h"
#include "worker/handlers/registry.h"

namespace yard::worker {

struct WorkerOptions {
  std::vector<std::string> connect;  // master worker-port endpoints
  std::string id;                    // worker_id; empty: <hostname>-<pid>
  uint32_t threads = 2;
  uint32_t credit = 0;  // tasks prefetched per master; 0: 128 per thread
  Micros drain_timeout = 30 * kSeconds;
  std::vector<std::string> tags;  // announced in HELLO; see ValidateTags
};

constexpr size_t kMaxTags = 32;
constexpr size_t kMaxTagBytes = 64;

// kInvalidArgument naming the first bad tag unless there are at most kMaxTags tags, each
// 1..kMaxTagBytes bytes of [A-Za-z0-9._-].
Status ValidateTags(const std::vector<std::string>& tags);

class Session {
 public:
  // `registry` and `clock` must outlive the session.
  Session(const WorkerOptions& options, transport::Context& ctx, const HandlerRegistry& registry,
          const Clock& clock);
  ~Session();

  // Serves until Stop(), then drains: tasks not started are released back to the master,
  // running ones finish (up to drain_timeout), results are delivered, and each master gets
  // DISCONNECT. Returns an error only for a fatal condition (a duplicate worker id, or
  // options.tags failing ValidateTags).
  Status Run();
  // Thread-safe and async-signal-safe.
  void Stop();

  uint64_t completed() const { return completed_; }

 private:
  enum class Phase { kIdle, kHello, kActive };
  struct ResultKey {
    uint64_t id;
    uint32_t attempt;
    auto operator<=>(const ResultKey&) const = default;
  };
  struct Link {
    std::string endpoint;
    std::unique_ptr<transport::Socket> sock;
    Phase phase = Phase::kIdle;
    Micros phase_since = 0;
    Micros last_recv = 0;
    Micros last_send = 0;
    Micros reconnect_at = 0;
    Micros backoff = 0;
    uint32_t heartbeat_ms = 1000;
    uint32_t liveness = 3;
    uint32_t max_message_bytes = 16u << 20;  // from WELCOME
    uint32_t master_credit = 0;              // tasks the master may still send us
    uint32_t held = 0;                       // tasks of this link queued or running here
    uint32_t owed_credit = 0;  // freed while not joined; granted after the next WELCOME
    std::map<ResultKey, protocol::ResultMsg> unacked;
  };

  Status Connect(Link& l, Micros now);
  void ScheduleReconnect(Link& l, Micros now, const std::string& why);
  void SendHello(Link& l, Micros now);
  template <typename M>
  bool Send(Link& l, const M& m, Micros now);
  Status HandleMessage(size_t index, transport::Frames& frames, Micros now);
  void SendResults(Link& l, std::vector<protocol::ResultMsg> results, uint32_t credit, Micros now);
  void CollectDone(Micros now);
  void Timers(Micros now);
  void Release(std::vector<Job> jobs, Micros now);
  void RebuildPoller();
  uint32_t Window() const;

  WorkerOptions options_;
  transport::Context& ctx_;
  const HandlerRegistry& registry_;
  const Clock& clock_;
  protocol::Hello hello_;
  transport::Notifier wake_;
  Executor executor_;
  std::vector<Link> links_;
  std::unique_ptr<transport::Poller> poller_;
  std::vector<size_t> poll_index_;  // per link
  bool poller_dirty_ = true;
  std::atomic<bool> stop_{false};
  bool draining_ = false;
  uint64_t completed_ = 0;
};

}  // namespace yard::worker
