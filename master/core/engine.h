// Engine: the master's task and worker bookkeeping. Pure logic: no I/O, no clock calls, no
// threads. Every call takes the current time and reports what must happen next (records to
// commit, messages to send) in an Effects value that the server carries out.
//
// Guarantees kept here:
//  - a task is dispatched only after the server reports its record committed (OnCommitted);
//  - a worker never has more tasks out than the credit it granted;
//  - a task goes only to a worker that registered its type and announced every tag it
//    requires;
//  - tasks with the same key run one at a time, in submit order (the head of each key's line
//    is the only one eligible to run; it stays the head through retries);
//  - among eligible tasks the highest priority goes first, where waiting raises a task's
//    priority by one level per `aging` (so low priorities still progress); ties go to the task
//    that became eligible first;
//  - a delayed task (delay, not-before) is not dispatched before its time, and a task with a
//    deadline is never dispatched after it: it expires instead;
//  - a cancelled task that is running is reported to its worker (CANCEL_TASKS);
//  - a job's parts are ordinary tasks with consecutive ids; when they have all ended the job
//    is aggregated (or its reduce task created), and under fail-fast the first failed part
//    fails the job and cancels the others;
//  - a task whose attempt fails (FAIL_RETRY, lease expiry, worker death) runs again after an
//    exponential back-off with jitter, until max_attempts failures make it a dead letter;
//  - a submit that repeats an idempotency key seen within its TTL gets the first task's id;
//  - a result is accepted once per task; later ones are counted and acknowledged so the worker
//    can forget them.
// Thread-compatible: the server's event-loop thread owns it.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "common/protocol/messages.h"
#include "common/status.h"
#include "master/jobs/aggregate.h"

namespace yard::core {

// The current time as the engine sees it: monotonic for deadlines, wall for timestamps.
struct Now {
  Micros mono = 0;
  Micros wall = 0;
};

// Opaque identity of a worker connection (the ZeroMQ routing id on the worker port).
using ConnId = std::string;

struct EngineConfig {
  uint32_t default_timeout_ms = 30000;
  uint32_t default_max_attempts = 3;
  uint32_t heartbeat_ms = 1000;
  uint32_t liveness = 3;
  uint32_t max_batch = 256;             // tasks per TASKS message
  uint64_t max_batch_bytes = 8u << 20;  // payload bytes per TASKS message (one task may exceed it)
  uint32_t max_message_bytes = 16u << 20;  // announced to workers in WELCOME
  uint64_t max_active = 1000000;           // queued + dispatched; beyond it submits are refused
  uint32_t max_payload_bytes = 1 << 20;
  uint64_t first_task_id = 1;
  // Retry back-off: the n-th failure waits base * 2^(n-1), capped at max, then jittered to a
  // uniform point in its upper half (so retries of a burst of failures spread out).
  Micros retry_backoff = kSeconds;
  Micros retry_backoff_max = 300 * kSeconds;
  Micros idempotency_ttl = 24LL * 3600 * kSeconds;
  // A task waiting this long to be dispatched counts one priority level higher; 0: no aging.
  Micros aging = 10 * kSeconds;
  uint32_t max_job_tasks = 100000;  // parts one job may create
  uint64_t epoch = 1;  // the store's epoch: makes session ids unique across master restarts
  uint64_t seed = 0;   // for the back-off jitter; 0: random

  Status Validate() const;
};

// An idempotency key first used by a submit, to be stored with it.
struct IdemPut {
  std::string key;
  uint64_t id = 0;
  int64_t expires_us = 0;  // wall clock
};

// What the server must do after an engine call. Appended to, never cleared, by the engine.
struct Effects {
  // Task records created or changed that must be committed before anything acknowledging them
  // is sent.
  std::vector<protocol::TaskInfo> store_puts;
  // Sent right away (session management).
  std::vector<std::pair<ConnId, protocol::Welcome>> welcomes;
  std::vector<std::pair<ConnId, protocol::Disconnect>> disconnects;
  // Sent only after store_puts are committed.
  std::vector<std::pair<ConnId, protocol::Ack>> acks;
  // Tasks that reached a terminal state (for waiters).
  std::vector<uint64_t> finished;
  // Dead letters requeued (their new record is in store_puts): remove them from the dead set.
  std::vector<uint64_t> dead_removed;
  std::vector<IdemPut> idem_puts;
  // Tasks the engine created itself (job parts, reduce tasks): eligible once committed, so
  // the server passes them to OnCommitted with the turn's submits.
  std::vector<uint64_t> created;
  // Job records created or changed (committed with store_puts).
  std::vector<protocol::JobInfo> job_puts;
  // Running executions cancelled: sent after the commit.
  std::vector<std::pair<ConnId, protocol::TaskRef>> cancels;
};

class Engine {
 public:
  explicit Engine(const EngineConfig& config);

