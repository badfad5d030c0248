// MemoryStore: a StateStore in process memory. Survives nothing; used by tests, demos and the
// standalone --memory mode. Finished tasks are kept for the result TTL and at most
// `max_finished` of them (oldest dropped first), so a long-running master's memory stays
// bounded. Dead letters are kept until requeued or purged.
#pragma once

#include <deque>
#include <map>
#include <set>

#include "common/clock.h"
#include "master/state/state_store.h"

namespace yard::state {

struct MemoryStoreOptions {
  size_t max_finished = 1000000;
  Micros result_ttl = 24LL * 3600 * kSeconds;
};

class MemoryStore final : public StateStore {
 public:
  // `clock` (for the result TTL) must outlive the store.
  explicit MemoryStore(const MemoryStoreOptions& options = {},
                       const Clock& clock = SystemClock::Get())
      : options_(options), clock_(clock) {}

  Status Commit(const Batch& batch) override;
  StatusOr<std::optional<protocol::TaskInfo>> Get(uint64_t id) const override;
  Status ForEachActive(const std::function<void(protocol::TaskInfo&&)>& fn) const override;
  Status ForEachDead(uint64_t after_id,
                     const std::function<bool(protocol::TaskInfo&&)>& fn) const override;
  Status ForEachIdem(int64_t now_us, const std::function<void(IdemEntry&&)>& fn) const override;
  uint64_t MaxTaskId() const override { return max_id_; }
  uint64_t Epoch() const override { return 1; }

  size_t size() const { return records_.size(); }

 private:
  MemoryStoreOptions options_;
  const Clock& clock_;
  std::map<uint64_t, protocol::TaskInfo> records_;
  std::deque<uint64_t> finished_order_;  // ids in the order they finished (not dead ones)
  std::set<uint64_t> dead_;              // ids of dead letters, for paging through them
  std::map<std::string, IdemEntry> idem_;
  std::deque<std::pair<int64_t, std::string>> idem_order_;  // (expires_us, key), oldest first
  uint64_t max_id_ = 0;
};

}  // namespace yard::state
