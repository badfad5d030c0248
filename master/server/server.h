// Server: the master's event loop. One thread (the caller of Run) owns both ZeroMQ ROUTER
// sockets, the engine and the store; each turn it reads a bounded number of messages from
// each port, commits the turn's records to the store in one batch, then sends what waited on
// that commit (submit replies, result ACKs), dispatches ready tasks and serves timers.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/transport/socket.h"
#include "master/core/engine.h"
#include "master/server/options.h"
#include "master/server/reject_log.h"
#include "master/server/worker_pool.h"
#include "master/state/state_store.h"

namespace yard::server {

class Server {
 public:
  // Binds both ports and, with options.workers > 0, prepares the embedded worker pool.
  // `ctx`, `store` and `clock` must outlive the server.
  static StatusOr<std::unique_ptr<Server>> Create(const MasterOptions& options,
                                                  transport::Context& ctx, state::StateStore& store,
                                                  const Clock& clock);
  ~Server();

  // Serves until Stop(), then drains (stops intake and dispatch, lets running tasks report for
  // up to drain_timeout, stops embedded workers) and says DISCONNECT to every worker.
  Status Run();
  // Asks Run to stop. Thread-safe and async-signal-safe.
  void Stop();

  const std::string& client_endpoint() const { return client_endpoint_; }
  const std::string& worker_endpoint() const { return worker_endpoint_; }
  // The client port inside this process (inproc://): plugins' MasterApi connects here.
  const std::string& inproc_client_endpoint() const { return inproc_client_endpoint_; }
  // Counters and gauges kept outside the core (plugins), reported with the core's in STATS.
  // Set before Run(); must outlive the server.
  void SetExtraStats(const Metrics* metrics) { extra_stats_ = metrics; }
  // More fields for the ready file (the plugins' announcements). Set before Run().
  void SetReadyFields(std::map<std::string, std::string> fields) {
    ready_fields_ = std::move(fields);
  }

 private:
  Server(const MasterOptions& options, state::StateStore& store, const Clock& clock);

  core::Now Now() const { return {clock_.Now(), clock_.WallNow()}; }
  Status WriteReadyFile() const;
  // One loop turn; `draining` stops intake and dispatch.
  void Turn(int timeout_ms, bool draining);
  void HandleWorkerMessage(transport::Frames& frames, core::Now now, core::Effects& fx);
  void HandleClientMessage(transport::Frames& frames, core::Now now, core::Effects& fx,
                           bool draining);
  // Hands ready (committed) tasks to workers with credit.
  void DispatchReady(core::Now now);
  // Sends session messages at once and queues the rest behind the turn's commit.
  void CarryOut(core::Effects& fx);
  // Commits what is pending; on success sends what waited on it. On failure keeps it all for
  // the next turn (nothing acknowledging it leaves the master).
  void CommitPending(core::Now now);
  void ExpireWaiters(core::Now now);
  void ReplyTaskState(const std::string& conn, uint64_t req_id, uint64_t id);
  // The newest version of a task changed in this turn and not yet committed, if any.
  const protocol::TaskInfo* PendingTask(uint64_t id) const;
  StatusOr<std::optional<protocol::TaskInfo>> Lookup(uint64_t id) const;
  // An open job from the engine (live progress) or a finished one from the store.
  StatusOr<std::optional<protocol::JobInfo>> LookupJob(uint64_t id) const;
  // One LIST page: active tasks from the engine merged by id with finished ones from the store.
  StatusOr<protocol::ListReply> ListPage(const protocol::List& m) const;
  // Rebuilds open jobs: their records, then the outcome of their ended parts.
  Status RecoverJobs(core::Now now, size_t* jobs);
  int PollTimeoutMs(core::Now now) const;

  template <typename M>
  void SendWorker(const std::string& conn, const M& m);
  template <typename M>
  void SendClient(const std::string& conn, const M& m);
  void SendClientError(const std::string& conn, uint64_t req_id, const Status& status);
  void DisconnectWorker(const std::string& conn, protocol::DisconnectReason reason,
                        const std::string& why, core::Now now, core::Effects& fx);

  MasterOptions options_;
  state::StateStore& store_;
  const Clock& clock_;
  core::Engine engine_;
  RejectLog rejects_;
  std::unique_ptr<transport::Socket> workers_sock_;
  std::unique_ptr<transport::Socket> clients_sock_;
  transport::Notifier wake_;
  transport::Poller poller_;
  std::string client_endpoint_, worker_endpoint_, inproc_client_endpoint_;
  const Metrics* extra_stats_ = nullptr;
  std::map<std::string, std::string> ready_fields_;
  std::unique_ptr<WorkerPool> pool_;
  std::atomic<bool> stop_{false};
  Micros next_heartbeat_ = 0;
  Micros next_supervise_ = 0;

  // Rebuilds the engine's queues and idempotency keys from the store (before serving).
  Status Recover();
  // Why requests that change state (SUBMIT, DEAD_REQUEUE, DEAD_PURGE) are refused now, if
  // they are: the master is draining, or the store's last commit failed.
  Status WriteRefusal(bool draining) const;
  // DEAD_REQUEUE (requeue) or DEAD_PURGE: the listed dead letters, or with `all` one page.
  void HandleDeadSelection(const std::string& conn, uint64_t req_id, std::vector<uint64_t> ids,
                           bool all, bool requeue, core::Now now, core::Effects& fx, bool draining);
  // Up to `limit` dead letters after `after_id`; `more` says whether others follow.
  StatusOr<std::vector<protocol::TaskInfo>> DeadPage(uint64_t after_id, size_t limit,
                                                     bool* more) const;

  // Records not yet committed, and everything that acknowledges them.
  struct Pending {
    state::Batch batch;
    std::vector<uint64_t> submitted;  // ids that may be dispatched once committed
    struct Reply {
      std::string conn;
      protocol::Command command;
      std::string body;
    };
    std::vector<Reply> replies;
    std::vector<std::pair<std::string, protocol::Ack>> acks;
    std::vector<std::pair<std::string, protocol::TaskRef>> cancels;  // CANCEL_TASKS to send
    std::vector<uint64_t> finished;                                  // for waiters
  };
  Pending pending_;
  Status store_status_;  // the last commit's outcome; submits are refused while it is an error
  Micros next_commit_error_log_ = 0;

  struct Waiter {
    std::string conn;
    uint64_t req_id;
    uint64_t task_id;
  };
  uint64_t next_waiter_ = 1;
  std::map<uint64_t, Waiter> waiters_;                              // by waiter sequence
  std::unordered_map<uint64_t, std::vector<uint64_t>> waiting_on_;  // task id -> sequences
  std::multimap<Micros, uint64_t> waiter_deadlines_;
};

}  // namespace yard::server
