// MemoryStore: a StateStore in process memory. Survives nothing; used by tests, demos and the
// standalone --memory mode. Finished tasks are kept up to `max_finished` (oldest dropped
// first) so a long-running master's memory stays bounded.
#pragma once

#include <deque>
#include <map>

#include "master/state/state_store.h"

namespace yard::state {

class MemoryStore final : public StateStore {
 public:
  explicit MemoryStore(size_t max_finished = 1000000) : max_finished_(max_finished) {}

  Status Commit(const std::vector<protocol::TaskInfo>& records) override;
  StatusOr<std::optional<protocol::TaskInfo>> Get(uint64_t id) const override;
  Status ForEachActive(const std::function<void(protocol::TaskInfo&&)>& fn) const override;
  uint64_t MaxTaskId() const override { return max_id_; }

  size_t size() const { return records_.size(); }

 private:
  size_t max_finished_;
  std::map<uint64_t, protocol::TaskInfo> records_;
  std::deque<uint64_t> finished_order_;  // ids in the order they became terminal
  uint64_t max_id_ = 0;
};

}  // namespace yard::state
