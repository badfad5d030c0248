#include "worker/session.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <random>
#include <utility>

#include "common/protocol/codec.h"

namespace yard::worker {

using protocol::Command;
using protocol::DisconnectReason;

namespace {
constexpr int kGoodbyeLingerMs = 1000;
// Default window per executor thread. It must cover a master round trip, which with
// --durability fsync includes a disk sync: 32 per thread left workers idle for it (40k vs 56k
// tasks/s end to end, docs/benchmarks.md). Long tasks want a smaller --credit instead.
constexpr uint32_t kCreditPerThread = 128;
constexpr Micros kFirstBackoff = 100 * kMillis;
constexpr Micros kMaxBackoff = 5 * kSeconds;
constexpr size_t kMaxResultsPerMessage = 1024;
constexpr size_t kMaxRefsPerMessage = 4096;  // EXTEND refs: about 14 bytes each
constexpr int kMaxMessagesPerTurn = 256;

std::string Hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}
}  // namespace

Status ValidateTags(const std::vector<std::string>& tags) {
  if (tags.size() > kMaxTags) {
    return InvalidArgument(std::to_string(tags.size()) + " tags; at most " +
                           std::to_string(kMaxTags) + " are allowed");
  }
  for (const auto& t : tags) {
    if (t.empty()) return InvalidArgument("a tag may not be empty");
    if (t.size() > kMaxTagBytes) {
      return InvalidArgument("tag '" + t.substr(0, 16) + "...' is " + std::to_string(t.size()) +
                             " bytes; at most " + std::to_string(kMaxTagBytes) + " are allowed");
    }
    for (size_t i = 0; i < t.size(); ++i) {
      const char c = t[i];
      const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
      if (ok) continue;
      char shown[8];
      std::snprintf(shown, sizeof(shown), "0x%02x", static_cast<unsigned char>(c));
      return InvalidArgument("tag '" + t.substr(0, i) + "...' has byte " + shown + " at offset " +
                             std::to_string(i) + "; tags use only A-Z a-z 0-9 . _ -");
    }
  }
  return Status::Ok();
}

Session::Session(const WorkerOptions& options, transport::Context& ctx,
                 const HandlerRegistry& registry, const Clock& clock)
    : options_(options),
      ctx_(ctx),
      registry_(registry),
      clock_(clock),
      executor_(registry, clock, options.threads, [this] { wake_.Notify(); }) {
  hello_.hostname = Hostname();
  hello_.pid = static_cast<uint32_t>(getpid());
  hello_.worker_id =
      options_.id.empty() ? hello_.hostname + "-" + std::to_string(hello_.pid) : options_.id;
  hello_.incarnation = std::random_device{}() | (uint64_t{std::random_device{}()} << 32);
  hello_.handlers = registry.Types();
  hello_.slots = options_.threads;
  hello_.tags = options_.tags;
  links_.resize(options_.connect.size());
  for (size_t i = 0; i < links_.size(); ++i) links_[i].endpoint = options_.connect[i];
}

Session::~Session() { executor_.Stop(); }

void Session::Stop() {
  stop_.store(true, std::memory_order_relaxed);
  wake_.Notify();
}

uint32_t Session::Window() const {
  return options_.credit ? options_.credit
                         : kCreditPerThread * std::max<uint32_t>(1, options_.threads);
}

void Session::RebuildPoller() {
  poller_ = std::make_unique<transport::Poller>();
  poll_index_.assign(links_.size(), SIZE_MAX);
  for (size_t i = 0; i < links_.size(); ++i) {
    if (links_[i].sock) poll_index_[i] = poller_->Add(*links_[i].sock);
  }
  poller_->AddFd(wake_.fd());
  poller_dirty_ = false;
}

Status Session::Connect(Link& l, Micros now) {
  transport::SocketOptions so;
  so.linger_ms = 0;
  ASSIGN_OR_RETURN(l.sock, transport::Socket::Create(ctx_, transport::SocketType::kDealer, so));
  RETURN_IF_ERROR(l.sock->Connect(l.endpoint));
  poller_dirty_ = true;
  SendHello(l, now);
  return Status::Ok();
}

void Session::ScheduleReconnect(Link& l, Micros now, const std::string& why) {
  l.backoff = std::clamp(l.backoff * 2, kFirstBackoff, kMaxBackoff);
  spdlog::warn("master {}: {}; reconnecting in {} ms", l.endpoint, why, l.backoff / kMillis);
  l.sock.reset();
  poller_dirty_ = true;
  l.phase = Phase::kIdle;
  l.reconnect_at = now + l.backoff;
}

