#include "master/server/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "common/protocol/codec.h"
#include "master/server/ready_file.h"

namespace yard::server {

using protocol::Command;
using protocol::DisconnectReason;
using protocol::HeaderCheck;

namespace {
constexpr int kMaxMessagesPerTurn = 1024;  // per port: keeps turns short and fair
constexpr int kMaxPollMs = 100;
constexpr Micros kSuperviseEvery = 200 * kMillis;
constexpr size_t kMaxWaiters = 100000;
constexpr size_t kDeadPage = 1000;  // dead letters per list/requeue/purge request
constexpr size_t kListPage = 1000;  // most tasks per LIST reply (and the default page)
// A LIST page stops scanning finished records after this many, so a filter that matches
// little cannot stall the loop; the reply's next_after_id says where to go on.
constexpr size_t kListScanBudget = 100000;
constexpr uint64_t kRecoveryProgressEvery = 100000;
// libzmq drops peers over ZMQ_MAXMSGSIZE without telling us; give it slack over our own limit
// so that most oversized messages arrive and are rejected here, counted and logged.
constexpr int64_t kZmqSizeSlack = 2;

// Connecting to a wildcard address does not work everywhere: point local workers at loopback.
std::string ConnectableEndpoint(std::string ep) {
  const std::string wildcard = "tcp://0.0.0.0:";
  if (ep.starts_with(wildcard)) ep = "tcp://127.0.0.1:" + ep.substr(wildcard.size());
  return ep;
}
}  // namespace

Server::Server(const MasterOptions& options, state::StateStore& store, const Clock& clock)
    : options_(options), store_(store), clock_(clock), engine_([&] {
        core::EngineConfig c = options.engine;
        c.first_task_id = std::max<uint64_t>(c.first_task_id, store.MaxTaskId() + 1);
        c.epoch = store.Epoch();
        c.max_message_bytes = options.max_message_bytes;
        c.max_batch_bytes = options.max_message_bytes / 2;
        return c;
      }()) {}

Server::~Server() = default;

StatusOr<std::unique_ptr<Server>> Server::Create(const MasterOptions& options,
                                                 transport::Context& ctx, state::StateStore& store,
                                                 const Clock& clock) {
  std::unique_ptr<Server> s(new Server(options, store, clock));
  transport::SocketOptions so;
  so.max_message_bytes = int64_t{options.max_message_bytes} * kZmqSizeSlack;
  so.router_mandatory = true;
  so.router_handover = true;
  so.linger_ms = 0;
  ASSIGN_OR_RETURN(s->workers_sock_,
                   transport::Socket::Create(ctx, transport::SocketType::kRouter, so));
  ASSIGN_OR_RETURN(s->clients_sock_,
                   transport::Socket::Create(ctx, transport::SocketType::kRouter, so));
  auto wep = s->workers_sock_->Bind(options.worker_endpoint);
  if (!wep.ok()) return wep.status().WithContext("--worker-endpoint");
  s->worker_endpoint_ = *wep;
  auto cep = s->clients_sock_->Bind(options.client_endpoint);
  if (!cep.ok()) return cep.status().WithContext("--client-endpoint");
  s->client_endpoint_ = *cep;
  // The same client port, in process, for the plugins' MasterApi (no TCP hop, same protocol).
  // The name is unique per server: tests run several in one ZeroMQ context.
  std::ostringstream inproc;
  inproc << "inproc://yard-clients-" << static_cast<const void*>(s.get());
  auto iep = s->clients_sock_->Bind(inproc.str());
  if (!iep.ok()) return iep.status().WithContext("inproc client endpoint");
  s->inproc_client_endpoint_ = *iep;
  // Each turn drains both sockets whatever woke it, so the indices are not needed.
  s->poller_.Add(*s->workers_sock_);
  s->poller_.Add(*s->clients_sock_);
  s->poller_.AddFd(s->wake_.fd());

  RETURN_IF_ERROR(s->Recover());

  if (options.workers > 0) {
    std::string binary =
        options.worker_binary.empty() ? WorkerPool::DefaultBinary() : options.worker_binary;
    std::vector<std::string> argv = {binary,
                                     "--connect",
                                     ConnectableEndpoint(s->worker_endpoint_),
                                     "--threads",
                                     std::to_string(options.worker_threads),
                                     "--log-level",
                                     options.log_level};
    if (options.log_json) argv.push_back("--log-json");
    s->pool_ = std::make_unique<WorkerPool>(std::move(argv), options.workers);
  }
  return s;
}

Status Server::Recover() {
  const core::Now start = Now();
  size_t tasks = 0;
  Micros next_progress = start.mono + kSeconds;
  RETURN_IF_ERROR(store_.ForEachActive([&](protocol::TaskInfo&& t) {
    engine_.Restore(std::move(t), start);
    if (++tasks % kRecoveryProgressEvery == 0 && clock_.Now() >= next_progress) {
      spdlog::info("recovering: {} active tasks read so far", tasks);
      next_progress = clock_.Now() + kSeconds;
    }
  }));
  size_t keys = 0;
  RETURN_IF_ERROR(store_.ForEachIdem(start.wall, [&](state::IdemEntry&& e) {
    engine_.RestoreIdempotencyKey(e.key, e.id, e.expires_us);
    ++keys;
  }));
  engine_.FinishRestore(start);
  size_t jobs = 0;
  RETURN_IF_ERROR(RecoverJobs(start, &jobs));
  const Micros took = clock_.Now() - start.mono;
  engine_.Count("recovery.tasks", tasks);
  engine_.Count("recovery.ms", static_cast<uint64_t>(took / kMillis));
  if (tasks == 0) {
    if (store_.Epoch() > 1) {
      spdlog::info(
          "state epoch {}: nothing to recover ({} idempotency keys, {} open jobs) in {} ms",
          store_.Epoch(), keys, jobs, took / kMillis);
    }
    return Status::Ok();
  }
  // Workers that ran tasks for the previous master get one liveness period to come back and
  // report them, so finished work is not run again.
  const Micros hold = Micros{engine_.config().liveness} * engine_.config().heartbeat_ms * kMillis;
  engine_.HoldDispatchUntil(clock_.Now() + hold);
  spdlog::info(
      "state epoch {}: recovered {} active tasks ({} scheduled for later), {} open jobs and {} "
      "idempotency keys in {} ms; dispatch starts in {} ms",
      store_.Epoch(), tasks, engine_.Stats()["tasks.scheduled"], jobs, keys, took / kMillis,
      hold / kMillis);
  return Status::Ok();
}

Status Server::RecoverJobs(core::Now now, size_t* jobs) {
  RETURN_IF_ERROR(store_.ForEachOpenJob([&](protocol::JobInfo&& j) {
    engine_.RestoreJob(std::move(j));
    ++*jobs;
    return Status::Ok();
  }));
  if (*jobs == 0) return Status::Ok();
  // Restore() ran before the jobs were known: the ended parts' outcomes come from the store.
  for (const auto& [job, task] : engine_.EndedPartIds()) {
    ASSIGN_OR_RETURN(auto record, store_.Get(task));
    engine_.RestoreEndedPart(job, task, record);
  }
  // Jobs whose parts all ended before the crash but were not settled yet move on now; the
  // records this produces are committed by the first turn.
  core::Effects fx;
  engine_.FinishJobRestore(now, fx);
  CarryOut(fx);
  return Status::Ok();
}

void Server::Stop() {
  stop_.store(true, std::memory_order_relaxed);
  wake_.Notify();
}

Status Server::WriteReadyFile() const {
  if (options_.ready_file.empty()) return Status::Ok();
  auto fields = ready_fields_;
  fields["client_endpoint"] = client_endpoint_;
  fields["worker_endpoint"] = worker_endpoint_;
  return server::WriteReadyFile(options_.ready_file, fields);
}

Status Server::Run() {
  const core::Now start = Now();
  if (pool_) RETURN_IF_ERROR(pool_->Start(start.mono));
  RETURN_IF_ERROR(WriteReadyFile());
  spdlog::info("serving clients on {} and workers on {}", client_endpoint_, worker_endpoint_);

  while (!stop_.load(std::memory_order_relaxed)) Turn(PollTimeoutMs(Now()), false);

  // Drain: no new submits, no new dispatches; running tasks may still report.
  spdlog::info("stopping: draining running tasks for up to {} ms", options_.drain_timeout_ms);
  if (pool_) pool_->Terminate();
  const Micros drain_until = Now().mono + Micros{options_.drain_timeout_ms} * kMillis;
  while (Now().mono < drain_until) {
    const bool children_done = !pool_ || pool_->AllExited();
    if (children_done && engine_.Stats()["tasks.running"] == 0) break;
    Turn(20, true);
  }
  if (pool_) pool_->Kill();
  for (const auto& conn : engine_.WorkerConns()) {
    SendWorker(conn, protocol::Disconnect{DisconnectReason::kShutdown, "master stopping"});
  }
  const auto stats = engine_.Stats();
  auto count = [&](const char* name) { return stats.contains(name) ? stats.at(name) : 0; };
  spdlog::info("stopped: {} tasks submitted, {} succeeded, {} failed, {} dead, {} still active",
               count("tasks.submitted"), count("tasks.succeeded"), count("tasks.failed"),
               count("tasks.dead"), stats.at("tasks.active"));
  return Status::Ok();
}

int Server::PollTimeoutMs(core::Now now) const {
  Micros next = now.mono + kMaxPollMs * kMillis;
  if (auto d = engine_.NextDeadline()) next = std::min(next, *d);
  if (!waiter_deadlines_.empty()) next = std::min(next, waiter_deadlines_.begin()->first);
  next = std::min(next, next_heartbeat_);
  if (pool_) next = std::min(next, next_supervise_);
  const Micros wait = next - now.mono;
  if (wait <= 0) return 0;
  return static_cast<int>((wait + kMillis - 1) / kMillis);
}

void Server::Turn(int timeout_ms, bool draining) {
  if (Status st = poller_.Poll(timeout_ms); !st.ok()) {
    spdlog::error("poll failed: {}", st.ToString());
    return;
  }
  wake_.Drain();
  core::Now now = Now();
  core::Effects fx;
  transport::Frames frames;

  for (int i = 0; i < kMaxMessagesPerTurn; ++i) {
    auto got = workers_sock_->Recv(&frames);
    if (!got.ok() || !*got) break;
    HandleWorkerMessage(frames, now, fx);
  }
  // What the workers changed is pending before clients are served: a GET, WAIT or LIST in this
  // turn must see a task that just ended, which has left the engine and reaches the store only
  // with the commit (Lookup and ListPage read the pending batch).
  CarryOut(fx);
  fx = core::Effects{};
  for (int i = 0; i < kMaxMessagesPerTurn; ++i) {
    auto got = clients_sock_->Recv(&frames);
    if (!got.ok() || !*got) break;
    HandleClientMessage(frames, now, fx, draining);
  }
  now = Now();
  engine_.Tick(now, fx);
  CarryOut(fx);
  // Tasks committed in earlier turns go out before this turn's commit, on the credit that
  // this turn's results returned, so workers run them while the commit syncs. The commit then
  // makes this turn's submits eligible for the second dispatch.
  if (!draining) DispatchReady(now);
  CommitPending(now);
  ExpireWaiters(now);
  if (!draining) DispatchReady(now);
  if (now.mono >= next_heartbeat_) {
    for (const auto& conn : engine_.WorkerConns()) SendWorker(conn, protocol::Heartbeat{});
    next_heartbeat_ = now.mono + Micros{engine_.config().heartbeat_ms} * kMillis;
  }
  if (pool_ && !draining && now.mono >= next_supervise_) {
    pool_->Supervise(now.mono);
    next_supervise_ = now.mono + kSuperviseEvery;
  }
}

void Server::DispatchReady(core::Now now) {
  for (auto& [conn, tasks] : engine_.Dispatch(now)) {
    const size_t n = tasks.tasks.size();
    const std::string header = protocol::EncodeHeader(Command::kTasks);
    const std::string body = protocol::EncodeBody(tasks);
    if (Status st = workers_sock_->Send({conn, header, body}); !st.ok()) {
      // The worker vanished between its last message and now: take its tasks back.
      spdlog::warn("could not send {} tasks to worker {}: {}", n, PeerName(conn), st.message());
      core::Effects lost;
      engine_.OnDisconnect(conn, now, lost);
      CarryOut(lost);
    }
  }
}

void Server::CarryOut(core::Effects& fx) {
  for (const auto& [conn, w] : fx.welcomes) SendWorker(conn, w);
  for (const auto& [conn, d] : fx.disconnects) SendWorker(conn, d);
  auto append = [](auto& to, auto& from) {
    to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
  };
  append(pending_.batch.records, fx.store_puts);
  append(pending_.batch.dead_removed, fx.dead_removed);
  for (auto& p : fx.idem_puts) {
    pending_.batch.idem.push_back({std::move(p.key), p.id, p.expires_us});
  }
  append(pending_.acks, fx.acks);
  append(pending_.finished, fx.finished);
  append(pending_.submitted, fx.created);
  append(pending_.batch.jobs, fx.job_puts);
  append(pending_.cancels, fx.cancels);
}

void Server::CommitPending(core::Now now) {
  if (!pending_.batch.empty()) {
    const Status st = store_.Commit(pending_.batch);
    if (!st.ok()) {
      engine_.Count("store.commit_failures");
      if (store_status_.ok() || now.mono >= next_commit_error_log_) {
        spdlog::error("store commit of {} records failed, retrying every turn: {}",
                      pending_.batch.records.size(), st.ToString());
        next_commit_error_log_ = now.mono + kSeconds;
      }
      store_status_ = st;
      return;
    }
    if (!store_status_.ok()) spdlog::info("store commits work again");
    store_status_ = st;
    engine_.Count("store.commits");
    engine_.Count("store.records", pending_.batch.records.size());
    // The store may have taken the records' contents: lookups from here on go to the store.
    pending_.batch.clear();
  }
  engine_.OnCommitted(pending_.submitted);
  for (const auto& [conn, ack] : pending_.acks) SendWorker(conn, ack);
  if (!pending_.cancels.empty()) {
    std::map<std::string, protocol::CancelTasks> by_conn;
    for (const auto& [conn, ref] : pending_.cancels) by_conn[conn].refs.push_back(ref);
    for (const auto& [conn, m] : by_conn) SendWorker(conn, m);
  }
  for (const auto& r : pending_.replies) {
    const std::string header = protocol::EncodeHeader(r.command);
    if (!clients_sock_->Send({r.conn, header, r.body}).ok()) {
      engine_.Count("clients.replies_dropped");
    }
  }
  for (uint64_t id : pending_.finished) {
    auto it = waiting_on_.find(id);
    if (it == waiting_on_.end()) continue;
    for (uint64_t seq : it->second) {
      auto w = waiters_.find(seq);
      if (w == waiters_.end()) continue;
      ReplyTaskState(w->second.conn, w->second.req_id, id);
      waiters_.erase(w);
    }
    waiting_on_.erase(it);
  }
  pending_ = Pending{};
}

void Server::ExpireWaiters(core::Now now) {
  while (!waiter_deadlines_.empty() && waiter_deadlines_.begin()->first <= now.mono) {
    const uint64_t seq = waiter_deadlines_.begin()->second;
    waiter_deadlines_.erase(waiter_deadlines_.begin());
    auto w = waiters_.find(seq);
    if (w == waiters_.end()) continue;
    ReplyTaskState(w->second.conn, w->second.req_id, w->second.task_id);
    auto& seqs = waiting_on_[w->second.task_id];
    seqs.erase(std::remove(seqs.begin(), seqs.end(), seq), seqs.end());
    if (seqs.empty()) waiting_on_.erase(w->second.task_id);
    waiters_.erase(w);
  }
}

Status Server::WriteRefusal(bool draining) const {
  if (draining) return Unavailable("master is shutting down");
  if (store_status_.ok()) return Status::Ok();
  // Bounded memory while the store is failing: refuse rather than pile up. The code says why:
  // kResourceExhausted for a full disk, kUnavailable otherwise.
  return Status(store_status_.code(), "not accepting changes: state store cannot write (" +
                                          store_status_.message() + ")");
}

void Server::HandleDeadSelection(const std::string& conn, uint64_t req_id,
                                 std::vector<uint64_t> ids, bool all, bool requeue, core::Now now,
                                 core::Effects& fx, bool draining) {
  if (Status st = WriteRefusal(draining); !st.ok()) return SendClientError(conn, req_id, st);
  if (all != ids.empty()) {
    return SendClientError(conn, req_id, InvalidArgument("name task ids or 'all', not both"));
  }
  std::vector<protocol::TaskInfo> dead;
  bool more = false;
  if (all) {
    auto page = DeadPage(0, kDeadPage, &more);
    if (!page.ok()) return SendClientError(conn, req_id, page.status());
    dead = std::move(*page);
  } else {
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    if (ids.size() > kDeadPage) {
      return SendClientError(
          conn, req_id,
          InvalidArgument("at most " + std::to_string(kDeadPage) + " ids per request"));
    }
    for (uint64_t id : ids) {
      auto t = store_.Get(id);
      if (!t.ok()) return SendClientError(conn, req_id, t.status());
      if (!*t || (*t)->state != protocol::TaskState::kDead || engine_.IsActive(id)) {
        return SendClientError(conn, req_id,
                               NotFound("task " + std::to_string(id) + " is not a dead letter"));
      }
      dead.push_back(std::move(**t));
    }
  }
  const uint64_t count = dead.size();
  if (requeue) {
    std::vector<uint64_t> readmitted;
    for (const auto& t : dead) readmitted.push_back(t.id);
    if (Status st = engine_.Readmit(std::move(dead), now, fx); !st.ok()) {
      return SendClientError(conn, req_id, st);
    }
    pending_.submitted.insert(pending_.submitted.end(), readmitted.begin(), readmitted.end());
  } else {
    for (const auto& t : dead) pending_.batch.dead_removed.push_back(t.id);
    engine_.Count("tasks.purged", count);
  }
  pending_.replies.push_back(
      {conn, Command::kDeadReply, protocol::EncodeBody(protocol::DeadReply{req_id, count, more})});
}

StatusOr<std::vector<protocol::TaskInfo>> Server::DeadPage(uint64_t after_id, size_t limit,
                                                           bool* more) const {
  std::vector<protocol::TaskInfo> out;
  *more = false;
  RETURN_IF_ERROR(store_.ForEachDead(after_id, [&](protocol::TaskInfo&& t) {
    // A dead letter requeued or purged in this turn's pending batch is gone already.
    if (engine_.IsActive(t.id)) return true;
    if (out.size() == limit) {
      *more = true;
      return false;
    }
    out.push_back(std::move(t));
    return true;
  }));
  return out;
}

// A task that ended in this turn has left the engine, and its record reaches the store only
// with the turn's commit: until then the pending batch has its newest version.
const protocol::TaskInfo* Server::PendingTask(uint64_t id) const {
  const auto& records = pending_.batch.records;
  for (auto it = records.rbegin(); it != records.rend(); ++it) {
    if (it->id == id) return &*it;
  }
  return nullptr;
}

StatusOr<std::optional<protocol::TaskInfo>> Server::Lookup(uint64_t id) const {
  if (auto t = engine_.Find(id)) return t;
  if (const auto* t = PendingTask(id)) return std::optional<protocol::TaskInfo>(*t);
  return store_.Get(id);
}

StatusOr<std::optional<protocol::JobInfo>> Server::LookupJob(uint64_t id) const {
  if (auto j = engine_.FindJob(id)) return j;
  const auto& jobs = pending_.batch.jobs;  // a job closed in this turn, as for tasks
  for (auto it = jobs.rbegin(); it != jobs.rend(); ++it) {
    if (it->id == id) return std::optional<protocol::JobInfo>(*it);
  }
  return store_.GetJob(id);
}

StatusOr<protocol::ListReply> Server::ListPage(const protocol::List& m) const {
  const size_t limit = m.limit == 0 ? kListPage : std::min<size_t>(m.limit, kListPage);
  protocol::ListReply reply;
  reply.req_id = m.req_id;
  // One more than a page from each source tells whether more follow.
  std::vector<protocol::TaskInfo> active = engine_.ListActive(m, limit + 1);
  std::vector<protocol::TaskInfo> finished;
  const bool filter_active_only =
      m.state && !protocol::IsTerminal(*m.state);  // queued/dispatched live in the engine only
  uint64_t scanned_to = 0;  // with the budget spent: finished ids after this were not seen
  if (!filter_active_only) {
    size_t scanned = 0;
    // A job's parts and reduce task have ids after the job's own.
    const uint64_t from = m.job_id != 0 ? std::max(m.after_id, m.job_id) : m.after_id;
    auto matches = [&](const protocol::TaskInfo& t) { return core::Engine::MatchesList(m, t); };
    // Tasks that ended in this turn are in neither the engine nor the store yet.
    std::map<uint64_t, const protocol::TaskInfo*> ended_now;
    for (const auto& t : pending_.batch.records) {
      if (t.id > from && protocol::IsTerminal(t.state) && !engine_.IsActive(t.id)) {
        ended_now[t.id] = &t;  // the last version wins
      }
    }
    RETURN_IF_ERROR(store_.ForEachFinished(from, [&](protocol::TaskInfo&& t) {
      if (engine_.IsActive(t.id)) return true;  // requeued since: the engine's copy is current
      if (ended_now.count(t.id)) return true;   // the pending version is newer
      if (!matches(t)) {
        if (++scanned >= kListScanBudget) {
          scanned_to = t.id;
          return false;
        }
        return true;
      }
      ++scanned;
      t.payload.clear();
      t.result.clear();
      finished.push_back(std::move(t));
      return finished.size() <= limit;
    }));
    // The store's scan saw everything up to its last record (or to scanned_to).
    const uint64_t seen_to = scanned_to != 0           ? scanned_to
                             : finished.size() > limit ? finished.back().id
                                                       : UINT64_MAX;
    for (const auto& [id, t] : ended_now) {
      if (id > seen_to || !matches(*t)) continue;
      protocol::TaskInfo copy = *t;
      copy.payload.clear();
      copy.result.clear();
      finished.push_back(std::move(copy));
    }
    std::sort(finished.begin(), finished.end(),
              [](const protocol::TaskInfo& a, const protocol::TaskInfo& b) { return a.id < b.id; });
  }
  std::vector<protocol::TaskInfo> merged;
  merged.reserve(active.size() + finished.size());
  std::merge(std::make_move_iterator(active.begin()), std::make_move_iterator(active.end()),
             std::make_move_iterator(finished.begin()), std::make_move_iterator(finished.end()),
             std::back_inserter(merged),
             [](const protocol::TaskInfo& a, const protocol::TaskInfo& b) { return a.id < b.id; });
  if (scanned_to != 0) {
    // Only what lies before the scan's stop is complete.
    std::erase_if(merged, [&](const protocol::TaskInfo& t) { return t.id > scanned_to; });
  }
  if (merged.size() > limit) {
    merged.resize(limit);
    reply.more = true;
  } else if (scanned_to != 0) {
    reply.more = true;
  }
  reply.next_after_id = merged.empty() ? m.after_id : merged.back().id;
  if (scanned_to != 0 && merged.size() < limit) reply.next_after_id = scanned_to;
  reply.tasks = std::move(merged);
  return reply;
}

void Server::ReplyTaskState(const std::string& conn, uint64_t req_id, uint64_t id) {
  protocol::GetReply reply{req_id, {}};
  auto t = Lookup(id);
  if (!t.ok()) return SendClientError(conn, req_id, t.status());
  reply.tasks.push_back(std::move(*t));
  if (reply.tasks.back()) reply.tasks.back()->payload.clear();
  SendClient(conn, reply);
}

template <typename M>
void Server::SendWorker(const std::string& conn, const M& m) {
  const std::string header = protocol::EncodeHeader(protocol::CommandOf<M>::value);
  const std::string body = protocol::EncodeBody(m);
  if (!workers_sock_->Send({conn, header, body}).ok()) engine_.Count("workers.sends_dropped");
}

template <typename M>
void Server::SendClient(const std::string& conn, const M& m) {
  const std::string header = protocol::EncodeHeader(protocol::CommandOf<M>::value);
  const std::string body = protocol::EncodeBody(m);
  if (!clients_sock_->Send({conn, header, body}).ok()) engine_.Count("clients.replies_dropped");
}

void Server::SendClientError(const std::string& conn, uint64_t req_id, const Status& status) {
  SendClient(conn, protocol::Error{req_id, static_cast<uint8_t>(status.code()), status.message()});
}

void Server::DisconnectWorker(const std::string& conn, DisconnectReason reason,
                              const std::string& why, core::Now now, core::Effects& fx) {
  SendWorker(conn, protocol::Disconnect{reason, why});
  engine_.OnDisconnect(conn, now, fx);
}

// ------------------------------------------------------------------ worker port

void Server::HandleWorkerMessage(transport::Frames& frames, core::Now now, core::Effects& fx) {
  auto& parts = frames.parts;
  const std::string& conn = parts[0];
  const std::string peer = PeerName(conn);
  auto reject = [&](const char* reason, const std::string& detail, DisconnectReason dr) {
    rejects_.Reject(engine_, now.mono, "worker", reason, peer, detail);
    DisconnectWorker(conn, dr, detail, now, fx);
  };
  if (parts.size() < 3) {
    return reject("malformed_frame",
                  "expected [header][body], got " + std::to_string(parts.size() - 1) + " frames",
                  DisconnectReason::kProtocolError);
  }
  if (parts[2].size() > options_.max_message_bytes) {
    return reject("too_large",
                  "body of " + std::to_string(parts[2].size()) + " bytes is over the limit of " +
                      std::to_string(options_.max_message_bytes),
                  DisconnectReason::kTooLarge);
  }
  Command cmd{};
  switch (protocol::CheckHeader(parts[1], &cmd)) {
    case HeaderCheck::kOk:
      break;
    case HeaderCheck::kMalformed:
      return reject("malformed_header", "header is not 'Y' 'D' version command",
                    DisconnectReason::kProtocolError);
    case HeaderCheck::kBadVersion:
      return reject("bad_version",
                    "protocol version " + std::to_string(static_cast<uint8_t>(parts[1][2])) +
                        " is not supported (this master speaks 1)",
                    DisconnectReason::kUnsupportedVersion);
    case HeaderCheck::kUnknownRequired:
      return reject("unknown_command",
                    "unknown command " + std::to_string(static_cast<uint8_t>(parts[1][3])),
                    DisconnectReason::kUnknownCommand);
    case HeaderCheck::kUnknownOptional:
      engine_.Count("ignored.optional_command");
      return;
  }
  const std::string_view body = parts[2];

  if (cmd == Command::kHello) {
    protocol::Hello hello;
    if (Status st = protocol::DecodeBody(body, &hello); !st.ok()) {
      return reject("malformed_body", st.message(), DisconnectReason::kProtocolError);
    }
    engine_.OnHello(conn, hello, now, fx);
    if (engine_.IsKnownWorker(conn)) {
      spdlog::info("worker {} ({} on {}, pid {}) joined with {} slots, credit {}", hello.worker_id,
                   peer, hello.hostname, hello.pid, hello.slots, hello.credit);
    }
    return;
  }
  if (!engine_.IsKnownWorker(conn)) {
    if (cmd == Command::kDisconnect) return;
    engine_.Count("workers.unknown_session");
    SendWorker(conn, protocol::Disconnect{DisconnectReason::kUnknownSession,
                                          "unknown session: send HELLO"});
    return;
  }
  engine_.Touch(conn, now);
  Status st;
  switch (cmd) {
    case Command::kResults: {
      protocol::Results m;
      st = protocol::DecodeBody(body, &m);
      if (st.ok()) engine_.OnResults(conn, m, now, fx);
      break;
    }
    case Command::kCredit: {
      protocol::Credit m;
      st = protocol::DecodeBody(body, &m);
      if (st.ok()) engine_.OnCredit(conn, m.credit);
      break;
    }
    case Command::kExtend: {
      protocol::Extend m;
      st = protocol::DecodeBody(body, &m);
      if (st.ok()) engine_.OnExtend(conn, m, now);
      break;
    }
    case Command::kHeartbeat: {
      protocol::Heartbeat m;
      st = protocol::DecodeBody(body, &m);
      break;
    }
    case Command::kDisconnect: {
      protocol::Disconnect m;
      st = protocol::DecodeBody(body, &m);
      if (st.ok()) {
        spdlog::info("worker {} said goodbye ({}: {})", peer,
                     protocol::DisconnectReasonName(m.reason), m.message);
        engine_.OnDisconnect(conn, now, fx);
      }
      break;
    }
    default:
      return reject("unexpected_command",
                    std::string(protocol::CommandName(cmd)) + " is not sent by workers",
                    DisconnectReason::kProtocolError);
  }
  if (!st.ok()) reject("malformed_body", st.message(), DisconnectReason::kProtocolError);
}

// ------------------------------------------------------------------ client port

void Server::HandleClientMessage(transport::Frames& frames, core::Now now, core::Effects& fx,
                                 bool draining) {
  auto& parts = frames.parts;
  const std::string& conn = parts[0];
  const std::string peer = PeerName(conn);
  auto reject = [&](const char* reason, const std::string& detail, uint64_t req_id = 0) {
    rejects_.Reject(engine_, now.mono, "client", reason, peer, detail);
    SendClientError(conn, req_id, InvalidArgument(detail));
  };
  if (parts.size() < 3) {
    return reject("malformed_frame",
                  "expected [header][body], got " + std::to_string(parts.size() - 1) + " frames");
  }
  if (parts[2].size() > options_.max_message_bytes) {
    return reject("too_large", "request of " + std::to_string(parts[2].size()) +
                                   " bytes is over the limit of " +
                                   std::to_string(options_.max_message_bytes));
  }
  Command cmd{};
  switch (protocol::CheckHeader(parts[1], &cmd)) {
    case HeaderCheck::kOk:
      break;
    case HeaderCheck::kMalformed:
      return reject("malformed_header", "header is not 'Y' 'D' version command");
    case HeaderCheck::kBadVersion:
      return reject("bad_version", "protocol version " +
                                       std::to_string(static_cast<uint8_t>(parts[1][2])) +
                                       " is not supported (this master speaks 1)");
    case HeaderCheck::kUnknownRequired:
      return reject("unknown_command",
                    "unknown command " + std::to_string(static_cast<uint8_t>(parts[1][3])));
    case HeaderCheck::kUnknownOptional:
      engine_.Count("ignored.optional_command");
      return;
  }
  const std::string_view body = parts[2];
  auto decode = [&](auto* m) {
    Status st = protocol::DecodeBody(body, m);
    if (!st.ok()) reject("malformed_body", st.message());
    return st.ok();
  };
  // SUBMIT and JOB_SUBMIT: refused while draining or while the store cannot write.
  auto write_refused = [&](uint64_t req_id) {
    Status st = WriteRefusal(draining);
    if (st.ok()) return false;
    if (!draining) {
      rejects_.Reject(engine_, now.mono, "client", "store_unavailable", peer,
                      store_status_.message());
    }
    SendClientError(conn, req_id, st);
    return true;
  };
  // The engine's refusal of a submit. It counts queue-full refusals itself
  // (rejected.queue_full, per task); `invalid` names the reason for the others.
  auto engine_refused = [&](uint64_t req_id, const Status& st, const char* invalid) {
    const bool full = st.code() == StatusCode::kResourceExhausted;
    rejects_.Reject(engine_, now.mono, "client", full ? "queue_full" : invalid, peer, st.message(),
                    /*count=*/!full);
    SendClientError(conn, req_id, st);
  };

  switch (cmd) {
    case Command::kSubmit: {
      protocol::Submit m;
      if (!decode(&m) || write_refused(m.req_id)) return;
      auto ids = engine_.Submit(std::move(m.tasks), now, fx);
      if (!ids.ok()) return engine_refused(m.req_id, ids.status(), "invalid_task");
      pending_.submitted.insert(pending_.submitted.end(), ids->begin(), ids->end());
      pending_.replies.push_back(
          {conn, Command::kSubmitReply,
           protocol::EncodeBody(protocol::SubmitReply{m.req_id, std::move(*ids)})});
      return;
    }
    case Command::kGet: {
      protocol::Get m;
      if (!decode(&m)) return;
      protocol::GetReply reply{m.req_id, {}};
      reply.tasks.reserve(m.ids.size());
      for (uint64_t id : m.ids) {
        auto t = Lookup(id);
        if (!t.ok()) return SendClientError(conn, m.req_id, t.status());
        if (*t && !m.with_payload) (*t)->payload.clear();
        reply.tasks.push_back(std::move(*t));
      }
      return SendClient(conn, reply);
    }
    case Command::kWait: {
      protocol::Wait m;
      if (!decode(&m)) return;
      auto t = Lookup(m.id);
      if (!t.ok()) return SendClientError(conn, m.req_id, t.status());
      if (!*t || protocol::IsTerminal((*t)->state) || m.timeout_ms == 0) {
        return ReplyTaskState(conn, m.req_id, m.id);
      }
      if (waiters_.size() >= kMaxWaiters) {
        rejects_.Reject(engine_, now.mono, "client", "too_many_waits", peer,
                        "more than " + std::to_string(kMaxWaiters) + " waits pending");
        return SendClientError(conn, m.req_id, ResourceExhausted("too many waits pending"));
      }
      const uint64_t seq = next_waiter_++;
      waiters_[seq] = {conn, m.req_id, m.id};
      waiting_on_[m.id].push_back(seq);
      waiter_deadlines_.insert({now.mono + Micros{m.timeout_ms} * kMillis, seq});
      return;
    }
    case Command::kCancel: {
      protocol::Cancel m;
      if (!decode(&m)) return;
      auto state = engine_.Cancel(m.id, now, fx);
      if (state.ok()) {
        pending_.replies.push_back({conn, Command::kCancelReply,
                                    protocol::EncodeBody(protocol::CancelReply{m.req_id, *state})});
        return;
      }
      auto t = Lookup(m.id);
      if (t.ok() && *t) {
        return SendClientError(
            conn, m.req_id,
            FailedPrecondition("task " + std::to_string(m.id) + " already finished (" +
                               protocol::TaskStateName((*t)->state) + ")"));
      }
      return SendClientError(conn, m.req_id, NotFound("no task " + std::to_string(m.id)));
    }
    case Command::kWorkers: {
      protocol::Workers m;
      if (!decode(&m)) return;
      return SendClient(conn, protocol::WorkersReply{m.req_id, engine_.WorkerInfos(now)});
    }
    case Command::kStats: {
      protocol::Stats m;
      if (!decode(&m)) return;
      protocol::StatsReply reply{m.req_id, engine_.Stats()};
      if (extra_stats_) extra_stats_->SnapshotInto(&reply.counters);
      return SendClient(conn, reply);
    }
    case Command::kDeadList: {
      protocol::DeadList m;
      if (!decode(&m)) return;
      const size_t limit = m.limit == 0 ? kDeadPage : std::min<size_t>(m.limit, kDeadPage);
      protocol::DeadListReply reply{m.req_id, {}, false};
      auto page = DeadPage(m.after_id, limit, &reply.more);
      if (!page.ok()) return SendClientError(conn, m.req_id, page.status());
      reply.tasks = std::move(*page);
      for (auto& t : reply.tasks) t.payload.clear();
      return SendClient(conn, reply);
    }
    case Command::kDeadRequeue: {
      protocol::DeadRequeue m;
      if (!decode(&m)) return;
      return HandleDeadSelection(conn, m.req_id, std::move(m.ids), m.all, true, now, fx, draining);
    }
    case Command::kDeadPurge: {
      protocol::DeadPurge m;
      if (!decode(&m)) return;
      return HandleDeadSelection(conn, m.req_id, std::move(m.ids), m.all, false, now, fx, draining);
    }
    case Command::kJobSubmit: {
      protocol::JobSubmit m;
      if (!decode(&m) || write_refused(m.req_id)) return;
      auto job = engine_.SubmitJob(m.job, now, fx);
      if (!job.ok()) return engine_refused(m.req_id, job.status(), "invalid_job");
      job->req_id = m.req_id;
      pending_.replies.push_back({conn, Command::kJobSubmitReply, protocol::EncodeBody(*job)});
      return;
    }
    case Command::kJobGet: {
      protocol::JobGet m;
      if (!decode(&m)) return;
      auto job = LookupJob(m.job_id);
      if (!job.ok()) return SendClientError(conn, m.req_id, job.status());
      if (!*job) {
        return SendClientError(conn, m.req_id, NotFound("no job " + std::to_string(m.job_id)));
      }
      if (!m.with_result) (*job)->result.clear();
      return SendClient(conn, protocol::JobReply{m.req_id, std::move(**job)});
    }
    case Command::kJobCancel: {
      protocol::JobCancel m;
      if (!decode(&m)) return;
      if (Status st = WriteRefusal(draining); !st.ok()) return SendClientError(conn, m.req_id, st);
      auto job = engine_.CancelJob(m.job_id, now, fx);
      if (job.ok()) {
        pending_.replies.push_back(
            {conn, Command::kJobReply, protocol::EncodeBody(protocol::JobReply{m.req_id, *job})});
        return;
      }
      auto stored = store_.GetJob(m.job_id);
      if (stored.ok() && *stored) {
        return SendClientError(
            conn, m.req_id,
            FailedPrecondition("job " + std::to_string(m.job_id) + " already finished (" +
                               protocol::JobStateName((*stored)->state) + ")"));
      }
      return SendClientError(conn, m.req_id, NotFound("no job " + std::to_string(m.job_id)));
    }
    case Command::kList: {
      protocol::List m;
      if (!decode(&m)) return;
      auto page = ListPage(m);
      if (!page.ok()) return SendClientError(conn, m.req_id, page.status());
      return SendClient(conn, *page);
    }
    default:
      return reject("unexpected_command",
                    std::string(protocol::CommandName(cmd)) + " is not a client request");
  }
}

}  // namespace yard::server
