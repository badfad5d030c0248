// MasterApi: the narrow facade through which a plugin (mqtt, web) sees the master: submit a
// task or a job, get, list, cancel, watch a task or job until it ends, and read the stats.
// Nothing else of the master is visible to plugins, so a plugin runs the same whether the
// core is in its process (standalone) or on another host (distributed roles).
//
// Every call is asynchronous: it returns at once and its callback runs later, on the thread
// that calls Process(), never inside the call itself. One thread owns an instance.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/protocol/messages.h"
#include "common/status.h"
#include "common/transport/socket.h"

namespace yard::api {

template <typename T>
using Callback = std::function<void(StatusOr<T>)>;

class MasterApi {
 public:
  virtual ~MasterApi() = default;

  // Ids in order once every task is durable (the master's group commit). Refusals keep their
  // code: kInvalidArgument (bad task), kResourceExhausted (queue full), kUnavailable
  // (draining, store failing, master unreachable), kDeadlineExceeded (no answer in time).
  virtual void Submit(std::vector<protocol::TaskSpec> tasks,
                      Callback<std::vector<uint64_t>> done) = 0;
  virtual void SubmitJob(protocol::JobSpec job, Callback<protocol::JobSubmitReply> done) = 0;
  // nullopt when no task has this id.
  virtual void Get(uint64_t id, bool with_payload,
                   Callback<std::optional<protocol::TaskInfo>> done) = 0;
  // kNotFound when no job has this id.
  virtual void GetJob(uint64_t id, bool with_result, Callback<protocol::JobInfo> done) = 0;
  virtual void List(protocol::List request, Callback<protocol::ListReply> done) = 0;
  virtual void Cancel(uint64_t id, Callback<protocol::TaskState> done) = 0;
  virtual void CancelJob(uint64_t id, Callback<protocol::JobInfo> done) = 0;
  // Task and job events: `done` runs once, when the task (with its result) or the job (with
  // its result) has ended. kNotFound for an unknown id; kDeadlineExceeded past `limit`.
  virtual void WatchTask(uint64_t id, Micros limit, Callback<protocol::TaskInfo> done) = 0;
  virtual void WatchJob(uint64_t id, Micros limit, Callback<protocol::JobInfo> done) = 0;
  // The master's counters and gauges (those of `yard stats`).
  virtual void Stats(Callback<std::map<std::string, uint64_t>> done) = 0;
  // The connected workers.
  virtual void Workers(Callback<std::vector<protocol::WorkerInfo>> done) = 0;
  // Dead letters after `after_id`, at most `limit` (0: the master's page size).
  virtual void DeadList(uint64_t after_id, uint32_t limit,
                        Callback<protocol::DeadListReply> done) = 0;
  // Runs dead letters again (requeue) or forgets them (purge): `ids`, or with `all` one page
  // of them (repeat while the reply says `more`).
  virtual void DeadRequeue(std::vector<uint64_t> ids, bool all,
                           Callback<protocol::DeadReply> done) = 0;
  virtual void DeadPurge(std::vector<uint64_t> ids, bool all,
                         Callback<protocol::DeadReply> done) = 0;

  // Adds what makes this API ready to `poller`; returns its index there. The owner polls it
  // with its own descriptors and calls Process() when it is readable, or at least every
  // kMaxProcessIntervalMs (timeouts and job watches are served from Process()).
  virtual size_t AddTo(transport::Poller& poller) = 0;
  static constexpr int kMaxProcessIntervalMs = 50;
  // Runs the callbacks of every answer received so far. Never blocks.
  virtual void Process() = 0;
  // Calls whose callback has not run yet (watches included).
  virtual size_t Outstanding() const = 0;
};

}  // namespace yard::api
