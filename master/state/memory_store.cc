#include "master/state/memory_store.h"

namespace yard::state {

using protocol::JobInfo;
using protocol::TaskInfo;
using protocol::TaskState;

template <typename Record>
Record& MemoryStore::Records<Record>::Put(Record&& r) {
  const uint64_t id = r.id;
  const bool finished = IsFinished(r.state);
  // Ids grow: a new record usually goes last, which the hint makes constant time.
  auto at = by_id.empty() || by_id.rbegin()->first < id ? by_id.end() : by_id.lower_bound(id);
  if (at != by_id.end() && at->first == id) {
    if (finished && !IsFinished(at->second.state)) finished_order.push_back(id);
    at->second = std::move(r);
    return at->second;
  }
  if (finished) finished_order.push_back(id);
  return by_id.emplace_hint(at, id, std::move(r))->second;
}

template <typename Record>
const Record* MemoryStore::Records<Record>::Find(uint64_t id, Micros ttl, int64_t now_us) const {
  auto it = by_id.find(id);
  if (it == by_id.end() || PastResultTtl(it->second, ttl, now_us)) return nullptr;
  return &it->second;
}

template <typename Record>
void MemoryStore::Records<Record>::Retain(size_t max_finished, Micros ttl, int64_t now_us) {
  while (!finished_order.empty()) {
    auto it = by_id.find(finished_order.front());
    // An id whose record is gone or no longer finished (a requeue) is a stale entry.
    const bool gone = it == by_id.end() || !IsFinished(it->second.state);
    if (!gone && finished_order.size() <= max_finished && !PastResultTtl(it->second, ttl, now_us)) {
      break;
    }
    if (!gone) by_id.erase(it);
    finished_order.pop_front();
  }
}

Status MemoryStore::Commit(Batch& batch) {
  for (uint64_t id : batch.dead_removed) {
    auto it = tasks_.by_id.find(id);
    if (it != tasks_.by_id.end() && it->second.state == TaskState::kDead) tasks_.by_id.erase(it);
    dead_.erase(id);
  }
  for (auto& r : batch.records) {
    TaskInfo& stored = tasks_.Put(std::move(r));
    if (stored.state == TaskState::kDead) {
      dead_.insert(stored.id);
    } else if (!dead_.empty()) {
      dead_.erase(stored.id);
    }
    if (stored.id > max_id_) max_id_ = stored.id;
    // Finished records drop their payload; dead letters keep it, as they may run again.
    if (IsFinished(stored.state)) {
      stored.payload.clear();
      stored.payload.shrink_to_fit();
    }
  }
  for (auto& j : batch.jobs) {
    if (j.id > max_id_) max_id_ = j.id;
    jobs_.Put(std::move(j));
  }
  for (const auto& e : batch.idem) {
    idem_[e.key] = e;
    idem_order_.push_back({e.expires_us, e.key});
  }

  const int64_t now = clock_.WallNow();
  tasks_.Retain(options_.max_finished, options_.result_ttl, now);
  jobs_.Retain(options_.max_finished, options_.result_ttl, now);
  while (!idem_order_.empty() && idem_order_.front().first <= now) {
    auto it = idem_.find(idem_order_.front().second);
    if (it != idem_.end() && it->second.expires_us <= now) idem_.erase(it);
    idem_order_.pop_front();
  }
  return Status::Ok();
}

StatusOr<std::optional<TaskInfo>> MemoryStore::Get(uint64_t id) const {
  const TaskInfo* t = tasks_.Find(id, options_.result_ttl, clock_.WallNow());
  return t ? std::optional<TaskInfo>(*t) : std::nullopt;
}

Status MemoryStore::ForEachActive(const std::function<void(TaskInfo&&)>& fn) const {
  for (const auto& [id, r] : tasks_.by_id) {
    if (!protocol::IsTerminal(r.state)) fn(TaskInfo(r));
  }
  return Status::Ok();
}

Status MemoryStore::ForEachDead(uint64_t after_id,
                                const std::function<bool(TaskInfo&&)>& fn) const {
  for (auto it = dead_.upper_bound(after_id); it != dead_.end(); ++it) {
    if (!fn(TaskInfo(tasks_.by_id.at(*it)))) break;
  }
  return Status::Ok();
}

Status MemoryStore::ForEachFinished(uint64_t after_id,
                                    const std::function<bool(TaskInfo&&)>& fn) const {
  const int64_t now = clock_.WallNow();
  for (auto it = tasks_.by_id.upper_bound(after_id); it != tasks_.by_id.end(); ++it) {
    const TaskInfo& r = it->second;
    if (!protocol::IsTerminal(r.state) || PastResultTtl(r, options_.result_ttl, now)) continue;
    if (!fn(TaskInfo(r))) break;
  }
  return Status::Ok();
}

Status MemoryStore::ForEachIdem(int64_t now_us, const std::function<void(IdemEntry&&)>& fn) const {
  for (const auto& [key, e] : idem_) {
    if (e.expires_us > now_us) fn(IdemEntry(e));
  }
  return Status::Ok();
}

StatusOr<std::optional<JobInfo>> MemoryStore::GetJob(uint64_t id) const {
  const JobInfo* j = jobs_.Find(id, options_.result_ttl, clock_.WallNow());
  return j ? std::optional<JobInfo>(*j) : std::nullopt;
}

Status MemoryStore::ForEachOpenJob(const std::function<Status(JobInfo&&)>& fn) const {
  for (const auto& [id, j] : jobs_.by_id) {
    if (!IsFinished(j.state)) RETURN_IF_ERROR(fn(JobInfo(j)));
  }
  return Status::Ok();
}

}  // namespace yard::state
