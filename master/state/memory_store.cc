#include "master/state/memory_store.h"

namespace yard::state {

using protocol::TaskInfo;
using protocol::TaskState;

Status MemoryStore::Commit(const Batch& batch) {
  for (uint64_t id : batch.dead_removed) {
    auto it = records_.find(id);
    if (it != records_.end() && it->second.state == TaskState::kDead) records_.erase(it);
    dead_.erase(id);
  }
  for (const auto& r : batch.records) {
    auto old = records_.find(r.id);
    const bool was_finished = old != records_.end() && IsFinished(old->second.state);
    auto it = records_.insert_or_assign(r.id, r).first;
    if (r.state == TaskState::kDead) {
      dead_.insert(r.id);
    } else {
      dead_.erase(r.id);
    }
    if (r.id > max_id_) max_id_ = r.id;
    if (protocol::IsTerminal(r.state)) {
      // Terminal records drop their payload, except dead letters, which may run again.
      if (r.state != TaskState::kDead) {
        it->second.payload.clear();
        it->second.payload.shrink_to_fit();
      }
      if (IsFinished(r.state) && !was_finished) finished_order_.push_back(r.id);
    }
  }
  for (const auto& e : batch.idem) {
    idem_[e.key] = e;
    idem_order_.push_back({e.expires_us, e.key});
  }

  // Retention: finished records past the TTL or over the count, oldest first.
  const int64_t now = clock_.WallNow();
  while (!finished_order_.empty()) {
    auto it = records_.find(finished_order_.front());
    const bool gone = it == records_.end() || !IsFinished(it->second.state);
    if (!gone && finished_order_.size() <= options_.max_finished &&
        !PastResultTtl(it->second, options_.result_ttl, now)) {
      break;
    }
    if (!gone) records_.erase(it);
    finished_order_.pop_front();
  }
  while (!idem_order_.empty() && idem_order_.front().first <= now) {
    auto it = idem_.find(idem_order_.front().second);
    if (it != idem_.end() && it->second.expires_us <= now) idem_.erase(it);
    idem_order_.pop_front();
  }
  return Status::Ok();
}

StatusOr<std::optional<TaskInfo>> MemoryStore::Get(uint64_t id) const {
  auto it = records_.find(id);
  if (it == records_.end() || PastResultTtl(it->second, options_.result_ttl, clock_.WallNow())) {
    return std::optional<TaskInfo>();
  }
  return std::optional<TaskInfo>(it->second);
}

Status MemoryStore::ForEachActive(const std::function<void(TaskInfo&&)>& fn) const {
  for (const auto& [id, r] : records_) {
    if (!protocol::IsTerminal(r.state)) fn(TaskInfo(r));
  }
  return Status::Ok();
}

Status MemoryStore::ForEachDead(uint64_t after_id,
                                const std::function<bool(TaskInfo&&)>& fn) const {
  for (auto it = dead_.upper_bound(after_id); it != dead_.end(); ++it) {
    if (!fn(TaskInfo(records_.at(*it)))) break;
  }
  return Status::Ok();
}

Status MemoryStore::ForEachIdem(int64_t now_us, const std::function<void(IdemEntry&&)>& fn) const {
  for (const auto& [key, e] : idem_) {
    if (e.expires_us > now_us) fn(IdemEntry(e));
  }
  return Status::Ok();
}

}  // namespace yard::state
