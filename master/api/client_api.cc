#include "master/api/client_api.h"

#include "common/protocol/codec.h"

namespace yard::api {

using protocol::Command;

namespace {
// A WAIT asks the master to hold the answer this long; the watch then asks again.
constexpr uint32_t kWaitSliceMs = 10000;
}  // namespace

StatusOr<std::unique_ptr<ClientMasterApi>> ClientMasterApi::Create(transport::Context& ctx,
                                                                   const ClientApiOptions& options,
                                                                   const Clock& clock) {
  std::unique_ptr<ClientMasterApi> api(new ClientMasterApi(options, clock));
  transport::SocketOptions so;
  so.linger_ms = 0;
  ASSIGN_OR_RETURN(api->sock_, transport::Socket::Create(ctx, transport::SocketType::kDealer, so));
  RETURN_IF_ERROR(api->sock_->Connect(options.endpoint));
  return api;
}

ClientMasterApi::~ClientMasterApi() = default;

template <typename Reply, typename Request>
void ClientMasterApi::Call(Request req, Callback<Reply> on_reply, Micros timeout) {
  req.req_id = next_req_++;
  PendingCall call;
  call.deadline = clock_.Now() + (timeout > 0 ? timeout : options_.request_timeout);
  call.handle = [done = std::move(on_reply)](Command command, std::string_view body, Status error) {
    if (!error.ok()) return done(std::move(error));
    if (command == Command::kError) {
      protocol::Error e;
      if (Status st = protocol::DecodeBody(body, &e); !st.ok()) return done(st);
      return done(Status(static_cast<StatusCode>(e.code), e.message));
    }
    if (command != protocol::CommandOf<Reply>::value) {
      return done(Internal("master answered with an unexpected message"));
    }
    Reply reply;
    if (Status st = protocol::DecodeBody(body, &reply); !st.ok()) return done(st);
    done(std::move(reply));
  };
  calls_.emplace(req.req_id, std::move(call));
  unsent_.emplace_back(protocol::EncodeHeader(protocol::CommandOf<Request>::value),
                       protocol::EncodeBody(req));
  SendQueued();
}

void ClientMasterApi::SendQueued() {
  while (!unsent_.empty()) {
    const auto& [header, body] = unsent_.front();
    if (!sock_->Send({header, body}).ok()) return;  // full: the next Process() tries again
    unsent_.pop_front();
  }
}

void ClientMasterApi::Submit(std::vector<protocol::TaskSpec> tasks,
                             Callback<std::vector<uint64_t>> done) {
  const size_t n = tasks.size();
  Call<protocol::SubmitReply>(protocol::Submit{0, std::move(tasks)},
                              [n, done = std::move(done)](StatusOr<protocol::SubmitReply> r) {
                                if (!r.ok()) return done(r.status());
                                if (r->ids.size() != n)
                                  return done(Internal("master returned the wrong number of ids"));
                                done(std::move(r->ids));
                              });
}

void ClientMasterApi::SubmitJob(protocol::JobSpec job, Callback<protocol::JobSubmitReply> done) {
  Call<protocol::JobSubmitReply>(protocol::JobSubmit{0, std::move(job)}, std::move(done));
}

void ClientMasterApi::Get(uint64_t id, bool with_payload,
                          Callback<std::optional<protocol::TaskInfo>> done) {
  Call<protocol::GetReply>(protocol::Get{0, {id}, with_payload},
                           [done = std::move(done)](StatusOr<protocol::GetReply> r) {
                             if (!r.ok()) return done(r.status());
                             if (r->tasks.size() != 1) return done(Internal("bad GET reply"));
                             done(std::move(r->tasks[0]));
                           });
}

void ClientMasterApi::GetJob(uint64_t id, bool with_result, Callback<protocol::JobInfo> done) {
  Call<protocol::JobReply>(protocol::JobGet{0, id, with_result},
                           [done = std::move(done)](StatusOr<protocol::JobReply> r) {
                             if (!r.ok()) return done(r.status());
                             done(std::move(r->job));
                           });
}

void ClientMasterApi::List(protocol::List request, Callback<protocol::ListReply> done) {
  Call<protocol::ListReply>(std::move(request), std::move(done));
}

void ClientMasterApi::Cancel(uint64_t id, Callback<protocol::TaskState> done) {
  Call<protocol::CancelReply>(protocol::Cancel{0, id},
                              [done = std::move(done)](StatusOr<protocol::CancelReply> r) {
                                if (!r.ok()) return done(r.status());
                                done(r->state);
                              });
}

void ClientMasterApi::CancelJob(uint64_t id, Callback<protocol::JobInfo> done) {
  Call<protocol::JobReply>(protocol::JobCancel{0, id},
                           [done = std::move(done)](StatusOr<protocol::JobReply> r) {
                             if (!r.ok()) return done(r.status());
                             done(std::move(r->job));
                           });
}

void ClientMasterApi::WatchTask(uint64_t id, Micros limit, Callback<protocol::TaskInfo> done) {
  WaitStep(id, clock_.Now() + limit,
           std::make_shared<Callback<protocol::TaskInfo>>(std::move(done)));
}

// One WAIT of at most kWaitSliceMs; asks again until the task ends or the watch's limit.
void ClientMasterApi::WaitStep(uint64_t id, Micros deadline,
                               std::shared_ptr<Callback<protocol::TaskInfo>> done) {
  const Micros left = deadline - clock_.Now();
  if (left <= 0) return (*done)(DeadlineExceeded("task " + std::to_string(id) + " still running"));
  const auto slice = static_cast<uint32_t>(std::min<Micros>(left / kMillis + 1, kWaitSliceMs));
  Call<protocol::GetReply>(
      protocol::Wait{0, id, slice},
      [this, id, deadline, done](StatusOr<protocol::GetReply> r) {
        if (!r.ok()) return (*done)(r.status());
        if (r->tasks.size() != 1 || !r->tasks[0]) {
          return (*done)(NotFound("no task " + std::to_string(id)));
        }
        if (protocol::IsTerminal(r->tasks[0]->state)) return (*done)(std::move(*r->tasks[0]));
        WaitStep(id, deadline, done);
      },
      options_.request_timeout + Micros{slice} * kMillis);
}

void ClientMasterApi::WatchJob(uint64_t id, Micros limit, Callback<protocol::JobInfo> done) {
  auto& w = job_watches_[id];
  const Micros deadline = clock_.Now() + limit;
  w.deadline = std::max(w.deadline, deadline);
  w.done.push_back(std::move(done));
}

// Jobs have no WAIT: each watched job's progress is read every job_poll_interval (without its
// result), and once it has ended, once more with the result.
void ClientMasterApi::PollJobs(Micros now) {
  if (job_watches_.empty() || now < next_job_poll_) return;
  next_job_poll_ = now + options_.job_poll_interval;
  for (auto& [id, w] : job_watches_) {
    if (w.polling) continue;
    w.polling = true;
    const uint64_t job_id = id;
    GetJob(job_id, false, [this, job_id](StatusOr<protocol::JobInfo> r) {
      auto it = job_watches_.find(job_id);
      if (it == job_watches_.end()) return;
      auto finish = [this, job_id](const StatusOr<protocol::JobInfo>& result) {
        auto watch = job_watches_.find(job_id);
        if (watch == job_watches_.end()) return;
        auto callbacks = std::move(watch->second.done);
        job_watches_.erase(watch);
        for (auto& cb : callbacks) cb(result);
      };
      if (!r.ok()) return finish(r.status());
      if (protocol::IsTerminal(r->state)) {
        return GetJob(job_id, true, [finish](StatusOr<protocol::JobInfo> full) { finish(full); });
      }
      if (clock_.Now() >= it->second.deadline) {
        return finish(DeadlineExceeded("job " + std::to_string(job_id) + " still running"));
      }
      it->second.polling = false;
    });
  }
}

void ClientMasterApi::Stats(Callback<std::map<std::string, uint64_t>> done) {
  Call<protocol::StatsReply>(protocol::Stats{0},
                             [done = std::move(done)](StatusOr<protocol::StatsReply> r) {
                               if (!r.ok()) return done(r.status());
                               done(std::move(r->counters));
                             });
}

void ClientMasterApi::Workers(Callback<std::vector<protocol::WorkerInfo>> done) {
  Call<protocol::WorkersReply>(protocol::Workers{0},
                               [done = std::move(done)](StatusOr<protocol::WorkersReply> r) {
                                 if (!r.ok()) return done(r.status());
                                 done(std::move(r->workers));
                               });
}

void ClientMasterApi::DeadList(uint64_t after_id, uint32_t limit,
                               Callback<protocol::DeadListReply> done) {
  Call<protocol::DeadListReply>(protocol::DeadList{0, after_id, limit}, std::move(done));
}

void ClientMasterApi::DeadRequeue(std::vector<uint64_t> ids, bool all,
                                  Callback<protocol::DeadReply> done) {
  Call<protocol::DeadReply>(protocol::DeadRequeue{0, std::move(ids), all}, std::move(done));
}

void ClientMasterApi::DeadPurge(std::vector<uint64_t> ids, bool all,
                                Callback<protocol::DeadReply> done) {
  Call<protocol::DeadReply>(protocol::DeadPurge{0, std::move(ids), all}, std::move(done));
}

size_t ClientMasterApi::AddTo(transport::Poller& poller) { return poller.Add(*sock_); }

void ClientMasterApi::Receive() {
  transport::Frames frames;
  while (true) {
    auto got = sock_->Recv(&frames);
    if (!got.ok() || !*got) return;
    if (frames.parts.size() != 2) continue;
    Command command{};
    if (protocol::CheckHeader(frames.parts[0], &command) != protocol::HeaderCheck::kOk) continue;
    auto req_id = protocol::PeekReqId(frames.parts[1]);
    if (!req_id.ok()) continue;
    auto it = calls_.find(*req_id);
    if (it == calls_.end()) continue;  // answered after its timeout
    PendingCall call = std::move(it->second);
    calls_.erase(it);
    call.handle(command, frames.parts[1], Status::Ok());
  }
}

void ClientMasterApi::ExpireCalls(Micros now) {
  std::vector<uint64_t> expired;
  for (const auto& [id, call] : calls_) {
    if (call.deadline <= now) expired.push_back(id);
  }
  for (uint64_t id : expired) {
    auto it = calls_.find(id);
    if (it == calls_.end()) continue;  // a callback of an earlier one resolved it
    PendingCall call = std::move(it->second);
    calls_.erase(it);
    call.handle(Command::kError, {},
                DeadlineExceeded("no answer from the master at " + options_.endpoint));
  }
}

void ClientMasterApi::Process() {
  SendQueued();
  Receive();
  const Micros now = clock_.Now();
  if (now >= next_expiry_check_) {  // a scan of every call: a few times a second is enough
    next_expiry_check_ = now + 100 * kMillis;
    ExpireCalls(now);
  }
  PollJobs(now);
  SendQueued();
}

}  // namespace yard::api