  const EngineConfig& config() const { return config_; }

  // ---- clients

  // Validates every spec, then queues them all or none. Returns the ids in order: new ones, or
  // for a spec whose idempotency key is still remembered, the id of the task it named. New
  // tasks become eligible to run once OnCommitted() names them.
  // kInvalidArgument for a bad spec (message names the task index and field),
  // kResourceExhausted when the queue limit would be passed.
  // Takes the specs by value so a caller done with them can move their payloads in.
  StatusOr<std::vector<uint64_t>> Submit(std::vector<protocol::TaskSpec> specs, Now now,
                                         Effects& fx);

  // Runs dead letters again: each becomes queued with a fresh set of attempts (its attempt
  // count goes on, so (id, attempt) stays unique). Eligible once OnCommitted() names them.
  // kResourceExhausted when the queue limit would be passed; kFailedPrecondition if one is
  // not dead or is active.
  Status Readmit(std::vector<protocol::TaskInfo> dead, Now now, Effects& fx);

  // ---- recovery (before serving)

  // Rebuilds the queues from a store's active records and idempotency keys, one call per
  // record or key, in any order; then FinishRestore() once. Restored tasks count as committed;
  // unkeyed ones join their priority queue in call order (the store hands them over by priority and
  // id), keyed ones are lined up by id (submit order) at the end, and retries keep their back-off.
  void Restore(protocol::TaskInfo&& record, Now now);
  void FinishRestore(Now now);
  void RestoreIdempotencyKey(const std::string& key, uint64_t id, int64_t expires_us);
  // No dispatch before `mono`: after a restart, workers get one liveness period to come back
  // and report what they finished while the master was away.
  void HoldDispatchUntil(Micros mono) { dispatch_after_ = mono; }

  // The records of these submitted tasks are durable: they may now be dispatched.
  void OnCommitted(const std::vector<uint64_t>& ids);

  // Tasks in id order after `after_id` matching `filter` (active ones only), without payload.
  std::vector<protocol::TaskInfo> ListActive(const protocol::List& filter, size_t limit) const;
  // Whether `t` passes LIST's filters (state, type, key, job; not the after_id cursor).
  static bool MatchesList(const protocol::List& filter, const protocol::TaskInfo& t);

  // ---- jobs

  // Splits the job's payload into parts (one task each, consecutive ids after the job's id)
  // and queues them all, or nothing: kInvalidArgument for a bad spec, splitter, aggregator or
  // payload, or more than max_job_tasks parts; kResourceExhausted when the queue limit would
  // be passed. The parts are in fx.created.
  StatusOr<protocol::JobSubmitReply> SubmitJob(const protocol::JobSpec& spec, Now now, Effects& fx);
  // The job with live progress, if it is still open (running or reducing); nullopt otherwise
  // (it may be finished: ask the store).
  std::optional<protocol::JobInfo> FindJob(uint64_t id) const;
  // Cancels an open job: its active parts and reduce task are cancelled. kNotFound if the job
  // is not open.
  StatusOr<protocol::JobInfo> CancelJob(uint64_t id, Now now, Effects& fx);
  // Recovery, around Restore(): RestoreJob for every open job before the tasks; then, after
  // FinishRestore, RestoreEndedPart for each part (and reduce task) of those jobs that is not
  // active, with its stored record (nullopt if it is gone: counted as failed); then
  // FinishJobRestore, which settles the jobs whose parts have all ended.
  void RestoreJob(protocol::JobInfo&& job);
  void RestoreEndedPart(uint64_t job_id, uint64_t task_id,
                        const std::optional<protocol::TaskInfo>& record);
  void FinishJobRestore(Now now, Effects& fx);
  // Ids of the open jobs' part tasks (and reduce tasks) that are not active, for recovery.
  std::vector<std::pair<uint64_t, uint64_t>> EndedPartIds() const;

  // Cancels a queued or dispatched task (a dispatched one's result will be ignored).
  // Returns the state after the call; kNotFound if the engine does not hold the task (it may
  // be finished: ask the store).
  StatusOr<protocol::TaskState> Cancel(uint64_t id, Now now, Effects& fx);

