// Client: the client-port protocol (docs/protocol.md) as blocking calls, for the CLI, the
// benchmark harness and tests. Not thread-safe: one thread per Client.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/protocol/messages.h"
#include "common/status.h"
#include "common/transport/socket.h"

namespace yard::cli {

class Client {
 public:
  // Does not block: ZeroMQ connects in the background. `connect_timeout` bounds how long a
  // call waits for the connection and for a reply: past it the call returns kUnavailable
  // (master unreachable) or kDeadlineExceeded (no answer).
  static StatusOr<std::unique_ptr<Client>> Create(transport::Context& ctx,
                                                  const std::string& endpoint,
                                                  Micros connect_timeout);

  StatusOr<std::vector<uint64_t>> Submit(const std::vector<protocol::TaskSpec>& tasks);
  StatusOr<std::vector<std::optional<protocol::TaskInfo>>> Get(const std::vector<uint64_t>& ids,
                                                               bool with_payload);
  // Waits up to `wait` for the task to finish; returns its state then (finished or not).
  StatusOr<std::optional<protocol::TaskInfo>> Wait(uint64_t id, Micros wait);
  StatusOr<protocol::TaskState> Cancel(uint64_t id);
  StatusOr<std::vector<protocol::WorkerInfo>> Workers();
  StatusOr<std::map<std::string, uint64_t>> Stats();
  // Dead letters: one page after `after_id` (limit 0: the master's page size).
  StatusOr<protocol::DeadListReply> DeadList(uint64_t after_id, uint32_t limit);
  // The listed dead letters, or with `all` one page of them (repeat while the reply's `more`).
  StatusOr<protocol::DeadReply> DeadRequeue(const std::vector<uint64_t>& ids, bool all);
  StatusOr<protocol::DeadReply> DeadPurge(const std::vector<uint64_t>& ids, bool all);

  // Jobs. JobSubmit returns once the job and all its parts are durable; the master validates
  // the splitter and aggregator and answers kInvalidArgument with the reason.
  StatusOr<protocol::JobSubmitReply> JobSubmit(const protocol::JobSpec& spec);
  // The job with its progress; `with_result` false leaves the (possibly large) result out.
  // kNotFound if no job has this id.
  StatusOr<protocol::JobInfo> JobGet(uint64_t id, bool with_result);
  // Cancels an open job and its active parts; returns the job after the request.
  StatusOr<protocol::JobInfo> JobCancel(uint64_t id);

  // One page of tasks matching the request's filters (its req_id is ignored): continue with
  // after_id = next_after_id while `more`.
  StatusOr<protocol::ListReply> List(const protocol::List& request);

  const std::string& endpoint() const { return endpoint_; }

 private:
  Client(std::string endpoint, Micros connect_timeout)
      : endpoint_(std::move(endpoint)), timeout_(connect_timeout) {}
  template <typename Reply, typename Request>
  StatusOr<Reply> Call(Request req, Micros extra_wait = 0);

  std::string endpoint_;
  Micros timeout_;
  std::unique_ptr<transport::Socket> sock_;
  std::unique_ptr<transport::Poller> poller_;
  uint64_t next_req_ = 1;
  bool connected_ = false;
};

}  // namespace yard::cli
