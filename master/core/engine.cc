#include "master/core/engine.h"

#include <algorithm>
#include <string_view>
#include <tuple>

namespace yard::core {

using protocol::Outcome;
using protocol::TaskInfo;
using protocol::TaskSpec;
using protocol::TaskState;

namespace {
constexpr size_t kMaxTypeLength = 128;
constexpr size_t kMaxKeyLength = 256;
constexpr size_t kMaxWorkerIdLength = 128;
constexpr size_t kMaxHandlers = 256;
constexpr uint32_t kMaxCredit = 1u << 20;
constexpr uint32_t kMaxLeaseMs = 24u * 3600 * 1000;
constexpr size_t kMaxIdempotencyKeyLength = 256;
constexpr size_t kMaxRequirements = 16;
constexpr size_t kMaxTagLength = 64;
constexpr size_t kMaxWorkerTags = 32;
constexpr size_t kMaxRoutes = 10000;
constexpr uint64_t kMaxDelayMs = 366ull * 24 * 3600 * 1000;  // a year

bool IsSubset(const std::vector<std::string>& needed, const std::vector<std::string>& have) {
  return std::includes(have.begin(), have.end(), needed.begin(), needed.end());
}

std::vector<std::string> SortedUnique(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

std::string RouteKey(const std::string& type, const std::vector<std::string>& requirements) {
  std::string key = type;
  for (const auto& r : requirements) {
    key += '\x1f';
    key += r;
  }
  return key;
}
}  // namespace

Status EngineConfig::Validate() const {
  if (heartbeat_ms == 0) return InvalidArgument("heartbeat_ms must be > 0");
  if (liveness == 0) return InvalidArgument("liveness must be > 0");
  if (max_batch == 0) return InvalidArgument("max_batch must be > 0");
  if (max_batch_bytes == 0) return InvalidArgument("max_batch_bytes must be > 0");
  if (default_timeout_ms == 0 || default_timeout_ms > kMaxLeaseMs) {
    return InvalidArgument("timeout must be between 1 ms and 24 h");
  }
  if (default_max_attempts == 0) return InvalidArgument("max_attempts must be >= 1");
  if (max_active == 0) return InvalidArgument("max_queued must be > 0");
  if (first_task_id == 0) return InvalidArgument("first_task_id must be > 0");
  if (retry_backoff < 0 || retry_backoff_max < retry_backoff) {
    return InvalidArgument("retry back-off must be >= 0 and at most its maximum");
  }
  if (idempotency_ttl <= 0) return InvalidArgument("idempotency TTL must be > 0");
  if (aging < 0) return InvalidArgument("priority aging must be >= 0");
  if (max_job_tasks == 0) return InvalidArgument("max_job_tasks must be > 0");
  return Status::Ok();
}

Engine::Engine(const EngineConfig& config)
    : config_(config),
      next_id_(config.first_task_id),
      next_session_((config.epoch << 32) + 1),
      rng_(config.seed ? config.seed : std::random_device{}()) {}

// ------------------------------------------------------------------ clients

Status Engine::ValidateSpec(const TaskSpec& s, const std::string& where, Now now,
                            bool check_payload) const {
  if (s.type.empty()) return InvalidArgument(where + "type is empty");
  if (s.type.size() > kMaxTypeLength) {
    return InvalidArgument(where + "type is longer than " + std::to_string(kMaxTypeLength));
  }
  if (s.key.size() > kMaxKeyLength) {
    return InvalidArgument(where + "key is longer than " + std::to_string(kMaxKeyLength));
  }
  if (s.priority > protocol::kLowestPriority) {
    return InvalidArgument(where + "priority " + std::to_string(s.priority) +
                           " is out of range 0..9");
  }
  if (check_payload && s.payload.size() > config_.max_payload_bytes) {
    return InvalidArgument(where + "payload of " + std::to_string(s.payload.size()) +
                           " bytes is over the limit of " +
                           std::to_string(config_.max_payload_bytes));
  }
  if (s.timeout_ms > kMaxLeaseMs) return InvalidArgument(where + "timeout is over 24 h");
  if (s.idempotency_key.size() > kMaxIdempotencyKeyLength) {
    return InvalidArgument(where + "idempotency key is longer than " +
                           std::to_string(kMaxIdempotencyKeyLength));
  }
  if (s.requirements.size() > kMaxRequirements) {
    return InvalidArgument(where + "more than " + std::to_string(kMaxRequirements) +
                           " required tags");
  }
  for (const auto& r : s.requirements) {
    if (r.empty() || r.size() > kMaxTagLength) {
      return InvalidArgument(where + "a required tag must be 1.." + std::to_string(kMaxTagLength) +
                             " bytes");
    }
  }
  if (s.delay_ms > kMaxDelayMs || s.deadline_ms > kMaxDelayMs) {
    return InvalidArgument(where + "delay and deadline must be at most a year");
  }
  if (s.not_before_us < 0 || s.not_before_us > now.wall + int64_t(kMaxDelayMs) * kMillis) {
    return InvalidArgument(where + "not-before must be within a year from now");
  }
  if (s.deadline_ms > 0) {
    const int64_t start =
        std::max<int64_t>(now.wall + int64_t(s.delay_ms) * kMillis, s.not_before_us);
    if (start >= now.wall + int64_t(s.deadline_ms) * kMillis) {
      return InvalidArgument(where + "its deadline comes before it may start (delay/not-before)");
    }
  }
  return Status::Ok();
}

void Engine::ExpireIdempotencyKeys(int64_t now_wall) {
  while (!idem_expiry_.empty() && idem_expiry_.front().first <= now_wall) {
    auto it = idem_.find(idem_expiry_.front().second);
    if (it != idem_.end() && it->second.expires_us <= now_wall) idem_.erase(it);
    idem_expiry_.pop_front();
  }
}

void Engine::RestoreIdempotencyKey(const std::string& key, uint64_t id, int64_t expires_us) {
  idem_[key] = {id, expires_us};
  idem_expiry_.push_back({expires_us, key});  // put in time order by FinishRestore
}

StatusOr<std::vector<uint64_t>> Engine::Submit(std::vector<TaskSpec> specs, Now now, Effects& fx) {
  for (size_t i = 0; i < specs.size(); ++i) {
    RETURN_IF_ERROR(ValidateSpec(specs[i], "task " + std::to_string(i) + ": ", now));
    if (RouteLimitReached(specs[i].type, specs[i].requirements)) {
      return ResourceExhausted("more than " + std::to_string(kMaxRoutes) +
                               " distinct (type, required tags) combinations");
    }
  }
  ExpireIdempotencyKeys(now.wall);
  size_t fresh = 0;
  for (const auto& s : specs)
    fresh += s.idempotency_key.empty() || !idem_.contains(s.idempotency_key);
  RETURN_IF_ERROR(Admit(fresh, specs.size()));
  std::vector<uint64_t> ids;
  ids.reserve(specs.size());
  uint64_t created = 0;
  for (auto& s : specs) {
    if (!s.idempotency_key.empty()) {
      auto seen = idem_.find(s.idempotency_key);
      if (seen != idem_.end()) {
        ids.push_back(seen->second.id);
        counters_["tasks.deduplicated"]++;
        continue;
      }
    }
    const uint64_t id = CreateTask(s, std::move(s.payload), now, fx).id;
    if (!s.idempotency_key.empty()) {
      const int64_t expires = now.wall + config_.idempotency_ttl;
      idem_[s.idempotency_key] = {id, expires};
      idem_expiry_.push_back({expires, s.idempotency_key});
      fx.idem_puts.push_back({s.idempotency_key, id, expires});
    }
    ids.push_back(id);
    ++created;
  }
  counters_["tasks.submitted"] += created;
  return ids;
}

Engine::Task& Engine::CreateTask(const TaskSpec& s, std::string payload, Now now, Effects& fx,
                                 uint64_t job_id, uint32_t part) {
  const uint64_t id = next_id_++;
  Task& t = tasks_[id];
  t.id = id;
  t.job_id = job_id;
  t.part = part;
  t.state = TaskState::kQueued;
  t.priority = s.priority;
  t.line = LineOf(s.key);
  t.max_attempts = s.max_attempts ? s.max_attempts : config_.default_max_attempts;
  t.timeout_ms = s.timeout_ms ? s.timeout_ms : config_.default_timeout_ms;
  t.payload = std::move(payload);
  t.submitted_us = now.wall;
  if (!s.idempotency_key.empty()) t.MutableExtra().idempotency_key = s.idempotency_key;
  const int64_t run_after =
      std::max<int64_t>(s.delay_ms ? now.wall + int64_t(s.delay_ms) * kMillis : 0, s.not_before_us);
  if (run_after > now.wall) t.run_after_us = run_after;
  if (s.deadline_ms) t.deadline_us = now.wall + int64_t(s.deadline_ms) * kMillis;
  t.route = RouteFor(s.type, SortedUnique(s.requirements));
  CountQueued(t, 1);
  ++CountsOf(s.type).active;
  TrackDeadline(t, now);
  JoinLine(t, now);
  fx.store_puts.push_back(Record(t, /*with_payload=*/true));
  return t;
}

const std::string& Engine::WorkerName(const Task& t) {
  static const std::string kNone;
  if (t.holder) return t.holder->hello.worker_id;
  return t.extra ? t.extra->worker : kNone;
}

Engine::Task& Engine::Adopt(TaskInfo&& r) {
  Task& t = tasks_[r.id];
  t.id = r.id;
  t.state = TaskState::kQueued;  // a dispatch is never stored: it runs again
  t.priority = r.priority;
  t.line = LineOf(std::move(r.key));
  t.attempt = r.attempt;
  t.failures = r.failures;
  t.max_attempts = r.max_attempts;
  t.timeout_ms = r.timeout_ms;
  t.payload = std::move(r.payload);
  t.submitted_us = r.submitted_us;
  t.dispatched_us = r.dispatched_us;
  t.run_after_us = r.run_after_us;
  t.deadline_us = r.deadline_us;
  t.job_id = r.job_id;
  t.part = r.part;
  if (!r.idempotency_key.empty()) t.MutableExtra().idempotency_key = std::move(r.idempotency_key);
  if (!r.worker.empty()) t.MutableExtra().worker = std::move(r.worker);
  t.SetError(std::move(r.error));
  t.route = RouteFor(r.type, SortedUnique(std::move(r.requirements)));
  return t;
}

TaskInfo Engine::Record(const Task& t, bool with_payload) const {
  TaskInfo r;
  r.id = t.id;
  r.type = t.route->type;
  r.state = t.state;
  r.priority = t.priority;
  if (t.line) r.key = t.line->first;
  r.attempt = t.attempt;
  r.failures = t.failures;
  r.max_attempts = t.max_attempts;
  r.timeout_ms = t.timeout_ms;
  if (with_payload) r.payload = t.payload;
  r.worker = WorkerName(t);
  if (t.extra) {
    r.error = t.extra->error;
    r.idempotency_key = t.extra->idempotency_key;
  }
  r.submitted_us = t.submitted_us;
  r.dispatched_us = t.dispatched_us;
  r.run_after_us = t.run_after_us;
  r.deadline_us = t.deadline_us;
  r.requirements = t.route->requirements;
  r.job_id = t.job_id;
  r.part = t.part;
  return r;
}

Engine::Route* Engine::RouteFor(const std::string& type,
                                const std::vector<std::string>& requirements) {
  auto [it, added] = routes_.try_emplace(RouteKey(type, requirements));
  if (added) {
    it->second.type = type;
    it->second.requirements = requirements;
    ++routes_version_;
  }
  return &it->second;
}

bool Engine::RouteLimitReached(const std::string& type,
                               const std::vector<std::string>& requirements) const {
  return routes_.size() >= kMaxRoutes &&
         !routes_.contains(RouteKey(type, SortedUnique(requirements)));
}

void Engine::TrackDeadline(const Task& t, Now now) {
  if (t.deadline_us > 0) {
    deadlines_.push({now.mono + (t.deadline_us - now.wall), t.id});
  }
}

Status Engine::Admit(size_t adding, size_t refused) {
  if (tasks_.size() + adding <= config_.max_active) return Status::Ok();
  counters_["rejected.queue_full"] += refused;
  return ResourceExhausted("queue full: " + std::to_string(tasks_.size()) +
                           " active tasks, limit " + std::to_string(config_.max_active));
}

Engine::Keys::value_type* Engine::LineOf(std::string key) {
  if (key.empty()) return nullptr;
  return &*keys_.try_emplace(std::move(key)).first;
}

void Engine::JoinLine(Task& t, Now now) {
  if (!t.line) return Arm(t, now);
  KeyLine& line = t.line->second;
  if (line.head == 0) {
    line.head = t.id;
    Arm(t, now);
  } else {
    line.waiting.push_back(t.id);
  }
}

void Engine::Arm(Task& t, Now now) {
  if (t.run_after_us > now.wall) {
    t.in_backoff = true;
    ++scheduled_count_;
    scheduled_.push({now.mono + (t.run_after_us - now.wall), t.id, t.run_after_us});
  } else {
    Enqueue(t, now);
  }
}

Status Engine::Readmit(std::vector<TaskInfo> dead, Now now, Effects& fx) {
  for (const auto& r : dead) {
    if (r.state != TaskState::kDead) {
      return FailedPrecondition("task " + std::to_string(r.id) + " is not a dead letter");
    }
    if (tasks_.contains(r.id)) {
      return FailedPrecondition("task " + std::to_string(r.id) + " is already active");
    }
  }
  RETURN_IF_ERROR(Admit(dead.size(), dead.size()));
  for (auto& r : dead) {
    const uint64_t id = r.id;
    // An operator's requeue is a fresh start, outside any job; its attempts count on, so
    // (id, attempt) stays unique.
    r.failures = 0;
    r.run_after_us = 0;
    r.error.clear();
    r.deadline_us = 0;
    r.job_id = 0;
    r.part = 0;
    Task& t = Adopt(std::move(r));
    CountQueued(t, 1);
    ++CountsOf(t.route->type).active;
    JoinLine(t, now);
    fx.store_puts.push_back(Record(t, /*with_payload=*/true));
    fx.dead_removed.push_back(id);
    counters_["tasks.requeued"]++;
  }
  return Status::Ok();
}

void Engine::Restore(TaskInfo&& record, Now now) {
  const uint64_t id = record.id;
  if (id >= next_id_) next_id_ = id + 1;
  Task& t = Adopt(std::move(record));
  t.committed = true;
  CountQueued(t, 1);
  ++CountsOf(t.route->type).active;
  TrackDeadline(t, now);
  if (!t.line) {
    Arm(t, now);
  } else {
    restored_keyed_.push_back(id);
  }
}

void Engine::FinishRestore(Now now) {
  std::sort(idem_expiry_.begin(), idem_expiry_.end());
  std::sort(restored_keyed_.begin(), restored_keyed_.end());
  for (uint64_t id : restored_keyed_) JoinLine(tasks_.at(id), now);
  restored_keyed_.clear();
  restored_keyed_.shrink_to_fit();
}

void Engine::OnCommitted(const std::vector<uint64_t>& ids) {
  for (uint64_t id : ids) {
    auto it = tasks_.find(id);
    if (it == tasks_.end() || it->second.committed) continue;
    Task& t = it->second;
    t.committed = true;
    if (t.want_ready) {
      t.want_ready = false;
      MakeReady(t);
    }
  }
}

StatusOr<TaskState> Engine::Cancel(uint64_t id, Now now, Effects& fx) {
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return NotFound("task " + std::to_string(id) + " is not active");
  CancelTask(it->second, "cancelled", now, fx);
  return TaskState::kCancelled;
}

void Engine::CancelTask(Task& t, const std::string& reason, Now now, Effects& fx) {
  if (t.state == TaskState::kDispatched && t.holder) {
    fx.cancels.push_back({t.holder->conn, {t.id, t.attempt}});
  }
  t.SetError(reason);
  Finish(t, TaskState::kCancelled, now, fx);
}

std::optional<TaskInfo> Engine::Find(uint64_t id) const {
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return std::nullopt;
  return Record(it->second, /*with_payload=*/true);
}

void Engine::MakeReady(Task& t) {
  t.route->queues[t.priority].push_back(t.id);
  t.in_ready = true;
  ++ready_count_;
}

void Engine::Enqueue(Task& t, Now now) {
  t.when = now.mono;
  if (t.committed) {
    MakeReady(t);
  } else {
    t.want_ready = true;
  }
}

void Engine::DetachFromHolder(Task& t) {
  if (!t.holder) return;
  t.holder->inflight.erase(t.id);
  t.holder = nullptr;
}

void Engine::LeaveState(Task& t) {
  if (t.state == TaskState::kQueued) {
    CountQueued(t, -1);
    if (t.in_ready) {
      t.in_ready = false;  // its queue entry is skipped when popped
      --ready_count_;
    }
    if (t.in_backoff) {
      t.in_backoff = false;  // its scheduled entry is skipped when due
      --scheduled_count_;
    }
  } else if (t.state == TaskState::kDispatched) {
    --dispatched_;
    DetachFromHolder(t);
  }
}

void Engine::Finish(Task& t, TaskState state, Now now, Effects& fx, std::string result) {
  // The record first, while its holder still names the worker.
  TaskInfo record = Record(t, /*with_payload=*/false);
  record.state = state;
  record.finished_us = now.wall;
  record.result = std::move(result);
  // Only a dead letter may run again; the stores keep no payload of the others.
  if (state == TaskState::kDead) record.payload = std::move(t.payload);
  LeaveState(t);
  const uint64_t id = t.id;
  t.state = state;
  if (t.line && t.line->second.head == id) {
    KeyLine& line = t.line->second;
    line.head = 0;
    while (line.next < line.waiting.size()) {
      const uint64_t next = line.waiting[line.next++];
      if (line.next * 2 >= line.waiting.size()) {  // drop the consumed front now and then
        line.waiting.erase(line.waiting.begin(),
                           line.waiting.begin() + static_cast<ptrdiff_t>(line.next));
        line.next = 0;
      }
      auto n = tasks_.find(next);
      if (n != tasks_.end() && n->second.state == TaskState::kQueued) {
        line.head = next;
        Arm(n->second, now);
        break;
      }
    }
    // No task of this key is left: the ids behind it had all ended.
    if (line.head == 0) keys_.erase(keys_.find(t.line->first));
  }
  counters_[std::string("tasks.") + protocol::TaskStateName(state)]++;
  RecordEnd(record, state, now);
  fx.finished.push_back(id);
  const uint64_t job_id = t.job_id;
  if (job_id != 0) RecordPart(record);
  fx.store_puts.push_back(std::move(record));
  tasks_.erase(id);
  if (job_id != 0) SettleJob(job_id, now, fx);
}

Micros Engine::Backoff(uint32_t failures) {
  Micros d = config_.retry_backoff;
  for (uint32_t i = 1; i < failures && d < config_.retry_backoff_max; ++i) d *= 2;
  d = std::min(d, config_.retry_backoff_max);
  if (d <= 1) return d;
  return d / 2 + std::uniform_int_distribution<Micros>(0, d - d / 2)(rng_);
}

void Engine::Requeue(Task& t, bool failed, const std::string& reason, Now now, Effects& fx) {
  if (t.deadline_us > 0 && now.wall >= t.deadline_us) {
    t.SetError("deadline passed before it could run again" +
               (reason.empty() ? std::string() : ": " + reason));
    if (failed) ++t.failures;
    Finish(t, TaskState::kExpired, now, fx);
    return;
  }
  if (failed) {
    ++t.failures;
    if (t.failures >= t.max_attempts) {
      t.SetError("gave up after " + std::to_string(t.failures) + " failed attempts: " + reason);
      Finish(t, TaskState::kDead, now, fx);
      return;
    }
    t.SetError(reason);
    counters_["tasks.retried"]++;
  } else {
    counters_["tasks.released"]++;
  }
  if (t.holder) t.MutableExtra().worker = t.holder->hello.worker_id;  // the last attempt's
  LeaveState(t);
  t.state = TaskState::kQueued;
  CountQueued(t, 1);
  // A keyed task requeued here is still its key's head.
  if (failed) {
    t.run_after_us = now.wall + Backoff(t.failures);
    Arm(t, now);
    fx.store_puts.push_back(Record(t, /*with_payload=*/true));
  } else {
    Enqueue(t, now);
  }
}

// ------------------------------------------------------------------ workers

void Engine::Touch(const ConnId& conn, Now now) {
  auto it = workers_.find(conn);
  if (it != workers_.end()) it->second.last_seen = now.mono;
}

void Engine::OnHello(const ConnId& conn, const protocol::Hello& hello, Now now, Effects& fx) {
  auto reject = [&](protocol::DisconnectReason reason, const std::string& why,
                    const char* counter) {
    counters_[counter]++;
    fx.disconnects.push_back({conn, {reason, why}});
  };
  if (hello.worker_id.empty() || hello.worker_id.size() > kMaxWorkerIdLength) {
    return reject(protocol::DisconnectReason::kProtocolError,
                  "HELLO.worker_id must be 1.." + std::to_string(kMaxWorkerIdLength) + " bytes",
                  "rejected.bad_hello");
  }
  if (hello.handlers.empty() || hello.handlers.size() > kMaxHandlers) {
    return reject(protocol::DisconnectReason::kProtocolError,
                  "HELLO.handlers must list 1.." + std::to_string(kMaxHandlers) + " types",
                  "rejected.bad_hello");
  }
  if (hello.tags.size() > kMaxWorkerTags ||
      std::any_of(hello.tags.begin(), hello.tags.end(),
                  [](const std::string& t) { return t.empty() || t.size() > kMaxTagLength; })) {
    return reject(protocol::DisconnectReason::kProtocolError,
                  "HELLO.tags: at most " + std::to_string(kMaxWorkerTags) + " tags of 1.." +
                      std::to_string(kMaxTagLength) + " bytes",
                  "rejected.bad_hello");
  }
  for (const auto& h : hello.handlers) {
    if (h.empty() || h.size() > kMaxTypeLength) {
      return reject(
          protocol::DisconnectReason::kProtocolError,
          "HELLO.handlers: a type must be 1.." + std::to_string(kMaxTypeLength) + " bytes",
          "rejected.bad_hello");
    }
  }

  std::unordered_set<uint64_t> carried;  // tasks of the same process on an older connection
  auto same = workers_.find(conn);
  if (same != workers_.end()) {
    if (same->second.hello.worker_id != hello.worker_id) {
      return reject(protocol::DisconnectReason::kProtocolError,
                    "HELLO on a live session may not change worker_id", "rejected.bad_hello");
    }
    carried = std::move(same->second.inflight);
    same->second.inflight.clear();
    RemoveWorker(conn, false, "", now, fx);
  } else if (auto old = conn_by_worker_id_.find(hello.worker_id); old != conn_by_worker_id_.end()) {
    Worker& prev = workers_.at(old->second);
    const Micros dead_after = Micros{config_.liveness} * config_.heartbeat_ms * kMillis;
    if (prev.hello.incarnation == hello.incarnation) {
      carried = std::move(prev.inflight);
      prev.inflight.clear();
      RemoveWorker(prev.conn, false, "", now, fx);
    } else if (now.mono - prev.last_seen <= dead_after) {
      return reject(protocol::DisconnectReason::kDuplicateWorker,
                    "worker id '" + hello.worker_id + "' is already connected",
                    "rejected.duplicate_worker");
    } else {
      RemoveWorker(prev.conn, true, "worker " + hello.worker_id + " restarted", now, fx);
    }
  }

  Worker& w = workers_[conn];
  w.conn = conn;
  w.hello = hello;
  w.session = next_session_++;
  w.credit = std::min(hello.credit, kMaxCredit);
  w.last_seen = now.mono;
  w.connected_wall = now.wall;
  for (uint64_t id : carried) {
    auto t = tasks_.find(id);
    if (t != tasks_.end() && t->second.state == TaskState::kDispatched) {
      t->second.holder = &w;
      w.inflight.insert(id);
    }
  }
  w.tags = SortedUnique(hello.tags);
  conn_by_worker_id_[hello.worker_id] = conn;
  rotation_.push_back(conn);
  counters_["workers.registered"]++;
  fx.welcomes.push_back({conn,
                         {w.session, config_.heartbeat_ms, config_.liveness,
                          config_.max_message_bytes, config_.max_batch}});
}

void Engine::RemoveWorker(ConnId conn, bool count_failures, const std::string& reason, Now now,
                          Effects& fx) {
  auto it = workers_.find(conn);
  if (it == workers_.end()) return;
  const std::vector<uint64_t> inflight(it->second.inflight.begin(), it->second.inflight.end());
  for (uint64_t id : inflight) {
    auto t = tasks_.find(id);
    if (t != tasks_.end()) Requeue(t->second, count_failures, reason, now, fx);
  }
  auto byid = conn_by_worker_id_.find(it->second.hello.worker_id);
  if (byid != conn_by_worker_id_.end() && byid->second == conn) conn_by_worker_id_.erase(byid);
  workers_.erase(it);
  rotation_.erase(std::remove(rotation_.begin(), rotation_.end(), conn), rotation_.end());
  if (rotation_start_ >= rotation_.size()) rotation_start_ = 0;
}

void Engine::OnResults(const ConnId& conn, const protocol::Results& results, Now now, Effects& fx) {
  auto wit = workers_.find(conn);
  if (wit == workers_.end()) return;
  Worker& w = wit->second;
  w.credit = std::min<uint64_t>(uint64_t{w.credit} + results.credit, kMaxCredit);
  protocol::Ack ack;
  ack.refs.reserve(results.results.size());
  for (const auto& r : results.results) {
    ack.refs.push_back({r.id, r.attempt});
    auto it = tasks_.find(r.id);
    if (it == tasks_.end()) {
      counters_[r.outcome == Outcome::kCancelled ? "results.after_cancel" : "results.duplicate"]++;
      continue;
    }
    Task& t = it->second;
    const bool current =
        t.state == TaskState::kDispatched && t.holder == &w && r.attempt == t.attempt;
    if (r.outcome == Outcome::kOk) {
      // A late success still completes the task: the work is done, whoever holds it now.
      if (!current) counters_["results.late_accepted"]++;
      t.SetError({});
      ++w.completed;
      Finish(t, TaskState::kSucceeded, now, fx, r.output);
      continue;
    }
    if (!current) {
      counters_["results.stale"]++;
      continue;
    }
    switch (r.outcome) {
      case Outcome::kFailPermanent:
        ++w.failed;
        t.SetError(r.error);
        Finish(t, TaskState::kFailed, now, fx);
        break;
      case Outcome::kFailRetry:
      case Outcome::kCancelled:  // the master did not cancel this execution: count a failure
        ++w.failed;
        Requeue(t, true, r.error, now, fx);
        break;
      case Outcome::kReleased:
        Requeue(t, false, "", now, fx);
        break;
      case Outcome::kOk:
        break;
    }
  }
  counters_["results.received"] += results.results.size();
  if (!ack.refs.empty()) fx.acks.push_back({conn, std::move(ack)});
}

void Engine::OnCredit(const ConnId& conn, uint32_t credit) {
  auto it = workers_.find(conn);
  if (it == workers_.end()) return;
  it->second.credit = std::min<uint64_t>(uint64_t{it->second.credit} + credit, kMaxCredit);
}

void Engine::OnExtend(const ConnId& conn, const protocol::Extend& extend, Now now) {
  auto wit = workers_.find(conn);
  if (wit == workers_.end()) return;
  const Worker* w = &wit->second;
  const uint32_t lease_ms = std::min(extend.lease_ms, kMaxLeaseMs);
  for (const auto& ref : extend.refs) {
    auto it = tasks_.find(ref.id);
    if (it == tasks_.end()) continue;
    Task& t = it->second;
    if (t.state != TaskState::kDispatched || t.holder != w || t.attempt != ref.attempt) {
      continue;
    }
    t.when = now.mono + Micros{lease_ms} * kMillis;
    leases_.push({t.when, t.id, t.attempt});
    counters_["leases.extended"]++;
  }
}

void Engine::OnDisconnect(const ConnId& conn, Now now, Effects& fx) {
  if (!workers_.contains(conn)) return;
  counters_["workers.disconnected"]++;
  RemoveWorker(conn, false, "", now, fx);
}

// ------------------------------------------------------------------ time

void Engine::Tick(Now now, Effects& fx) {
  while (!scheduled_.empty() && scheduled_.top().due <= now.mono) {
    const Scheduled s = scheduled_.top();
    scheduled_.pop();
    auto it = tasks_.find(s.id);
    if (it == tasks_.end()) continue;
    Task& t = it->second;
    if (!t.in_backoff || t.run_after_us != s.run_after_us) continue;  // cancelled since
    t.in_backoff = false;
    --scheduled_count_;
    Enqueue(t, now);
  }
  while (!deadlines_.empty() && deadlines_.top().due <= now.mono) {
    const uint64_t id = deadlines_.top().id;
    deadlines_.pop();
    auto it = tasks_.find(id);
    // A dispatched task has started: its deadline applies again only if it must be retried.
    if (it == tasks_.end() || it->second.state != TaskState::kQueued) continue;
    it->second.SetError("deadline passed before it started");
    Finish(it->second, TaskState::kExpired, now, fx);
  }
  ExpireIdempotencyKeys(now.wall);
  const Micros dead_after = Micros{config_.liveness} * config_.heartbeat_ms * kMillis;
  std::vector<ConnId> dead;
  for (const auto& [conn, w] : workers_) {
    if (now.mono - w.last_seen > dead_after) dead.push_back(conn);
  }
  for (const auto& conn : dead) {
    const std::string id = workers_.at(conn).hello.worker_id;
    counters_["workers.lost"]++;
    fx.disconnects.push_back(
        {conn, {protocol::DisconnectReason::kHeartbeatTimeout, "missed heartbeats"}});
    RemoveWorker(conn, true, "worker " + id + " stopped answering", now, fx);
  }
  while (!leases_.empty() && leases_.top().deadline <= now.mono) {
    const Lease l = leases_.top();
    leases_.pop();
    auto it = tasks_.find(l.id);
    if (it == tasks_.end()) continue;
    Task& t = it->second;
    if (t.state != TaskState::kDispatched || t.attempt != l.attempt || t.when != l.deadline) {
      continue;  // finished, redispatched or extended since
    }
    counters_["leases.expired"]++;
    Requeue(t, true,
            "lease of " + std::to_string(t.timeout_ms) + " ms expired on worker " + WorkerName(t),
            now, fx);
  }
}

std::optional<Micros> Engine::NextDeadline() const {
  std::optional<Micros> next;
  if (!leases_.empty()) next = leases_.top().deadline;
  if (!scheduled_.empty() && (!next || scheduled_.top().due < *next)) next = scheduled_.top().due;
  if (!deadlines_.empty() && (!next || deadlines_.top().due < *next)) next = deadlines_.top().due;
  if (dispatch_after_ > 0 && ready_count_ > 0 && (!next || dispatch_after_ < *next)) {
    next = dispatch_after_;
  }
  const Micros dead_after = Micros{config_.liveness} * config_.heartbeat_ms * kMillis;
  for (const auto& [conn, w] : workers_) {
    const Micros d = w.last_seen + dead_after + 1;
    if (!next || d < *next) next = d;
  }
  return next;
}

uint64_t Engine::PopFor(Worker& w, Micros now) {
  if (w.routes_version != routes_version_) {
    w.routes.clear();
    for (auto& [key, route] : routes_) {
      if (std::find(w.hello.handlers.begin(), w.hello.handlers.end(), route.type) !=
              w.hello.handlers.end() &&
          IsSubset(route.requirements, w.tags)) {
        w.routes.push_back(&route);
      }
    }
    w.routes_version = routes_version_;
  }
  // The head of each queue is its longest-waiting task; pick the head with the best
  // effective priority (its priority less one level per `aging` waited), then the one eligible
  // first, then the lowest id (submitted first).
  std::deque<uint64_t>* best = nullptr;
  int64_t best_rank = 0;
  Micros best_since = 0;
  uint64_t best_id = 0;
  for (Route* route : w.routes) {
    for (size_t p = 0; p <= protocol::kLowestPriority; ++p) {
      auto& dq = route->queues[p];
      const Task* head = nullptr;
      while (!dq.empty()) {  // drop entries of tasks that left the ready state
        auto t = tasks_.find(dq.front());
        if (t != tasks_.end() && t->second.in_ready) {
          head = &t->second;
          break;
        }
        dq.pop_front();
      }
      if (!head) continue;
      const uint64_t id = head->id;
      const Micros since = head->when;
      int64_t rank = static_cast<int64_t>(p);
      if (config_.aging > 0) rank = std::max<int64_t>(0, rank - (now - since) / config_.aging);
      if (!best || std::tie(rank, since, id) < std::tie(best_rank, best_since, best_id)) {
        best = &dq;
        best_rank = rank;
        best_since = since;
        best_id = id;
      }
      if (config_.aging == 0) break;  // lower levels of this route cannot beat it
    }
  }
  if (!best) return 0;
  const uint64_t id = best->front();
  best->pop_front();
  return id;
}

std::vector<std::pair<ConnId, protocol::Tasks>> Engine::Dispatch(Now now) {
  std::vector<std::pair<ConnId, protocol::Tasks>> out;
  const size_t n = rotation_.size();
  if (now.mono < dispatch_after_) return out;
  dispatch_after_ = 0;
  if (n == 0 || ready_count_ == 0) return out;
  std::vector<protocol::Tasks> batches(n);
  bool progress = true;
  while (ready_count_ > 0 && progress) {
    progress = false;
    size_t eligible = 0;
    for (const auto& conn : rotation_) eligible += workers_.at(conn).credit > 0 ? 1 : 0;
    if (eligible == 0) break;
    const uint64_t share = std::max<uint64_t>(1, (ready_count_ + eligible - 1) / eligible);
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (rotation_start_ + k) % n;
      Worker& w = workers_.at(rotation_[i]);
      const uint64_t take = std::min<uint64_t>(w.credit, share);
      for (uint64_t j = 0; j < take; ++j) {
        const uint64_t id = PopFor(w, now.mono);
        if (id == 0) break;
        Task& t = tasks_.at(id);
        t.in_ready = false;
        --ready_count_;
        CountQueued(t, -1);
        ++dispatched_;
        t.state = TaskState::kDispatched;
        ++t.attempt;
        t.dispatched_us = now.wall;
        t.holder = &w;
        t.when = now.mono + Micros{t.timeout_ms} * kMillis;
        leases_.push({t.when, id, t.attempt});
        w.inflight.insert(id);
        --w.credit;
        batches[i].tasks.push_back({id, t.attempt, t.route->type, t.payload, t.timeout_ms});
        progress = true;
      }
    }
  }
  rotation_start_ = (rotation_start_ + 1) % n;
  for (size_t i = 0; i < n; ++i) {
    auto& tasks = batches[i].tasks;
    counters_["tasks.dispatches"] += tasks.size();
    // Chunks of at most max_batch tasks and max_batch_bytes of payload (at least one task).
    protocol::Tasks chunk;
    uint64_t bytes = 0;
    for (auto& t : tasks) {
      if (!chunk.tasks.empty() && (chunk.tasks.size() >= config_.max_batch ||
                                   bytes + t.payload.size() > config_.max_batch_bytes)) {
        out.push_back({rotation_[i], std::move(chunk)});
        chunk = {};
        bytes = 0;
      }
      bytes += t.payload.size();
      chunk.tasks.push_back(std::move(t));
    }
    if (!chunk.tasks.empty()) out.push_back({rotation_[i], std::move(chunk)});
  }
  return out;
}

// ------------------------------------------------------------------ introspection

std::vector<ConnId> Engine::WorkerConns() const { return rotation_; }

std::vector<protocol::WorkerInfo> Engine::WorkerInfos(Now now) const {
  std::vector<protocol::WorkerInfo> out;
  out.reserve(rotation_.size());
  for (const auto& conn : rotation_) {
    const Worker& w = workers_.at(conn);
    protocol::WorkerInfo i;
    i.worker_id = w.hello.worker_id;
    i.hostname = w.hello.hostname;
    i.pid = w.hello.pid;
    i.handlers = w.hello.handlers;
    i.slots = w.hello.slots;
    i.credit = w.credit;
    i.inflight = static_cast<uint32_t>(w.inflight.size());
    i.completed = w.completed;
    i.failed = w.failed;
    i.connected_us = w.connected_wall;
    i.last_seen_ms = static_cast<uint32_t>(std::max<Micros>(0, now.mono - w.last_seen) / kMillis);
    out.push_back(std::move(i));
  }
  return out;
}

namespace {
// LIST's filters (state, type, key, job), whichever form the task is kept in.
bool ListFiltersMatch(const protocol::List& f, TaskState state, std::string_view type,
                      std::string_view key, uint64_t job_id) {
  return (!f.state || state == *f.state) && (f.type.empty() || type == f.type) &&
         (f.key.empty() || key == f.key) && (f.job_id == 0 || job_id == f.job_id);
}
}  // namespace

bool Engine::MatchesList(const protocol::List& f, const TaskInfo& t) {
  return ListFiltersMatch(f, t.state, t.type, t.key, t.job_id);
}

std::vector<TaskInfo> Engine::ListActive(const protocol::List& f, size_t limit) const {
  auto matches = [&f](const Task& t) {
    return ListFiltersMatch(f, t.state, t.route->type,
                            t.line ? std::string_view(t.line->first) : std::string_view(),
                            t.job_id);
  };
  std::vector<const Task*> match;
  for (const auto& [id, t] : tasks_) {
    if (id > f.after_id && matches(t)) match.push_back(&t);
  }
  const size_t n = std::min(limit, match.size());
  std::partial_sort(match.begin(), match.begin() + static_cast<ptrdiff_t>(n), match.end(),
                    [](const Task* a, const Task* b) { return a->id < b->id; });
  std::vector<TaskInfo> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(Record(*match[i], /*with_payload=*/false));
  return out;
}

Engine::TypeCounts& Engine::CountsOf(const std::string& type) {
  auto it = by_type_.find(type);
  if (it != by_type_.end()) return it->second;
  return by_type_.size() < kMaxTrackedTypes ? by_type_[type] : by_type_["_other"];
}

void Engine::RecordEnd(const TaskInfo& info, TaskState state, Now now) {
  TypeCounts& c = CountsOf(info.type);
  --c.active;
  ++c.ended[static_cast<size_t>(state) % c.ended.size()];
  if (info.submitted_us <= 0) return;
  const auto took = static_cast<uint64_t>(std::max<int64_t>(0, now.wall - info.submitted_us));
  const auto* bound = std::lower_bound(kLatencyBoundsUs.begin(), kLatencyBoundsUs.end(), took);
  ++latency_buckets_[static_cast<size_t>(bound - kLatencyBoundsUs.begin())];
  latency_sum_us_ += took;
  ++latency_count_;
}

std::map<std::string, uint64_t> Engine::Stats() const {
  auto s = counters_;
  for (size_t p = 0; p < queued_by_priority_.size(); ++p) {
    if (queued_by_priority_[p] != 0) {
      s["tasks.queued_by_priority." + std::to_string(p)] = queued_by_priority_[p];
    }
  }
  for (const auto& [type, c] : by_type_) {
    s["tasks.active_by_type." + type] = c.active;
    for (size_t st = 0; st < c.ended.size(); ++st) {
      if (c.ended[st] == 0) continue;
      s["tasks.ended_by_type." + type + "." + protocol::TaskStateName(static_cast<TaskState>(st))] =
          c.ended[st];
    }
  }
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kLatencyBoundsUs.size(); ++i) {
    cumulative += latency_buckets_[i];
    s["task_latency_us.le." + std::to_string(kLatencyBoundsUs[i])] = cumulative;
  }
  s["task_latency_us.le.inf"] = latency_count_;
  s["task_latency_us.sum"] = latency_sum_us_;
  s["task_latency_us.count"] = latency_count_;
  s["tasks.queued"] = queued_;
  s["tasks.ready"] = ready_count_;
  s["tasks.running"] = dispatched_;
  s["tasks.scheduled"] = scheduled_count_;
  s["jobs.open"] = jobs_.size();
  s["idempotency.keys"] = idem_.size();
  s["tasks.active"] = tasks_.size();
  s["workers.connected"] = workers_.size();
  s["workers.heartbeat_ms"] = config_.heartbeat_ms;
  return s;
}

}  // namespace yard::core