  // The task's record if it is active (queued or dispatched); nullopt otherwise.
  std::optional<protocol::TaskInfo> Find(uint64_t id) const;
  bool IsActive(uint64_t id) const { return tasks_.contains(id); }

  // ---- workers

  bool IsKnownWorker(const ConnId& conn) const { return workers_.contains(conn); }
  // Any message from a known worker proves it alive.
  void Touch(const ConnId& conn, Now now);
  void OnHello(const ConnId& conn, const protocol::Hello& hello, Now now, Effects& fx);
  void OnResults(const ConnId& conn, const protocol::Results& results, Now now, Effects& fx);
  void OnCredit(const ConnId& conn, uint32_t credit);
  void OnExtend(const ConnId& conn, const protocol::Extend& extend, Now now);
  // The worker said goodbye: its remaining tasks go back to the queue without a failure.
  void OnDisconnect(const ConnId& conn, Now now, Effects& fx);

  // ---- time

  // Declares silent workers dead and expires leases. Call at least every heartbeat.
  void Tick(Now now, Effects& fx);
  // When Tick next has work (earliest lease or liveness deadline); nullopt if none.
  std::optional<Micros> NextDeadline() const;

  // Hands ready tasks to workers with credit, in batches. Call after the turn's commit so only
  // committed tasks go out.
  std::vector<std::pair<ConnId, protocol::Tasks>> Dispatch(Now now);

  // ---- introspection

  std::vector<ConnId> WorkerConns() const;
  std::vector<protocol::WorkerInfo> WorkerInfos(Now now) const;
  // Counters and gauges, by name (see docs/operations.md). Besides the plain ones (tasks.submitted,
  // tasks.queued, ...):
  //   tasks.queued_by_priority.P      queued tasks of priority P (0..9), present ones only
  //   tasks.active_by_type.TYPE       queued or running tasks of TYPE
  //   tasks.ended_by_type.TYPE.STATE  tasks of TYPE that ended in STATE
  //   task_latency_us.le.B            tasks that ended within B us of their submit (cumulative
  //                                   over the bounds of kLatencyBoundsUs; "inf" for all),
  //   task_latency_us.sum / .count    and their sum and count (a Prometheus-style histogram).
  // Types beyond the first kMaxTrackedTypes share the name "_other".
  std::map<std::string, uint64_t> Stats() const;
  static constexpr std::array<uint64_t, 16> kLatencyBoundsUs = {
      250,    500,    1000,   2500,    5000,    10000,   25000,    50000,
      100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 60000000};
  static constexpr size_t kMaxTrackedTypes = 256;
  // Bumps a named counter (used by the server for rejected inputs).
  void Count(const std::string& name, uint64_t n = 1) { counters_[name] += n; }
  uint64_t queued() const { return queued_; }
  uint64_t active() const { return tasks_.size(); }
  size_t open_jobs() const { return jobs_.size(); }

 private:
  // Ids of ready tasks by priority, each in the order they became eligible. An id whose task
  // has left the ready state since is skipped when it reaches the front.
  using PriorityQueues = std::array<std::deque<uint64_t>, protocol::kLowestPriority + 1>;
  // Where ready tasks of one type and set of required tags wait.
  struct Route {
    std::string type;
    std::vector<std::string> requirements;  // sorted, unique
    PriorityQueues queues;
  };
  struct Worker;
  struct KeyLine {
    uint64_t head = 0;  // the one task of this key that may run
    // The tasks behind it, in submit order, from waiting[next]. A vector rather than a deque:
    // most keys hold one task, and an empty libstdc++ deque already allocates 512 bytes.
    std::vector<uint64_t> waiting;
    size_t next = 0;
  };
  using Keys = std::unordered_map<std::string, KeyLine>;
  // An active task, kept compact because a master may hold millions (docs/benchmarks.md):
  // Record() rebuilds its protocol::TaskInfo. Its type and required tags are its route's, the
  // worker running it is its holder, its key is its line's in keys_, and the strings few tasks
  // ever set are in `extra`.
  struct Task {
    struct Extra {
      std::string idempotency_key;
      std::string error;   // why the last attempt failed, for a task waiting to run again
      std::string worker;  // the worker of the last attempt, once it no longer holds it
    };
    uint64_t id = 0;
    uint64_t job_id = 0;
    Keys::value_type* line = nullptr;  // its key and the line of tasks sharing it; null: no key
    std::string payload;
    int64_t submitted_us = 0;  // wall clock, as in TaskInfo
    int64_t dispatched_us = 0;
    int64_t run_after_us = 0;
    int64_t deadline_us = 0;
    uint32_t attempt = 0;
    uint32_t failures = 0;
    uint32_t max_attempts = 0;
    uint32_t timeout_ms = 0;
    uint32_t part = 0;
    protocol::TaskState state = protocol::TaskState::kQueued;
    uint8_t priority = 0;
    bool in_ready = false;    // has a live entry in its route's queues (eligible to run)
    bool committed = false;   // its submit record is durable
    bool want_ready = false;  // eligible to run, waiting only for its commit
    bool in_backoff = false;  // queued, waiting for its run_after_us
    Route* route = nullptr;
    Worker* holder = nullptr;  // running the current attempt, if dispatched
    // Monotonic. Queued: when it last became eligible (for aging). Dispatched: its lease
    // deadline.
    Micros when = 0;
    std::unique_ptr<Extra> extra;

