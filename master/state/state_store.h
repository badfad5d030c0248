// StateStore: where the master's task and job records live. The engine (master/core) holds the
// active queues in memory; the store is the log the server commits every change to, once per
// event-loop turn, before anything that acknowledges those changes leaves the master.
//
// Implementations: MemoryStore (tests, demos, --memory) and RocksStore (the durable default).
// Both pass tests/unit/master/state/store_contract_test.cc. Thread-compatible: the server's
// loop thread is the only caller.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/protocol/messages.h"
#include "common/status.h"

namespace yard::state {

// A finished task: succeeded, failed, cancelled or expired. Kept for the result TTL, without its
// payload. (Dead letters are terminal too, but stay until requeued or purged.)
inline bool IsFinished(protocol::TaskState s) {
  return protocol::IsTerminal(s) && s != protocol::TaskState::kDead;
}
// A finished job: succeeded, partial, failed or cancelled. Kept for the result TTL.
inline bool IsFinished(protocol::JobState s) { return protocol::IsTerminal(s); }

// Whether a stored record (protocol::TaskInfo or protocol::JobInfo) is a finished one older than
// the result TTL at `now_us`: gone for readers at once, and removed by the store when convenient.
template <typename Record>
bool PastResultTtl(const Record& r, int64_t ttl_us, int64_t now_us) {
  return IsFinished(r.state) && r.finished_us + ttl_us < now_us;
}

// An idempotency key and the task it names, remembered until `expires_us` (wall clock).
struct IdemEntry {
  std::string key;
  uint64_t id = 0;
  int64_t expires_us = 0;
};

// One group commit: everything a loop turn changed.
struct Batch {
  // The latest version of each task created or changed. A record's state says where it goes:
  // active (queued, possibly waiting out a retry back-off until run_after_us), finished
  // (succeeded, failed, cancelled: kept for the result TTL) or dead (kept until requeued or
  // purged). A task may appear more than once; the last version wins.
  std::vector<protocol::TaskInfo> records;
  // Dead letters leaving the dead set: requeued ones (their new record is in `records`) and
  // purged ones.
  std::vector<uint64_t> dead_removed;
  // Idempotency keys first used in this batch.
  std::vector<IdemEntry> idem;
  // The latest version of each job created or changed: open (running, reducing; kept until it
  // finishes) or finished (kept for the result TTL). Job ids come from the task id counter. A
  // job may appear more than once; the last version wins.
  std::vector<protocol::JobInfo> jobs;

  bool empty() const {
    return records.empty() && dead_removed.empty() && idem.empty() && jobs.empty();
  }
  void clear() {
    records.clear();
    dead_removed.clear();
    idem.clear();
    jobs.clear();
  }
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  // Writes `batch` atomically. Returns once it is as durable as the store's mode promises. On
  // error nothing of the batch is visible: kResourceExhausted for a full disk, kUnavailable for
  // other storage failures. The caller retries the same batch (plus newer records), so an
  // error leaves `batch` as it was; success may leave its records moved from (a store that
  // keeps records in memory takes them rather than copying them).
  virtual Status Commit(Batch& batch) = 0;
  Status Commit(Batch&& batch) { return Commit(batch); }

  // The last committed record of task `id` in any state, or nullopt if the store has none
  // (never stored, purged, or a finished record past the result TTL).
  virtual StatusOr<std::optional<protocol::TaskInfo>> Get(uint64_t id) const = 0;

  // Calls `fn` for every task that is neither finished nor dead (recovery), in no set order.
  virtual Status ForEachActive(const std::function<void(protocol::TaskInfo&&)>& fn) const = 0;

  // Calls `fn` for dead letters with id > after_id, in id order, until it returns false.
  virtual Status ForEachDead(uint64_t after_id,
                             const std::function<bool(protocol::TaskInfo&&)>& fn) const = 0;

  // Calls `fn` for terminal task records (finished ones and dead letters alike) with
  // id > after_id, in id order, until it returns false. Finished records past the result TTL
  // are skipped.
  virtual Status ForEachFinished(uint64_t after_id,
                                 const std::function<bool(protocol::TaskInfo&&)>& fn) const = 0;

  // Calls `fn` for every idempotency key not expired at `now_us` (recovery).
  virtual Status ForEachIdem(int64_t now_us, const std::function<void(IdemEntry&&)>& fn) const = 0;

  // The last committed record of job `id`, or nullopt if the store has none (never stored, or
  // finished and past the result TTL).
  virtual StatusOr<std::optional<protocol::JobInfo>> GetJob(uint64_t id) const = 0;

  // Calls `fn` for every job that is not finished, in id order (recovery). Stops at, and
  // returns, the first error `fn` returns.
  virtual Status ForEachOpenJob(const std::function<Status(protocol::JobInfo&&)>& fn) const = 0;

  // The highest task or job id ever committed (0 if none), even if that record is gone since:
  // tasks and jobs draw ids from one counter, and ids are never reused.
  virtual uint64_t MaxTaskId() const = 0;

  // Starts of this store's data so far, counting this one (1 for a fresh or in-memory store).
  // Bumped when a durable store is opened.
  virtual uint64_t Epoch() const = 0;
};

}  // namespace yard::state