void Session::SendHello(Link& l, Micros now) {
  protocol::Hello h = hello_;
  const uint32_t window = draining_ ? 0 : Window();
  h.credit = window > l.held ? window - l.held : 0;
  l.master_credit = h.credit;
  l.owed_credit = 0;  // the HELLO's credit already counts every slot freed so far
  l.phase = Phase::kHello;
  l.phase_since = now;
  Send(l, h, now);
}

template <typename M>
bool Session::Send(Link& l, const M& m, Micros now) {
  if (!l.sock) return false;
  const std::string header = protocol::EncodeHeader(protocol::CommandOf<M>::value);
  const std::string body = protocol::EncodeBody(m);
  if (!l.sock->Send({header, body}).ok()) return false;
  l.last_send = now;
  return true;
}

void Session::SendResults(Link& l, std::vector<protocol::ResultMsg> results, uint32_t credit,
                          Micros now) {
  // An output the master could never accept would be resent forever: fail it instead.
  const size_t max_output = l.max_message_bytes / 2;
  for (auto& r : results) {
    if (r.output.size() > max_output) {
      r.error = "output of " + std::to_string(r.output.size()) +
                " bytes is over the master's limit of " + std::to_string(max_output);
      r.output.clear();
      r.outcome = protocol::Outcome::kFailPermanent;
    }
    l.unacked[{r.id, r.attempt}] = r;
  }
  if (l.phase != Phase::kActive) {  // resent, with the credit, after the next WELCOME
    l.owed_credit += credit;
    return;
  }
  protocol::Results msg;
  msg.credit = credit;
  size_t bytes = 0;
  for (auto& r : results) {
    const size_t size = r.output.size() + r.error.size();
    if (!msg.results.empty() &&
        (msg.results.size() >= kMaxResultsPerMessage || bytes + size > max_output)) {
      Send(l, msg, now);
      msg = {};
      bytes = 0;
    }
    bytes += size;
    msg.results.push_back(std::move(r));
  }
  if (!msg.results.empty()) Send(l, msg, now);
  l.master_credit += credit;
}

void Session::CollectDone(Micros now) {
  std::vector<Renewal> renewals;
  executor_.TakeRenewals(&renewals);
  std::map<std::pair<size_t, uint32_t>, protocol::Extend> extends;  // by link and lease
  for (const auto& r : renewals) {
    auto& e = extends[{r.link, r.lease_ms}];
    e.lease_ms = r.lease_ms;
    e.refs.push_back(r.ref);
  }
  for (const auto& [key, e] : extends) {
    // A renewal for a link that is not joined is dropped: the master that gave the lease no
    // longer knows this connection, and a handler that keeps extending asks again later.
    Link& l = links_[key.first];
    if (l.phase != Phase::kActive) continue;
    if (e.refs.size() <= kMaxRefsPerMessage) {
      Send(l, e, now);
      continue;
    }
    for (size_t i = 0; i < e.refs.size(); i += kMaxRefsPerMessage) {
      protocol::Extend part;
      part.lease_ms = e.lease_ms;
      part.refs.assign(e.refs.begin() + static_cast<std::ptrdiff_t>(i),
                       e.refs.begin() + static_cast<std::ptrdiff_t>(
                                            std::min(e.refs.size(), i + kMaxRefsPerMessage)));
      Send(l, part, now);
    }
  }
  std::vector<Done> done;
  executor_.TakeDone(&done);
  if (done.empty()) return;
  std::vector<std::vector<protocol::ResultMsg>> per_link(links_.size());
  for (auto& d : done) {
    if (d.result.outcome == protocol::Outcome::kOk) ++completed_;
    per_link[d.link].push_back(std::move(d.result));
  }
  for (size_t i = 0; i < links_.size(); ++i) {
    if (per_link[i].empty()) continue;
    Link& l = links_[i];
    const auto n = static_cast<uint32_t>(per_link[i].size());
    l.held -= std::min(l.held, n);
    // While draining, no new credit: the master should stop sending.
    SendResults(l, std::move(per_link[i]), draining_ ? 0 : n, now);
  }
}

