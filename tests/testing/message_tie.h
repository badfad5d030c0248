// Field-by-field views of every wire message, so that gtest can compare and print them.
// Shared by the codec and golden-bytes tests; declared beside the messages so that
// unqualified calls find them.
#pragma once

#include <optional>
#include <tuple>
#include <vector>

#include "common/protocol/messages.h"

namespace yard::protocol {

inline auto Tie(const Hello& m) {
  return std::tie(m.worker_id, m.incarnation, m.handlers, m.slots, m.credit, m.hostname, m.pid,
                  m.tags);
}
inline auto Tie(const Welcome& m) {
  return std::tie(m.session, m.heartbeat_ms, m.liveness, m.max_message_bytes, m.max_batch);
}
inline auto Tie(const TaskMsg& m) {
  return std::tie(m.id, m.attempt, m.type, m.payload, m.lease_ms);
}
inline auto Tie(const ResultMsg& m) {
  return std::tie(m.id, m.attempt, m.outcome, m.output, m.error, m.duration_us);
}
inline auto Tie(const TaskRef& m) { return std::tie(m.id, m.attempt); }
inline auto Tie(const TaskSpec& m) {
  return std::tie(m.type, m.payload, m.key, m.priority, m.max_attempts, m.timeout_ms,
                  m.idempotency_key, m.delay_ms, m.not_before_us, m.deadline_ms, m.requirements);
}
inline auto Tie(const TaskInfo& m) {
  return std::tie(m.id, m.type, m.state, m.priority, m.key, m.attempt, m.failures, m.max_attempts,
                  m.timeout_ms, m.payload, m.result, m.error, m.worker, m.submitted_us,
                  m.dispatched_us, m.finished_us, m.run_after_us, m.idempotency_key, m.deadline_us,
                  m.requirements, m.job_id, m.part);
}
inline auto Tie(const PartFailure& m) { return std::tie(m.part, m.task_id, m.state, m.error); }
inline auto Tie(const JobInfo& m) {
  std::vector<std::tuple<const uint32_t&, const uint64_t&, const TaskState&, const std::string&>>
      failures;
  for (const auto& f : m.failures) failures.push_back(Tie(f));
  return std::make_tuple(m.id, m.type, m.split, m.aggregate, m.policy, m.state, m.parts,
                         m.first_task_id, m.reduce_task_id, m.queued, m.running, m.succeeded,
                         m.failed, m.cancelled, m.result, m.error, failures, m.submitted_us,
                         m.finished_us, m.priority, m.key, m.max_attempts, m.timeout_ms,
                         m.requirements);
}
inline auto Tie(const WorkerInfo& m) {
  return std::tie(m.worker_id, m.hostname, m.pid, m.handlers, m.slots, m.credit, m.inflight,
                  m.completed, m.failed, m.connected_us, m.last_seen_ms);
}
template <typename T>
auto Ties(const std::vector<T>& v) {
  std::vector<decltype(Tie(v.front()))> out;
  for (const auto& x : v) out.push_back(Tie(x));
  return out;
}
inline auto Tie(const Tasks& m) { return std::make_tuple(Ties(m.tasks)); }
inline auto Tie(const Results& m) { return std::make_tuple(m.credit, Ties(m.results)); }
inline auto Tie(const Credit& m) { return std::tie(m.credit); }
inline auto Tie(const Ack& m) { return std::make_tuple(Ties(m.refs)); }
inline auto Tie(const Heartbeat&) { return std::make_tuple(); }
inline auto Tie(const Extend& m) { return std::make_tuple(Ties(m.refs), m.lease_ms); }
inline auto Tie(const Disconnect& m) { return std::tie(m.reason, m.message); }
inline auto Tie(const Submit& m) { return std::make_tuple(m.req_id, Ties(m.tasks)); }
inline auto Tie(const SubmitReply& m) { return std::tie(m.req_id, m.ids); }
inline auto Tie(const Get& m) { return std::tie(m.req_id, m.ids, m.with_payload); }
inline auto Tie(const GetReply& m) {
  std::vector<std::optional<decltype(Tie(TaskInfo{}))>> tasks;
  for (const auto& t : m.tasks) {
    if (t) {
      tasks.emplace_back(Tie(*t));
    } else {
      tasks.emplace_back(std::nullopt);
    }
  }
  return std::make_tuple(m.req_id, tasks);
}
inline auto Tie(const Wait& m) { return std::tie(m.req_id, m.id, m.timeout_ms); }
inline auto Tie(const Cancel& m) { return std::tie(m.req_id, m.id); }
inline auto Tie(const CancelReply& m) { return std::tie(m.req_id, m.state); }
inline auto Tie(const Workers& m) { return std::tie(m.req_id); }
inline auto Tie(const WorkersReply& m) { return std::make_tuple(m.req_id, Ties(m.workers)); }
inline auto Tie(const Stats& m) { return std::tie(m.req_id); }
inline auto Tie(const StatsReply& m) { return std::tie(m.req_id, m.counters); }
inline auto Tie(const Error& m) { return std::tie(m.req_id, m.code, m.message); }
inline auto Tie(const DeadList& m) { return std::tie(m.req_id, m.after_id, m.limit); }
inline auto Tie(const DeadListReply& m) { return std::make_tuple(m.req_id, Ties(m.tasks), m.more); }
inline auto Tie(const DeadRequeue& m) { return std::tie(m.req_id, m.ids, m.all); }
inline auto Tie(const DeadPurge& m) { return std::tie(m.req_id, m.ids, m.all); }
inline auto Tie(const DeadReply& m) { return std::tie(m.req_id, m.count, m.more); }

}  // namespace yard::protocol
