// Engine: jobs. A job is bookkeeping over ordinary tasks: its parts have consecutive ids right
// after the job's own id, carry job_id and part, and run, retry and recover like any task. The
// job only watches them end (RecordPart, called from Finish) and then moves on (SettleJob):
// fail-fast on the first failure, the reduce task, or the aggregate.
#include <algorithm>

#include "master/core/engine.h"
#include "master/jobs/split.h"

namespace yard::core {

using protocol::JobInfo;
using protocol::JobPolicy;
using protocol::JobState;
using protocol::TaskInfo;
using protocol::TaskSpec;
using protocol::TaskState;

namespace {
// A job record lists at most this many failed parts; `failed` counts them all.
constexpr size_t kMaxListedFailures = 1000;
constexpr size_t kMaxSpecLength = 256;
}  // namespace

StatusOr<protocol::JobSubmitReply> Engine::SubmitJob(const protocol::JobSpec& spec, Now now,
                                                     Effects& fx) {
  const TaskSpec& ts = spec.task;
  RETURN_IF_ERROR(ValidateSpec(ts, "job: ", now, /*check_payload=*/false));
  if (!ts.idempotency_key.empty()) {
    return InvalidArgument("job: idempotency keys are not supported on jobs");
  }
  if (spec.split.size() > kMaxSpecLength || spec.aggregate.size() > kMaxSpecLength) {
    return InvalidArgument("job: splitter and aggregator specs are at most " +
                           std::to_string(kMaxSpecLength) + " bytes");
  }
  if (RouteLimitReached(ts.type, ts.requirements)) {
    return ResourceExhausted("too many distinct (type, required tags) combinations");
  }
  ASSIGN_OR_RETURN(const jobs::SplitSpec split, jobs::ParseSplit(spec.split));
  ASSIGN_OR_RETURN(const jobs::AggregateSpec aggregate, jobs::ParseAggregate(spec.aggregate));
  auto split_parts =
      jobs::Split(split, ts.payload, config_.max_job_tasks, config_.max_payload_bytes);
  if (!split_parts.ok()) return split_parts.status();
  std::vector<std::string> parts = std::move(split_parts).value();
  RETURN_IF_ERROR(Admit(parts.size(), parts.size()));

  const uint64_t job_id = next_id_++;
  JobInfo info;
  info.id = job_id;
  info.type = ts.type;
  info.split = spec.split;
  info.aggregate = spec.aggregate;
  info.policy = spec.policy;
  info.state = JobState::kRunning;
  info.parts = static_cast<uint32_t>(parts.size());
  info.first_task_id = next_id_;
  info.submitted_us = now.wall;
  info.priority = ts.priority;
  info.key = ts.key;
  info.max_attempts = ts.max_attempts ? ts.max_attempts : config_.default_max_attempts;
  info.timeout_ms = ts.timeout_ms ? ts.timeout_ms : config_.default_timeout_ms;
  info.requirements = ts.requirements;
  fx.job_puts.push_back(info);
  const uint32_t n = info.parts;
  jobs_.try_emplace(job_id,
                    Job{std::move(info), aggregate, jobs::Aggregation(aggregate, n), false, {}});

  TaskSpec part = ts;
  part.payload.clear();
  for (uint32_t i = 0; i < n; ++i) {
    fx.created.push_back(CreateTask(part, std::move(parts[i]), now, fx, job_id, i).id);
  }
  counters_["jobs.submitted"]++;
  counters_["tasks.submitted"] += n;
  return protocol::JobSubmitReply{0, job_id, n, job_id + 1};
}

std::optional<JobInfo> Engine::FindJob(uint64_t id) const {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  JobInfo info = it->second.info;
  auto count = [&](uint64_t task_id) {
    auto t = tasks_.find(task_id);
    if (t == tasks_.end()) return;
    if (t->second.state == TaskState::kDispatched) {
      ++info.running;
    } else {
      ++info.queued;
    }
  };
  for (uint64_t t = info.first_task_id; t < info.first_task_id + info.parts; ++t) count(t);
  if (info.reduce_task_id != 0) count(info.reduce_task_id);
  return info;
}

StatusOr<JobInfo> Engine::CancelJob(uint64_t id, Now now, Effects& fx) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return NotFound("job " + std::to_string(id) + " is not open");
  Job& job = it->second;
  job.info.state = JobState::kCancelled;  // parts cancelled below are counted, not listed
  job.info.error = "cancelled";
  const std::string reason = "job " + std::to_string(id) + " cancelled";
  for (uint64_t t = job.info.first_task_id; t < job.info.first_task_id + job.info.parts; ++t) {
    if (auto p = tasks_.find(t); p != tasks_.end()) CancelTask(p->second, reason, now, fx);
  }
  if (auto r = tasks_.find(job.info.reduce_task_id); r != tasks_.end()) {
    CancelTask(r->second, reason, now, fx);
  }
  CloseJob(job, JobState::kCancelled, now, fx);
  return fx.job_puts.back();
}

