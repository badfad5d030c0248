// Yard wire messages: plain structs, one per command body. docs/protocol.md is the normative
// description; codec.cc encodes and decodes these and is the only file that knows MessagePack.
//
// Every message travels as ZeroMQ frames [header][body]: the 4-byte header 'Y' 'D' version
// command, then one MessagePack array whose fields are listed below in order. Decoders accept
// arrays with more fields than they know (later minor additions) and ignore the extra ones.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace yard::protocol {

constexpr uint8_t kMagic0 = 'Y';
constexpr uint8_t kMagic1 = 'D';
constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderSize = 4;

enum class Command : uint8_t {
  // Worker port (worker DEALER <-> master ROUTER).
  kHello = 0x01,       // W->M
  kWelcome = 0x02,     // M->W
  kTasks = 0x03,       // M->W
  kResults = 0x04,     // W->M
  kCredit = 0x05,      // W->M
  kAck = 0x06,         // M->W
  kHeartbeat = 0x07,   // both
  kExtend = 0x08,      // W->M
  kDisconnect = 0x09,  // both
  // Client port (client DEALER <-> master ROUTER): requests carry a req_id echoed in the reply.
  kSubmit = 0x20,
  kSubmitReply = 0x21,
  kGet = 0x22,
  kGetReply = 0x23,  // also answers kWait
  kWait = 0x24,
  kCancel = 0x26,
  kCancelReply = 0x27,
  kWorkers = 0x28,
  kWorkersReply = 0x29,
  kStats = 0x2A,
  kStatsReply = 0x2B,
  kError = 0x2F,
  // Dead letters (tasks that used up max_attempts): list, requeue, purge.
  kDeadList = 0x30,
  kDeadListReply = 0x31,
  kDeadRequeue = 0x32,
  kDeadReply = 0x33,  // answers kDeadRequeue and kDeadPurge
  kDeadPurge = 0x34,
  // Jobs: one submission split into part tasks whose results are aggregated.
  kJobSubmit = 0x40,
  kJobSubmitReply = 0x41,
  kJobGet = 0x42,
  kJobReply = 0x43,  // answers kJobGet and kJobCancel
  kJobCancel = 0x44,
  // Task listing with filters, paged by id.
  kList = 0x46,
  kListReply = 0x47,
  // Worker port, optional (>= kFirstOptionalCommand): a worker that does not know it ignores
  // it and its result is then ignored by the master.
  kCancelTasks = 0x80,  // M->W
};

// Commands at or above this value are optional: a receiver that does not know one ignores it.
// An unknown command below it is a protocol error (DISCONNECT kUnknownCommand on the worker
// port, ERROR on the client port).
constexpr uint8_t kFirstOptionalCommand = 0x80;

const char* CommandName(Command c);
bool IsKnownCommand(uint8_t c);

enum class DisconnectReason : uint8_t {
  kShutdown = 0,            // orderly: the sender is stopping
  kUnknownSession = 1,      // master does not know this peer: send HELLO again
  kProtocolError = 2,       // malformed frame or body
  kUnsupportedVersion = 3,  // header version not spoken by the receiver
  kDuplicateWorker = 4,     // another live worker already uses this worker_id
  kUnknownCommand = 5,      // required command the receiver does not know
  kHeartbeatTimeout = 6,    // peer was silent for `liveness` heartbeat intervals
  kTooLarge = 7,            // message over the receiver's size limit
};
const char* DisconnectReasonName(DisconnectReason r);

// ---- worker port ----

struct Hello {
  std::string worker_id;              // stable name chosen by the operator or derived from host+pid
  uint64_t incarnation = 0;           // random per process start; distinguishes restarts of one id
  std::vector<std::string> handlers;  // task types this worker runs
  uint32_t slots = 0;                 // tasks it runs at once
  uint32_t credit = 0;                // tasks the master may send before more credit arrives
  std::string hostname;
  uint32_t pid = 0;
  std::vector<std::string> tags;
};

