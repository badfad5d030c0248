#include "master/state/memory_store.h"

namespace yard::state {

Status MemoryStore::Commit(const std::vector<protocol::TaskInfo>& records) {
  for (const auto& r : records) {
    auto old = records_.find(r.id);
    const bool was_terminal = old != records_.end() && protocol::IsTerminal(old->second.state);
    auto it = records_.insert_or_assign(r.id, r).first;
    if (r.id > max_id_) max_id_ = r.id;
    if (protocol::IsTerminal(r.state)) {
      // Terminal records drop their payload: only the result is asked for from here on.
      it->second.payload.clear();
      it->second.payload.shrink_to_fit();
      if (!was_terminal) finished_order_.push_back(r.id);  // queued for eviction once
    }
  }
  while (finished_order_.size() > max_finished_) {
    const uint64_t id = finished_order_.front();
    finished_order_.pop_front();
    auto it = records_.find(id);
    if (it != records_.end() && protocol::IsTerminal(it->second.state)) records_.erase(it);
  }
  return Status::Ok();
}

StatusOr<std::optional<protocol::TaskInfo>> MemoryStore::Get(uint64_t id) const {
  auto it = records_.find(id);
  if (it == records_.end()) return std::optional<protocol::TaskInfo>();
  return std::optional<protocol::TaskInfo>(it->second);
}

Status MemoryStore::ForEachActive(const std::function<void(protocol::TaskInfo&&)>& fn) const {
  for (const auto& [id, r] : records_) {
    if (!protocol::IsTerminal(r.state)) fn(protocol::TaskInfo(r));
  }
  return Status::Ok();
}

}  // namespace yard::state
