// ClientMasterApi: MasterApi over the master's client protocol (docs/protocol.md), on a
// DEALER socket. In one process with the core it connects to the core's inproc endpoint; as a
// separate role it connects to the core's TCP client port. Either way a plugin gets exactly
// the guarantees the CLI gets: a SUBMIT is answered only after its group commit.
#pragma once

#include <deque>
#include <memory>
#include <unordered_map>

#include "common/clock.h"
#include "master/api/master_api.h"

namespace yard::api {

struct ClientApiOptions {
  std::string endpoint;                      // inproc://... or tcp://host:port
  Micros request_timeout = 30 * kSeconds;    // an unanswered call fails with kDeadlineExceeded
  Micros job_poll_interval = 100 * kMillis;  // how often watched jobs are checked
};

class ClientMasterApi final : public MasterApi {
 public:
  static StatusOr<std::unique_ptr<ClientMasterApi>> Create(transport::Context& ctx,
                                                           const ClientApiOptions& options,
                                                           const Clock& clock);
  ~ClientMasterApi() override;

  void Submit(std::vector<protocol::TaskSpec> tasks, Callback<std::vector<uint64_t>> done) override;
  void SubmitJob(protocol::JobSpec job, Callback<protocol::JobSubmitReply> done) override;
  void Get(uint64_t id, bool with_payload,
           Callback<std::optional<protocol::TaskInfo>> done) override;
  void GetJob(uint64_t id, bool with_result, Callback<protocol::JobInfo> done) override;
  void List(protocol::List request, Callback<protocol::ListReply> done) override;
  void Cancel(uint64_t id, Callback<protocol::TaskState> done) override;
  void CancelJob(uint64_t id, Callback<protocol::JobInfo> done) override;
  void WatchTask(uint64_t id, Micros limit, Callback<protocol::TaskInfo> done) override;
  void WatchJob(uint64_t id, Micros limit, Callback<protocol::JobInfo> done) override;
  void Stats(Callback<std::map<std::string, uint64_t>> done) override;
  void Workers(Callback<std::vector<protocol::WorkerInfo>> done) override;
  void DeadList(uint64_t after_id, uint32_t limit, Callback<protocol::DeadListReply> done) override;
  void DeadRequeue(std::vector<uint64_t> ids, bool all,
                   Callback<protocol::DeadReply> done) override;
  void DeadPurge(std::vector<uint64_t> ids, bool all, Callback<protocol::DeadReply> done) override;
  size_t AddTo(transport::Poller& poller) override;
  void Process() override;
  size_t Outstanding() const override { return calls_.size() + job_watches_.size(); }

 private:
  ClientMasterApi(const ClientApiOptions& options, const Clock& clock)
      : options_(options), clock_(clock) {}
  // Sends `req` (or queues it while the socket cannot take it) and runs `on_reply` with the
  // decoded reply, or with the error the master or a timeout gave.
  template <typename Reply, typename Request>
  void Call(Request req, Callback<Reply> on_reply, Micros timeout = 0);
  void SendQueued();
  void Receive();
  void ExpireCalls(Micros now);
  void PollJobs(Micros now);
  void WaitStep(uint64_t id, Micros deadline, std::shared_ptr<Callback<protocol::TaskInfo>> done);

  struct PendingCall {
    // Decodes the body of `command`, or reports `error` when it is not OK.
    std::function<void(protocol::Command command, std::string_view body, Status error)> handle;
    Micros deadline = 0;
  };
  ClientApiOptions options_;
  const Clock& clock_;
  std::unique_ptr<transport::Socket> sock_;
  uint64_t next_req_ = 1;
  std::unordered_map<uint64_t, PendingCall> calls_;
  std::deque<std::pair<std::string, std::string>> unsent_;  // header, body
  struct JobWatch {
    Micros deadline = 0;
    bool polling = false;
    std::vector<Callback<protocol::JobInfo>> done;
  };
  std::unordered_map<uint64_t, JobWatch> job_watches_;
  Micros next_job_poll_ = 0;
  Micros next_expiry_check_ = 0;
};

}  // namespace yard::api
