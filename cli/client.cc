#include "cli/client.h"

#include <thread>

#include "common/protocol/codec.h"

namespace yard::cli {

using protocol::Command;

StatusOr<std::unique_ptr<Client>> Client::Create(transport::Context& ctx,
                                                 const std::string& endpoint,
                                                 Micros connect_timeout) {
  std::unique_ptr<Client> c(new Client(endpoint, connect_timeout));
  transport::SocketOptions so;
  so.linger_ms = 0;
  so.immediate = true;  // sends fail until the connection is up: "unreachable" is detectable
  ASSIGN_OR_RETURN(c->sock_, transport::Socket::Create(ctx, transport::SocketType::kDealer, so));
  RETURN_IF_ERROR(c->sock_->Connect(endpoint));
  c->poller_ = std::make_unique<transport::Poller>();
  c->poller_->Add(*c->sock_);
  return c;
}

template <typename Reply, typename Request>
StatusOr<Reply> Client::Call(Request req, Micros extra_wait) {
  const Clock& clock = SystemClock::Get();
  req.req_id = next_req_++;
  const std::string header = protocol::EncodeHeader(protocol::CommandOf<Request>::value);
  const std::string body = protocol::EncodeBody(req);
  const Micros start = clock.Now();
  while (true) {
    Status st = sock_->Send({header, body});
    if (st.ok()) break;
    if (clock.Now() - start > timeout_) {
      return Unavailable("cannot reach master at " + endpoint_ + " within " +
                         std::to_string(timeout_ / kMillis) + " ms");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(connected_ ? 1 : 10));
  }
  connected_ = true;
  const Micros deadline = clock.Now() + timeout_ + extra_wait;
  transport::Frames frames;
  while (true) {
    const Micros left = deadline - clock.Now();
    if (left <= 0) {
      return DeadlineExceeded("no answer from master at " + endpoint_ + " within " +
                              std::to_string((timeout_ + extra_wait) / kMillis) + " ms");
    }
    RETURN_IF_ERROR(poller_->Poll(static_cast<int>((left + kMillis - 1) / kMillis)));
    while (true) {
      ASSIGN_OR_RETURN(bool got, sock_->Recv(&frames));
      if (!got) break;
      if (frames.parts.size() < 2) continue;
      Command cmd{};
      if (protocol::CheckHeader(frames.parts[0], &cmd) != protocol::HeaderCheck::kOk) continue;
      if (cmd == Command::kError) {
        protocol::Error e;
        RETURN_IF_ERROR(protocol::DecodeBody(frames.parts[1], &e));
        if (e.req_id != req.req_id && e.req_id != 0) continue;
        return Status(static_cast<StatusCode>(e.code), e.message);
      }
      if (cmd != protocol::CommandOf<Reply>::value) continue;
      Reply reply;
      RETURN_IF_ERROR(protocol::DecodeBody(frames.parts[1], &reply));
      if (reply.req_id != req.req_id) continue;  // a late answer to an earlier call
      return reply;
    }
  }
}

StatusOr<std::vector<uint64_t>> Client::Submit(const std::vector<protocol::TaskSpec>& tasks) {
  ASSIGN_OR_RETURN(auto reply, Call<protocol::SubmitReply>(protocol::Submit{0, tasks}));
  if (reply.ids.size() != tasks.size()) {
    return Internal("master returned " + std::to_string(reply.ids.size()) + " ids for " +
                    std::to_string(tasks.size()) + " tasks");
  }
  return std::move(reply.ids);
}

StatusOr<std::vector<std::optional<protocol::TaskInfo>>> Client::Get(
    const std::vector<uint64_t>& ids, bool with_payload) {
  ASSIGN_OR_RETURN(auto reply, Call<protocol::GetReply>(protocol::Get{0, ids, with_payload}));
  return std::move(reply.tasks);
}

StatusOr<std::optional<protocol::TaskInfo>> Client::Wait(uint64_t id, Micros wait) {
  const auto ms = static_cast<uint32_t>(std::min<Micros>(wait / kMillis, UINT32_MAX));
  ASSIGN_OR_RETURN(auto reply, Call<protocol::GetReply>(protocol::Wait{0, id, ms}, wait));
  if (reply.tasks.size() != 1)
    return Internal("WAIT answered with " + std::to_string(reply.tasks.size()) + " tasks");
  return std::move(reply.tasks[0]);
}

StatusOr<protocol::TaskState> Client::Cancel(uint64_t id) {
  ASSIGN_OR_RETURN(auto reply, Call<protocol::CancelReply>(protocol::Cancel{0, id}));
  return reply.state;
}

StatusOr<std::vector<protocol::WorkerInfo>> Client::Workers() {
  ASSIGN_OR_RETURN(auto reply, Call<protocol::WorkersReply>(protocol::Workers{0}));
  return std::move(reply.workers);
}

StatusOr<std::map<std::string, uint64_t>> Client::Stats() {
  ASSIGN_OR_RETURN(auto reply, Call<protocol::StatsReply>(protocol::Stats{0}));
  return std::move(reply.counters);
}

StatusOr<protocol::DeadListReply> Client::DeadList(uint64_t after_id, uint32_t limit) {
  return Call<protocol::DeadListReply>(protocol::DeadList{0, after_id, limit});
}

StatusOr<protocol::DeadReply> Client::DeadRequeue(const std::vector<uint64_t>& ids, bool all) {
  return Call<protocol::DeadReply>(protocol::DeadRequeue{0, ids, all});
}

StatusOr<protocol::DeadReply> Client::DeadPurge(const std::vector<uint64_t>& ids, bool all) {
  return Call<protocol::DeadReply>(protocol::DeadPurge{0, ids, all});
}

StatusOr<protocol::JobSubmitReply> Client::JobSubmit(const protocol::JobSpec& spec) {
  return Call<protocol::JobSubmitReply>(protocol::JobSubmit{0, spec});
}

StatusOr<protocol::JobInfo> Client::JobGet(uint64_t id, bool with_result) {
  ASSIGN_OR_RETURN(auto reply, Call<protocol::JobReply>(protocol::JobGet{0, id, with_result}));
  if (reply.job.id != id) {
    return Internal("master answered JOB_GET " + std::to_string(id) + " with job " +
                    std::to_string(reply.job.id));
  }
  return std::move(reply.job);
}

StatusOr<protocol::JobInfo> Client::JobCancel(uint64_t id) {
  ASSIGN_OR_RETURN(auto reply, Call<protocol::JobReply>(protocol::JobCancel{0, id}));
  if (reply.job.id != id) {
    return Internal("master answered JOB_CANCEL " + std::to_string(id) + " with job " +
                    std::to_string(reply.job.id));
  }
  return std::move(reply.job);
}

StatusOr<protocol::ListReply> Client::List(const protocol::List& request) {
  return Call<protocol::ListReply>(request);
}

}  // namespace yard::cli