struct Welcome {
  uint64_t session = 0;  // master-chosen id for this connection
  uint32_t heartbeat_ms = 1000;
  uint32_t liveness = 3;  // heartbeats that may be missed before the peer is dead
  uint32_t max_message_bytes = 0;
  uint32_t max_batch = 0;  // most tasks the master puts in one TASKS message
};

struct TaskMsg {
  uint64_t id = 0;
  uint32_t attempt = 0;  // 1 for the first dispatch; (id, attempt) names one execution
  std::string type;
  std::string payload;    // msgpack bin
  uint32_t lease_ms = 0;  // the master requeues the task if no result or EXTEND by then
};

struct Tasks {
  std::vector<TaskMsg> tasks;
};

enum class Outcome : uint8_t {
  kOk = 0,
  kFailRetry = 1,      // failed; the master may run it again
  kFailPermanent = 2,  // failed; do not retry
  kReleased = 3,       // never started (worker draining); requeue without counting a failure
  kCancelled = 4,      // stopped or skipped after CANCEL_TASKS; the master already ended the task
};
const char* OutcomeName(Outcome o);

struct ResultMsg {
  uint64_t id = 0;
  uint32_t attempt = 0;
  Outcome outcome = Outcome::kOk;
  std::string output;  // msgpack bin
  std::string error;
  uint64_t duration_us = 0;
};

struct Results {
  uint32_t credit = 0;  // new credit granted with these results
  std::vector<ResultMsg> results;
};

struct Credit {
  uint32_t credit = 0;
};

struct TaskRef {
  uint64_t id = 0;
  uint32_t attempt = 0;
  bool operator==(const TaskRef&) const = default;
};

struct Ack {
  std::vector<TaskRef> refs;  // results the master has committed; the worker may forget them
};

struct Heartbeat {};

struct Extend {
  std::vector<TaskRef> refs;
  uint32_t lease_ms = 0;  // new lease, counted from when the master receives this
};

struct Disconnect {
  DisconnectReason reason = DisconnectReason::kShutdown;
  std::string message;
};

// The master cancelled these executions: a task not started yet is skipped, a running
// handler sees its cancel flag. Either way the worker still reports a result (kCancelled, or
// whatever the handler returned) so its credit comes back.
struct CancelTasks {
  std::vector<TaskRef> refs;
};

// ---- client port ----

constexpr uint8_t kDefaultPriority = 5;
constexpr uint8_t kLowestPriority = 9;

struct TaskSpec {
  std::string type;
  std::string payload;
  std::string key;                      // tasks with one key run one at a time, in submit order
  uint8_t priority = kDefaultPriority;  // 0 highest .. 9 lowest
  uint32_t max_attempts = 0;            // 0: the master's default
  uint32_t timeout_ms = 0;              // lease; 0: the master's default
  // A second submit with the same key, within the master's idempotency TTL, returns the first
  // task's id instead of creating a task. Empty: none.
  std::string idempotency_key;
  uint64_t delay_ms = 0;      // not run before the master received it + this
  int64_t not_before_us = 0;  // wall clock; not run before this (0: no constraint)
  uint64_t deadline_ms = 0;   // not started after the master received it + this: expires
  std::vector<std::string> requirements;  // tags a worker must all announce to run it
};

struct Submit {
  uint64_t req_id = 0;
  std::vector<TaskSpec> tasks;
};

struct SubmitReply {
  uint64_t req_id = 0;
  std::vector<uint64_t> ids;  // one per submitted task, in order
};

enum class TaskState : uint8_t {
  kQueued = 0,
  kDispatched = 1,
  kSucceeded = 2,
  kFailed = 3,
  kCancelled = 4,
  kDead = 5,
  kExpired = 6,  // its deadline passed before it was started
};
const char* TaskStateName(TaskState s);
// A task state by its wire name; kInvalidArgument listing the valid names otherwise.
StatusOr<TaskState> ParseTaskState(std::string_view text);
// "queued dispatched succeeded failed cancelled dead expired"
std::string TaskStateNames();
inline bool IsTerminal(TaskState s) {
  return s == TaskState::kSucceeded || s == TaskState::kFailed || s == TaskState::kCancelled ||
         s == TaskState::kDead || s == TaskState::kExpired;
}