void Engine::RecordPart(const TaskInfo& info) {
  auto it = jobs_.find(info.job_id);
  if (it == jobs_.end()) return;
  Job& job = it->second;
  JobInfo& j = job.info;
  if (info.part == protocol::kReducePart) {
    if (info.id != j.reduce_task_id) return;
    job.reduce_ended = true;
    job.reduce_outcome = info;
    return;
  }
  if (info.part >= j.parts || info.id != j.first_task_id + info.part) return;
  auto fail = [&](TaskState state, const std::string& error) {
    if (protocol::IsTerminal(j.state)) return;  // the job ended: the rest are only counted
    if (j.failures.size() < kMaxListedFailures) {
      j.failures.push_back({info.part, info.id, state, error});
    }
  };
  switch (info.state) {
    case TaskState::kSucceeded:
      if (Status st = job.aggregation.Add(info.part, info.result); st.ok()) {
        ++j.succeeded;
      } else {
        ++j.failed;
        fail(TaskState::kFailed, st.message());
      }
      break;
    case TaskState::kCancelled:
      ++j.cancelled;
      fail(info.state, info.error);
      break;
    default:  // failed, dead, expired
      ++j.failed;
      fail(info.state, info.error);
      break;
  }
}

void Engine::SettleJob(uint64_t job_id, Now now, Effects& fx) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  Job& job = it->second;
  JobInfo& j = job.info;
  if (j.state == JobState::kReducing) {
    if (!job.reduce_ended) return;
    const TaskInfo& r = job.reduce_outcome;
    if (r.state == TaskState::kSucceeded) {
      j.result = r.result;
      return CloseJob(job, j.failures.empty() ? JobState::kSucceeded : JobState::kPartial, now, fx);
    }
    j.error = "reduce task " + std::to_string(r.id) + " " + protocol::TaskStateName(r.state) +
              ": " + r.error;
    return CloseJob(job, JobState::kFailed, now, fx);
  }
  if (j.state != JobState::kRunning) return;

  if (j.policy == JobPolicy::kFailFast && !j.failures.empty()) {
    const protocol::PartFailure& f = j.failures.front();
    j.error = "part " + std::to_string(f.part) + " (task " + std::to_string(f.task_id) + ") " +
              protocol::TaskStateName(f.state) + ": " + f.error;
    j.state = JobState::kFailed;  // the parts cancelled below are counted, not listed
    const std::string reason = "job " + std::to_string(job_id) + " failed";
    for (uint64_t t = j.first_task_id; t < j.first_task_id + j.parts; ++t) {
      if (auto p = tasks_.find(t); p != tasks_.end()) CancelTask(p->second, reason, now, fx);
    }
    return CloseJob(job, JobState::kFailed, now, fx);
  }
  if (j.succeeded + j.failed + j.cancelled < j.parts) return;
  if (j.succeeded == 0) {
    j.error = "no part succeeded";
    if (!j.failures.empty())
      j.error +=
          " (first: part " + std::to_string(j.failures[0].part) + ": " + j.failures[0].error + ")";
    return CloseJob(job, JobState::kFailed, now, fx);
  }
  auto out = job.aggregation.Finish();
  if (!out.ok()) {
    j.error = out.status().message();
    return CloseJob(job, JobState::kFailed, now, fx);
  }
  if (job.aggregate.kind == jobs::AggregateSpec::Kind::kReduce) {
    if (out->size() > config_.max_payload_bytes) {
      j.error = "the reduce task's input of " + std::to_string(out->size()) +
                " bytes is over the payload limit of " + std::to_string(config_.max_payload_bytes);
      return CloseJob(job, JobState::kFailed, now, fx);
    }
    TaskSpec spec;
    spec.type = job.aggregate.reduce_type;
    spec.priority = j.priority;
    spec.key = j.key;
    spec.max_attempts = j.max_attempts;
    spec.timeout_ms = j.timeout_ms;
    spec.requirements = j.requirements;
    Task& t = CreateTask(spec, std::move(*out), now, fx, job_id, protocol::kReducePart);
    fx.created.push_back(t.id);
    counters_["tasks.submitted"]++;
    j.reduce_task_id = t.id;
    j.state = JobState::kReducing;
    fx.job_puts.push_back(j);
    return;
  }
  j.result = std::move(*out);
  CloseJob(job, j.failures.empty() ? JobState::kSucceeded : JobState::kPartial, now, fx);
}