    Extra& MutableExtra() {
      if (!extra) extra = std::make_unique<Extra>();
      return *extra;
    }
    void SetError(std::string error) {
      if (!error.empty() || extra) MutableExtra().error = std::move(error);
    }
  };
  struct Worker {
    ConnId conn;
    protocol::Hello hello;
    uint64_t session = 0;
    uint32_t credit = 0;
    std::unordered_set<uint64_t> inflight;
    Micros last_seen = 0;
    Micros connected_wall = 0;
    uint64_t completed = 0;
    uint64_t failed = 0;
    std::vector<std::string> tags;  // sorted
    uint64_t routes_version = 0;    // routes_ is current when equal to routes_version_
    std::vector<Route*> routes;     // the routes whose tasks it can run
  };
  struct Job {
    protocol::JobInfo info;  // progress counters hold ended parts only (see FindJob)
    jobs::AggregateSpec aggregate;
    jobs::Aggregation aggregation;
    bool reduce_ended = false;
    protocol::TaskInfo reduce_outcome;  // state, result and error of the ended reduce task
  };
  struct Lease {
    Micros deadline;
    uint64_t id;
    uint32_t attempt;
    bool operator>(const Lease& o) const { return deadline > o.deadline; }
  };
  struct Scheduled {  // a retry waiting out its back-off
    Micros due;       // monotonic
    uint64_t id;
    int64_t run_after_us;
    bool operator>(const Scheduled& o) const { return due > o.due; }
  };
  struct IdemEntry {
    uint64_t id;
    int64_t expires_us;
  };
  struct Deadline {  // a queued task that expires if not started by then
    Micros due;      // monotonic
    uint64_t id;
    bool operator>(const Deadline& o) const { return due > o.due; }
  };

  // `check_payload` false for a job's spec, whose payload is the whole input.
  // `where` prefixes error messages.
  Status ValidateSpec(const protocol::TaskSpec& spec, const std::string& where, Now now,
                      bool check_payload = true) const;
  // Creates a queued task from `spec` (already validated) with the next id.
  Task& CreateTask(const protocol::TaskSpec& spec, std::string payload, Now now, Effects& fx,
                   uint64_t job_id = 0, uint32_t part = 0);
  Route* RouteFor(const std::string& type, const std::vector<std::string>& requirements);
  // Whether a task needing `requirements` would open a route past the limit.
  bool RouteLimitReached(const std::string& type,
                         const std::vector<std::string>& requirements) const;
  void TrackDeadline(const Task& t, Now now);
  // Cancels one active task, telling its worker if it runs.
  void CancelTask(Task& t, const std::string& reason, Now now, Effects& fx);
  // A part or reduce task of an open job ended: updates the job's counts and aggregation.
  void RecordPart(const protocol::TaskInfo& info);
  // Moves a job on when it can: fails it (fail-fast), creates its reduce task or finishes it.
  void SettleJob(uint64_t job_id, Now now, Effects& fx);
  void CloseJob(Job& job, protocol::JobState state, Now now, Effects& fx);
  // kResourceExhausted (counting `refused` tasks) unless `adding` more tasks fit the limit.
  Status Admit(size_t adding, size_t refused);
  void MakeReady(Task& t);
  // MakeReady once the task's submit is committed.
  void Enqueue(Task& t, Now now);
  // Makes a queued task eligible: at once, or after its run_after_us back-off.
  void Arm(Task& t, Now now);
  // The line of tasks with this key (created if new), or null for no key.
  Keys::value_type* LineOf(std::string key);
  // Adds a queued task to its key's line (or arms it when it has no key or heads the line).
  void JoinLine(Task& t, Now now);
  // Ends a task: records it, releases its key, reports it finished.
  void Finish(Task& t, protocol::TaskState state, Now now, Effects& fx, std::string result = {});
  // The current attempt did not complete. Counts a failure if `failed` and requeues the task
  // after a back-off or, at max_attempts failures, makes it a dead letter; without a failure
  // it is requeued at once.
  void Requeue(Task& t, bool failed, const std::string& reason, Now now, Effects& fx);
  Micros Backoff(uint32_t failures);
  void ExpireIdempotencyKeys(int64_t now_wall);
  void DetachFromHolder(Task& t);
  // Undoes the bookkeeping of the task's current state (gauges, ready entry, holder).
  void LeaveState(Task& t);
  // Takes `conn` by value: callers often pass a reference into the worker it erases.
  void RemoveWorker(ConnId conn, bool count_failures, const std::string& reason, Now now,
                    Effects& fx);
  void RegisterWorker(const ConnId& conn, const protocol::Hello& hello, Now now, Effects& fx);
  // Pops the next runnable task id this worker can handle, or 0.
  uint64_t PopFor(Worker& w, Micros now);