// A task as the master knows it: the client view and the stored record.
struct TaskInfo {
  uint64_t id = 0;
  std::string type;
  TaskState state = TaskState::kQueued;
  uint8_t priority = kDefaultPriority;
  std::string key;
  uint32_t attempt = 0;   // dispatches so far
  uint32_t failures = 0;  // attempts that failed (retry, lease expiry, worker death)
  uint32_t max_attempts = 0;
  uint32_t timeout_ms = 0;
  std::string payload;
  std::string result;
  std::string error;
  std::string worker;        // worker_id of the last dispatch
  int64_t submitted_us = 0;  // wall clock, microseconds since the Unix epoch
  int64_t dispatched_us = 0;
  int64_t finished_us = 0;
  int64_t run_after_us = 0;  // wall clock; a delayed task or a retry in back-off runs after this
  std::string idempotency_key;
  int64_t deadline_us = 0;  // wall clock; not started after this (0: none)
  std::vector<std::string> requirements;
  uint64_t job_id = 0;  // the job this task is a part (or the reduce step) of; 0: none
  uint32_t part = 0;    // index of the part in its job; kReducePart for the reduce task
};

constexpr uint32_t kReducePart = 0xFFFFFFFF;

struct Get {
  uint64_t req_id = 0;
  std::vector<uint64_t> ids;
  bool with_payload = false;
};

struct GetReply {
  uint64_t req_id = 0;
  std::vector<std::optional<TaskInfo>> tasks;  // nil where the id is unknown
};

// Answered with a GetReply of one task once it is terminal or `timeout_ms` has passed.
struct Wait {
  uint64_t req_id = 0;
  uint64_t id = 0;
  uint32_t timeout_ms = 0;
};

struct Cancel {
  uint64_t req_id = 0;
  uint64_t id = 0;
};

struct CancelReply {
  uint64_t req_id = 0;
  TaskState state = TaskState::kCancelled;  // the task's state after the request
};

struct Workers {
  uint64_t req_id = 0;
};

struct WorkerInfo {
  std::string worker_id;
  std::string hostname;
  uint32_t pid = 0;
  std::vector<std::string> handlers;
  uint32_t slots = 0;
  uint32_t credit = 0;    // tasks the master may still send
  uint32_t inflight = 0;  // tasks out to this worker now
  uint64_t completed = 0;
  uint64_t failed = 0;
  int64_t connected_us = 0;   // wall clock
  uint32_t last_seen_ms = 0;  // since the master last heard from it
};

struct WorkersReply {
  uint64_t req_id = 0;
  std::vector<WorkerInfo> workers;
};

struct Stats {
  uint64_t req_id = 0;
};

struct StatsReply {
  uint64_t req_id = 0;
  std::map<std::string, uint64_t> counters;
};

// Dead letters in id order, after `after_id`, at most `limit` (0: the master's page size).
struct DeadList {
  uint64_t req_id = 0;
  uint64_t after_id = 0;
  uint32_t limit = 0;
};

struct DeadListReply {
  uint64_t req_id = 0;
  std::vector<TaskInfo> tasks;  // without payload
  bool more = false;            // further dead letters follow the last one
};

// Requeue (run again, with a fresh set of attempts) or purge (forget) dead letters: the listed
// ids, or with `all` up to one page of them per request (repeat while `more`).
struct DeadRequeue {
  uint64_t req_id = 0;
  std::vector<uint64_t> ids;
  bool all = false;
};

struct DeadPurge {
  uint64_t req_id = 0;
  std::vector<uint64_t> ids;
  bool all = false;
};

struct DeadReply {
  uint64_t req_id = 0;
  uint64_t count = 0;  // dead letters requeued or purged
  bool more = false;   // with `all`: more remain
};

// ---- jobs ----

enum class JobPolicy : uint8_t {
  kFailFast = 0,  // the first failed part fails the job and cancels the others
  kContinue = 1,  // every part runs; the result covers the parts that succeeded
};
const char* JobPolicyName(JobPolicy p);
// "fail-fast" or "continue".
StatusOr<JobPolicy> ParseJobPolicy(std::string_view text);