void Engine::CloseJob(Job& job, JobState state, Now now, Effects& fx) {
  const uint64_t id = job.info.id;
  job.info.state = state;
  job.info.finished_us = now.wall;
  job.info.queued = 0;
  job.info.running = 0;
  counters_[std::string("jobs.") + protocol::JobStateName(state)]++;
  fx.job_puts.push_back(std::move(job.info));
  jobs_.erase(id);
}

// ------------------------------------------------------------------ recovery

void Engine::RestoreJob(JobInfo&& info) {
  auto aggregate = jobs::ParseAggregate(info.aggregate);
  // The spec was checked when the job was submitted; a record that no longer parses (a newer
  // master's aggregator) is aggregated as collect rather than lost.
  const jobs::AggregateSpec spec =
      aggregate.ok() ? *aggregate : jobs::AggregateSpec{jobs::AggregateSpec::Kind::kCollect, {}};
  info.queued = info.running = info.succeeded = info.failed = info.cancelled = 0;
  info.failures.clear();
  info.result.clear();
  const uint64_t last = std::max(info.first_task_id + info.parts, info.reduce_task_id + 1);
  next_id_ = std::max({next_id_, info.id + 1, last});
  const uint64_t id = info.id;
  const uint32_t n = info.parts;
  jobs_.try_emplace(id, Job{std::move(info), spec, jobs::Aggregation(spec, n), false, {}});
}

std::vector<std::pair<uint64_t, uint64_t>> Engine::EndedPartIds() const {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const auto& [id, job] : jobs_) {
    const JobInfo& j = job.info;
    for (uint64_t t = j.first_task_id; t < j.first_task_id + j.parts; ++t) {
      if (!tasks_.contains(t)) out.push_back({id, t});
    }
    if (j.reduce_task_id != 0 && !tasks_.contains(j.reduce_task_id)) {
      out.push_back({id, j.reduce_task_id});
    }
  }
  return out;
}

void Engine::RestoreEndedPart(uint64_t job_id, uint64_t task_id,
                              const std::optional<TaskInfo>& record) {
  if (record && record->job_id == job_id && protocol::IsTerminal(record->state)) {
    return RecordPart(*record);
  }
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  const JobInfo& j = it->second.info;
  TaskInfo gone;
  gone.id = task_id;
  gone.job_id = job_id;
  gone.part = task_id == j.reduce_task_id ? protocol::kReducePart
                                          : static_cast<uint32_t>(task_id - j.first_task_id);
  gone.state = TaskState::kFailed;
  gone.error = "its record is gone (it expired before the job ended)";
  RecordPart(gone);
}

void Engine::FinishJobRestore(Now now, Effects& fx) {
  std::vector<uint64_t> ids;
  ids.reserve(jobs_.size());
  for (const auto& [id, job] : jobs_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) SettleJob(id, now, fx);
}

}  // namespace yard::core