void Session::Release(std::vector<Job> jobs, Micros now) {
  std::vector<std::vector<protocol::ResultMsg>> per_link(links_.size());
  for (auto& j : jobs) {
    protocol::ResultMsg r;
    r.id = j.task.id;
    r.attempt = j.task.attempt;
    r.outcome = protocol::Outcome::kReleased;
    r.error = "worker draining";
    per_link[j.link].push_back(std::move(r));
  }
  for (size_t i = 0; i < links_.size(); ++i) {
    if (per_link[i].empty()) continue;
    auto n = static_cast<uint32_t>(per_link[i].size());
    links_[i].held -= std::min(links_[i].held, n);
    SendResults(links_[i], std::move(per_link[i]), 0, now);
  }
}

Status Session::HandleMessage(size_t index, transport::Frames& frames, Micros now) {
  Link& l = links_[index];
  l.last_recv = now;
  auto& parts = frames.parts;
  Command cmd{};
  if (parts.size() < 2) {
    spdlog::warn("master {}: ignored a message of {} frames", l.endpoint, parts.size());
    return Status::Ok();
  }
  switch (protocol::CheckHeader(parts[0], &cmd)) {
    case protocol::HeaderCheck::kOk:
      break;
    case protocol::HeaderCheck::kUnknownOptional:
      return Status::Ok();
    default:
      spdlog::warn("master {}: ignored a message with a bad header", l.endpoint);
      return Status::Ok();
  }
  const std::string_view body = parts[1];
  auto bad = [&](const Status& st) {
    spdlog::warn("master {}: ignored malformed {}: {}", l.endpoint, protocol::CommandName(cmd),
                 st.message());
    return Status::Ok();
  };
  switch (cmd) {
    case Command::kWelcome: {
      protocol::Welcome w;
      if (Status st = protocol::DecodeBody(body, &w); !st.ok()) return bad(st);
      l.phase = Phase::kActive;
      l.heartbeat_ms = std::max<uint32_t>(w.heartbeat_ms, 10);
      l.liveness = std::max<uint32_t>(w.liveness, 1);
      if (w.max_message_bytes >= 4096) l.max_message_bytes = w.max_message_bytes;
      l.backoff = 0;
      spdlog::info("master {}: joined as {} (session {}, credit {})", l.endpoint, hello_.worker_id,
                   w.session, l.master_credit);
      // Results the master never acknowledged (it may have restarted) go again, with the
      // credit of tasks that finished while we were not joined.
      std::vector<protocol::ResultMsg> again;
      for (const auto& [key, r] : l.unacked) again.push_back(r);
      const uint32_t owed = std::exchange(l.owed_credit, 0);
      if (!again.empty()) {
        spdlog::info("master {}: resending {} unacknowledged results", l.endpoint, again.size());
        SendResults(l, std::move(again), owed, now);
      } else if (owed > 0) {
        Send(l, protocol::Credit{owed}, now);
        l.master_credit += owed;
      }
      return Status::Ok();
    }
    case Command::kTasks: {
      protocol::Tasks t;
      if (Status st = protocol::DecodeBody(body, &t); !st.ok()) return bad(st);
      const auto n = static_cast<uint32_t>(t.tasks.size());
      if (n > l.master_credit) {
        spdlog::warn("master {}: sent {} tasks with only {} credit", l.endpoint, n,
                     l.master_credit);
      }
      l.master_credit -= std::min(l.master_credit, n);
      l.held += n;
      std::vector<Job> jobs;
      jobs.reserve(n);
      for (auto& task : t.tasks) jobs.push_back({index, std::move(task), now});
      if (draining_) {
        Release(std::move(jobs), now);
      } else {
        executor_.Submit(std::move(jobs));
      }
      return Status::Ok();
    }
    case Command::kAck: {
      protocol::Ack a;
      if (Status st = protocol::DecodeBody(body, &a); !st.ok()) return bad(st);
      for (const auto& ref : a.refs) l.unacked.erase({ref.id, ref.attempt});
      return Status::Ok();
    }
    case Command::kHeartbeat:
      return Status::Ok();
    case Command::kCancelTasks: {
      protocol::CancelTasks c;
      if (Status st = protocol::DecodeBody(body, &c); !st.ok()) return bad(st);
      // Cancelled queued tasks come back through CollectDone as `cancelled` results, with
      // their credit, like any other result.
      const CancelCounts counts = executor_.Cancel(index, c.refs);
      spdlog::debug("master {}: CANCEL_TASKS of {}: {} skipped before start, {} running flagged",
                    l.endpoint, c.refs.size(), counts.skipped, counts.flagged);
      return Status::Ok();
    }
    case Command::kDisconnect: {
      protocol::Disconnect d;
      if (Status st = protocol::DecodeBody(body, &d); !st.ok()) return bad(st);
      switch (d.reason) {
        case DisconnectReason::kUnknownSession:
        case DisconnectReason::kHeartbeatTimeout:
          spdlog::info("master {}: {} ({}); saying HELLO again", l.endpoint,
                       protocol::DisconnectReasonName(d.reason), d.message);
          SendHello(l, now);
          return Status::Ok();
        case DisconnectReason::kDuplicateWorker:
          return AlreadyExists("master " + l.endpoint + " refused worker id '" + hello_.worker_id +
                               "': " + d.message);
        default:
          ScheduleReconnect(l, now,
                            std::string("master said ") + protocol::DisconnectReasonName(d.reason) +
                                ": " + d.message);
          return Status::Ok();
      }
    }
    default:
      spdlog::warn("master {}: ignored unexpected {}", l.endpoint, protocol::CommandName(cmd));
      return Status::Ok();
  }
}