  EngineConfig config_;
  uint64_t next_id_;
  uint64_t next_session_ = 1;
  std::unordered_map<uint64_t, Task> tasks_;       // active: queued or dispatched
  std::unordered_map<std::string, Route> routes_;  // by type + requirements; lazy deletion
  uint64_t routes_version_ = 1;                    // bumped when a route is added
  Keys keys_;
  std::priority_queue<Lease, std::vector<Lease>, std::greater<>> leases_;  // lazy deletion
  std::priority_queue<Scheduled, std::vector<Scheduled>, std::greater<>> scheduled_;  // lazy
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> deadlines_;    // lazy
  std::unordered_map<uint64_t, Job> jobs_;                                            // open jobs
  std::unordered_map<std::string, IdemEntry> idem_;
  std::deque<std::pair<int64_t, std::string>> idem_expiry_;  // (expires_us, key), oldest first
  std::mt19937_64 rng_;
  Micros dispatch_after_ = 0;
  std::vector<uint64_t> restored_keyed_;  // between Restore and FinishRestore
  std::unordered_map<ConnId, Worker> workers_;
  std::unordered_map<std::string, ConnId> conn_by_worker_id_;
  std::vector<ConnId> rotation_;  // round-robin order of worker connections
  size_t rotation_start_ = 0;
  uint64_t queued_ = 0;       // state queued, ready or behind its key
  uint64_t ready_count_ = 0;  // queued and eligible to run
  uint64_t dispatched_ = 0;
  uint64_t scheduled_count_ = 0;  // queued, waiting for a delay or retry back-off
  std::map<std::string, uint64_t> counters_;
  // The operators' views of Stats(): by priority, by type, and end-to-end latency.
  std::array<uint64_t, protocol::kLowestPriority + 1> queued_by_priority_{};
  struct TypeCounts {
    uint64_t active = 0;
    std::array<uint64_t, 8> ended{};  // by TaskState
  };
  std::unordered_map<std::string, TypeCounts> by_type_;  // never shrinks: a type keeps its slot
  std::array<uint64_t, kLatencyBoundsUs.size() + 1> latency_buckets_{};  // last: over the bounds
  uint64_t latency_sum_us_ = 0;
  uint64_t latency_count_ = 0;
  // A task enters (+1) or leaves (-1) the queued state.
  void CountQueued(const Task& info, int delta) {
    uint64_t& of_priority =
        queued_by_priority_[std::min<size_t>(info.priority, protocol::kLowestPriority)];
    if (delta > 0) {
      ++queued_;
      ++of_priority;
    } else {
      --queued_;
      --of_priority;
    }
  }
  TypeCounts& CountsOf(const std::string& type);
  void RecordEnd(const protocol::TaskInfo& info, protocol::TaskState state, Now now);
  // The worker running the task, or that ran its last attempt; empty if none.
  static const std::string& WorkerName(const Task& t);
  // A queued task made from a stored record (recovery, a dead letter requeued).
  Task& Adopt(protocol::TaskInfo&& record);
  // The task's record; without its payload unless `with_payload`.
  protocol::TaskInfo Record(const Task& t, bool with_payload) const;
};

}  // namespace yard::core