enum class JobState : uint8_t {
  kRunning = 0,
  kReducing = 1,   // every part finished; the reduce task runs
  kSucceeded = 2,  // every part (and the reduce task) succeeded
  kPartial = 3,    // policy continue: finished with failed parts (listed in `failures`)
  kFailed = 4,
  kCancelled = 5,
};
const char* JobStateName(JobState s);
inline bool IsTerminal(JobState s) { return s >= JobState::kSucceeded; }

struct JobSpec {
  // The parts' task settings: type, priority, key, max_attempts, timeout_ms, delays, deadline,
  // requires. `task.payload` is the whole input the splitter cuts into part payloads.
  // `task.idempotency_key` must be empty.
  TaskSpec task;
  // "chunk:bytes=N", "chunk:parts=N", "lines:N", "json-array:N", "range:A..B[:STEP]"
  std::string split;
  // "collect", "concat", "count", "sum", "min", "max" or "reduce:TYPE"
  std::string aggregate = "collect";
  JobPolicy policy = JobPolicy::kFailFast;
};

struct PartFailure {
  uint32_t part = 0;
  uint64_t task_id = 0;
  TaskState state = TaskState::kFailed;  // failed, dead, expired or cancelled
  std::string error;
};

// A job as the master knows it: the client view and the stored record.
struct JobInfo {
  uint64_t id = 0;
  std::string type;
  std::string split;
  std::string aggregate;
  JobPolicy policy = JobPolicy::kFailFast;
  JobState state = JobState::kRunning;
  uint32_t parts = 0;
  uint64_t first_task_id = 0;   // parts are tasks first_task_id .. first_task_id + parts - 1
  uint64_t reduce_task_id = 0;  // 0 until a reduce task is created
  // Progress over the parts (live while running, final once finished). `failed` counts parts
  // that ended failed, dead or expired.
  uint32_t queued = 0;
  uint32_t running = 0;
  uint32_t succeeded = 0;
  uint32_t failed = 0;
  uint32_t cancelled = 0;
  std::string result;  // the aggregate, once succeeded or partial
  std::string error;   // why it failed or was cancelled
  std::vector<PartFailure> failures;
  int64_t submitted_us = 0;
  int64_t finished_us = 0;
  // Settings the reduce task inherits from the parts.
  uint8_t priority = kDefaultPriority;
  std::string key;
  uint32_t max_attempts = 0;
  uint32_t timeout_ms = 0;
  std::vector<std::string> requirements;
};

struct JobSubmit {
  uint64_t req_id = 0;
  JobSpec job;
};

struct JobSubmitReply {
  uint64_t req_id = 0;
  uint64_t job_id = 0;
  uint32_t parts = 0;
  uint64_t first_task_id = 0;
};

struct JobGet {
  uint64_t req_id = 0;
  uint64_t job_id = 0;
  bool with_result = true;  // false: leave `result` out (progress polling)
};

struct JobCancel {
  uint64_t req_id = 0;
  uint64_t job_id = 0;
};

struct JobReply {
  uint64_t req_id = 0;
  JobInfo job;
};

// ---- listing ----

// Tasks in id order after `after_id` that match every given filter.
struct List {
  uint64_t req_id = 0;
  uint64_t after_id = 0;
  uint32_t limit = 0;              // 0: the master's page size
  std::optional<TaskState> state;  // nil: any
  std::string type;                // empty: any
  std::string key;                 // empty: any
  uint64_t job_id = 0;             // 0: any
};

struct ListReply {
  uint64_t req_id = 0;
  std::vector<TaskInfo> tasks;  // without payload or result
  bool more = false;            // ask again with after_id = next_after_id
  uint64_t next_after_id = 0;   // may be past the last task listed (the scan stopped there)
};

struct Error {
  uint64_t req_id = 0;
  uint8_t code = 0;  // yard::StatusCode
  std::string message;
};

}  // namespace yard::protocol