void Session::Timers(Micros now) {
  for (auto& l : links_) {
    const Micros silence = Micros{l.liveness} * l.heartbeat_ms * kMillis;
    switch (l.phase) {
      case Phase::kIdle:
        if (!stop_.load() && now >= l.reconnect_at) {
          if (Status st = Connect(l, now); !st.ok()) ScheduleReconnect(l, now, st.message());
        }
        break;
      case Phase::kHello:
        if (now - l.phase_since > silence) ScheduleReconnect(l, now, "no WELCOME");
        break;
      case Phase::kActive:
        if (now - l.last_recv > silence) {
          ScheduleReconnect(l, now,
                            "master silent for " + std::to_string(silence / kMillis) + " ms");
        } else if (now - l.last_send >= Micros{l.heartbeat_ms} * kMillis) {
          Send(l, protocol::Heartbeat{}, now);
        }
        break;
    }
  }
}

Status Session::Run() {
  RETURN_IF_ERROR(ValidateTags(options_.tags));
  executor_.Start();
  Micros drain_deadline = 0;
  while (true) {
    Micros now = clock_.Now();
    if (stop_.load() && !draining_) {
      draining_ = true;
      drain_deadline = now + options_.drain_timeout;
      const size_t running = executor_.busy();
      std::vector<Job> queued = executor_.TakeQueued();
      spdlog::info("stopping: releasing {} queued tasks, waiting for {} running", queued.size(),
                   running - std::min(running, queued.size()));
      Release(std::move(queued), now);
    }
    if (draining_) {
      bool delivered = executor_.busy() == 0;
      for (const auto& l : links_) {
        if (l.phase == Phase::kActive && !l.unacked.empty()) delivered = false;
      }
      if (delivered || now >= drain_deadline) {
        if (!delivered) spdlog::warn("drain timeout: leaving with work unfinished or unacked");
        for (auto& l : links_) {
          if (l.phase == Phase::kActive) {
            Send(l, protocol::Disconnect{DisconnectReason::kShutdown, "worker stopping"}, now);
            // Give the goodbye a moment to leave: without it the master would count this
            // worker lost, and its tasks failed, a few heartbeats later.
            l.sock->SetLinger(kGoodbyeLingerMs);
          }
        }
        break;
      }
    }
    Timers(now);
    if (poller_dirty_) RebuildPoller();
    if (Status st = poller_->Poll(draining_ ? 20 : 100); !st.ok()) return st;
    wake_.Drain();
    now = clock_.Now();
    transport::Frames frames;
    for (size_t i = 0; i < links_.size(); ++i) {
      if (poll_index_[i] == SIZE_MAX || !poller_->Readable(poll_index_[i])) continue;
      for (int n = 0; n < kMaxMessagesPerTurn && links_[i].sock; ++n) {
        auto got = links_[i].sock->Recv(&frames);
        if (!got.ok() || !*got) break;
        RETURN_IF_ERROR(HandleMessage(i, frames, now));
      }
    }
    CollectDone(now);
  }
  executor_.Stop();
  CollectDone(clock_.Now());
  spdlog::info("stopped after completing {} tasks", completed_);
  return Status::Ok();
}

}  // namespace yard::worker
