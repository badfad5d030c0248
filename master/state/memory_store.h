// MemoryStore: a StateStore in process memory. Survives nothing; used by tests, demos and the
// standalone --memory mode. Finished tasks are kept for the result TTL and at most
// `max_finished` of them (oldest dropped first), so a long-running master's memory stays
// bounded; finished jobs likewise (at most `max_finished` jobs besides the tasks). Dead letters
// and open jobs are kept until requeued, purged or finished.
#pragma once

#include <deque>
#include <map>
#include <set>

#include "common/clock.h"
#include "master/state/state_store.h"

namespace yard::state {

struct MemoryStoreOptions {
  size_t max_finished = 1000000;  // of each kind: finished tasks, finished jobs
  Micros result_ttl = 24LL * 3600 * kSeconds;
};

class MemoryStore final : public StateStore {
 public:
  // `clock` (for the result TTL) must outlive the store.
  explicit MemoryStore(const MemoryStoreOptions& options = {},
                       const Clock& clock = SystemClock::Get())
      : options_(options), clock_(clock) {}

  using StateStore::Commit;
  Status Commit(Batch& batch) override;
  StatusOr<std::optional<protocol::TaskInfo>> Get(uint64_t id) const override;
  Status ForEachActive(const std::function<void(protocol::TaskInfo&&)>& fn) const override;
  Status ForEachDead(uint64_t after_id,
                     const std::function<bool(protocol::TaskInfo&&)>& fn) const override;
  Status ForEachFinished(uint64_t after_id,
                         const std::function<bool(protocol::TaskInfo&&)>& fn) const override;
  Status ForEachIdem(int64_t now_us, const std::function<void(IdemEntry&&)>& fn) const override;
  StatusOr<std::optional<protocol::JobInfo>> GetJob(uint64_t id) const override;
  Status ForEachOpenJob(const std::function<Status(protocol::JobInfo&&)>& fn) const override;
  uint64_t MaxTaskId() const override { return max_id_; }
  uint64_t Epoch() const override { return 1; }

  // Task records held (any state, expired ones not dropped yet included), and job records.
  size_t size() const { return tasks_.by_id.size(); }
  size_t job_count() const { return jobs_.by_id.size(); }

 private:
  // The records of one kind (protocol::TaskInfo or protocol::JobInfo) by id, and the ids of the
  // finished ones in the order they finished, which retention drops them in.
  template <typename Record>
  struct Records {
    std::map<uint64_t, Record> by_id;
    std::deque<uint64_t> finished_order;

    // Stores `r` over any earlier version of it; returns the stored record.
    Record& Put(Record&& r);
    // The record of `id`, or null if there is none or it is past the TTL at `now_us`.
    const Record* Find(uint64_t id, Micros ttl, int64_t now_us) const;
    // Drops finished records past the TTL at `now_us` or beyond `max_finished`, oldest first.
    void Retain(size_t max_finished, Micros ttl, int64_t now_us);
  };

  MemoryStoreOptions options_;
  const Clock& clock_;
  Records<protocol::TaskInfo> tasks_;
  Records<protocol::JobInfo> jobs_;
  std::set<uint64_t> dead_;  // ids of dead letters, for paging through them
  std::map<std::string, IdemEntry> idem_;
  std::deque<std::pair<int64_t, std::string>> idem_order_;  // (expires_us, key), oldest first
  uint64_t max_id_ = 0;
};

}  // namespace yard::state
