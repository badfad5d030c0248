#include "benchmarks/bench/workloads.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <thread>
#include <tuple>

#include "benchmarks/bench/cluster.h"
#include "master/api/await.h"
#include "master/api/client_api.h"

namespace yard::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;
using Counters = std::map<std::string, uint64_t>;

constexpr int kSubmitsInFlight = 4;          // pipelined SUBMITs
constexpr Micros kStatsEvery = 2 * kMillis;  // how often completion is checked
constexpr size_t kMaxOpenLoopBatch = 10000;
constexpr uint64_t kWarmup = 100;  // one-at-a-time round trips not measured
constexpr size_t kJobsInFlight = 8;
constexpr Micros kCallTimeout = 60 * kSeconds;
constexpr Micros kIngestStall = 10 * kSeconds;  // mqtt: no counter moved for this long
constexpr double kWaitForS = 30;                // for workers, and for the mqtt role

double Since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

// Tasks that ended, whatever their state.
uint64_t Ended(const std::map<std::string, uint64_t>& s) {
  uint64_t n = 0;
  for (const char* k :
       {"tasks.succeeded", "tasks.failed", "tasks.dead", "tasks.cancelled", "tasks.expired"}) {
    auto it = s.find(k);
    if (it != s.end()) n += it->second;
  }
  return n;
}

std::vector<protocol::TaskSpec> Specs(uint64_t first, uint64_t n, const TaskShape& shape) {
  std::vector<protocol::TaskSpec> out(n);
  const std::string payload = shape.handler == "cpu" ? std::to_string(shape.cpu_iterations)
                                                     : std::string(shape.payload_bytes, 'x');
  for (uint64_t i = 0; i < n; ++i) {
    out[i].type = shape.handler;
    out[i].payload = payload;
    if (shape.keys > 0) out[i].key = "k" + std::to_string((first + i) % shape.keys);
  }
  return out;
}

}  // namespace

uint32_t MaxTasksPerSubmit(const TaskShape& shape) {
  const size_t bytes = shape.handler == "cpu" ? 16 : std::max<size_t>(1, shape.payload_bytes);
  return static_cast<uint32_t>(std::clamp<size_t>((4u << 20) / bytes, 1, kMaxOpenLoopBatch));
}

double Latencies::Percentile(double q) const {
  if (us.empty()) return 0;
  const size_t rank = static_cast<size_t>(std::ceil(q * double(us.size())));
  return us[std::min(us.size() - 1, rank == 0 ? 0 : rank - 1)];
}

struct Driver::Impl {
  std::unique_ptr<api::ClientMasterApi> api;
  transport::Poller poller;

  template <typename T, typename Start>
  StatusOr<T> Call(Start&& start) {
    auto out = api::Await<T>(*api, poller, kCallTimeout, std::forward<Start>(start));
    if (!out) return DeadlineExceeded("the master did not answer within 60 s");
    return std::move(*out);
  }
  void Step() {
    (void)poller.Poll(1);
    api->Process();
  }

  // Lists `ids` (ascending) back from the master: each one's final state and latency.
  Status Account(const std::vector<uint64_t>& ids, PhaseResult* r) {
    protocol::List list;
    list.after_id = ids.front() - 1;
    list.limit = 1000;
    while (true) {
      auto page = Call<protocol::ListReply>(
          [&](api::MasterApi& a, auto cb) { a.List(list, std::move(cb)); });
      if (!page.ok()) return page.status().WithContext("listing the tasks run");
      for (const auto& t : page->tasks) {
        if (t.id > ids.back()) break;
        if (!std::binary_search(ids.begin(), ids.end(), t.id)) continue;
        if (t.state == protocol::TaskState::kSucceeded) {
          ++r->succeeded;
          r->latency.us.push_back(double(t.finished_us - t.submitted_us));
        } else {
          ++r->not_succeeded;
        }
      }
      if (!page->more || page->next_after_id >= ids.back()) break;
      list.after_id = page->next_after_id;
    }
    // Tasks not listed at all (dropped from a bounded memory store) count as not succeeded.
    r->not_succeeded += ids.size() - r->succeeded - r->not_succeeded;
    std::sort(r->latency.us.begin(), r->latency.us.end());
    r->latency_kind = "master submit-to-end";
    return Status::Ok();
  }

  StatusOr<Counters> Stats() {
    return Call<Counters>([](api::MasterApi& a, auto cb) { a.Stats(std::move(cb)); });
  }

  // Waits (kWaitForS at most) until counter `name` is at least `want`; returns its last value.
  StatusOr<uint64_t> AwaitCounter(const std::string& name, uint64_t want) {
    const auto t0 = SteadyClock::now();
    while (true) {
      ASSIGN_OR_RETURN(auto s, Stats());
      if (s[name] >= want || Since(t0) > kWaitForS) return s[name];
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // The highest task id the master lists (0: none). A LIST answers the first task after
  // after_id, so a search over after_id finds it in a few dozen calls.
  StatusOr<uint64_t> LastTaskId() {
    auto any_after = [&](uint64_t id) -> StatusOr<bool> {
      protocol::List list;
      list.after_id = id;
      list.limit = 1;
      ASSIGN_OR_RETURN(auto page, Call<protocol::ListReply>([&](api::MasterApi& a, auto cb) {
                         a.List(list, std::move(cb));
                       }));
      return !page.tasks.empty();
    };
    uint64_t lo = 0, hi = 1;  // the answer is in [lo, hi]: none after hi, one after lo > 0
    while (true) {
      ASSIGN_OR_RETURN(const bool after, any_after(hi));
      if (!after) break;
      lo = hi;
      hi *= 2;
    }
    while (lo < hi) {
      const uint64_t mid = lo + (hi - lo) / 2;
      ASSIGN_OR_RETURN(const bool after, any_after(mid));
      if (after) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return hi;
  }

  using MaySend = std::function<uint64_t(uint64_t sent, uint64_t ended, double elapsed)>;
  struct Pumped {
    std::vector<uint64_t> ids;  // sorted
    double seconds = 0;
  };
  // Submits `tasks` tasks, as many per SUBMIT as `may_send` allows now, several SUBMITs in
  // flight, until every one is acknowledged or, with `until_ended`, has ended (followed
  // through the master's counters).
  StatusOr<Pumped> Pump(uint64_t tasks, const TaskShape& shape, const Progress& progress,
                        const MaySend& may_send, bool until_ended) {
    ASSIGN_OR_RETURN(auto before, Stats());
    const uint64_t base = Ended(before);
    Pumped out;
    auto& ids = out.ids;
    ids.reserve(tasks);
    uint64_t sent = 0, ended = 0;
    int submits = 0;
    bool stats_pending = false;
    Status error;
    auto done = [&] { return until_ended ? ended : ids.size(); };
    auto next_stats = SteadyClock::now();
    const auto t0 = SteadyClock::now();
    while (done() < tasks) {
      while (sent < tasks && submits < kSubmitsInFlight) {
        const uint64_t n = std::min(tasks - sent, may_send(sent, ended, Since(t0)));
        if (n == 0) break;
        ++submits;
        api->Submit(Specs(sent, n, shape), [&](StatusOr<std::vector<uint64_t>> r) {
          --submits;
          if (!r.ok()) {
            error = r.status().WithContext("submit");
            return;
          }
          ids.insert(ids.end(), r->begin(), r->end());
        });
        sent += n;
      }
      if (until_ended && !stats_pending && SteadyClock::now() >= next_stats) {
        stats_pending = true;
        next_stats = SteadyClock::now() + std::chrono::microseconds(kStatsEvery);
        api->Stats([&](StatusOr<Counters> r) {
          stats_pending = false;
          if (!r.ok()) {
            error = r.status().WithContext("stats");
            return;
          }
          ended = Ended(*r) - base;
        });
      }
      Step();
      if (!error.ok()) return error;
      if (progress) progress(done(), tasks);
    }
    out.seconds = Since(t0);
    while (submits > 0 || stats_pending) Step();  // every id is known before listing
    if (!error.ok()) return error;
    std::sort(ids.begin(), ids.end());
    return out;
  }

  // Pump until every task has ended, then account for each by listing it.
  StatusOr<PhaseResult> Run(uint64_t tasks, const TaskShape& shape, const Progress& progress,
                            const MaySend& may_send) {
    ASSIGN_OR_RETURN(auto pumped, Pump(tasks, shape, progress, may_send, /*until_ended=*/true));
    PhaseResult r;
    r.tasks = tasks;
    r.seconds = pumped.seconds;
    r.tasks_per_s = double(tasks) / r.seconds;
    RETURN_IF_ERROR(Account(pumped.ids, &r));
    return r;
  }
};

Driver::Driver(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Driver::~Driver() = default;

StatusOr<std::unique_ptr<Driver>> Driver::Connect(transport::Context& ctx,
                                                  const std::string& endpoint) {
  auto impl = std::make_unique<Impl>();
  api::ClientApiOptions o;
  o.endpoint = endpoint;
  o.request_timeout = kCallTimeout;
  o.job_poll_interval = 5 * kMillis;  // a job's end is seen within this
  ASSIGN_OR_RETURN(impl->api, api::ClientMasterApi::Create(ctx, o, SystemClock::Get()));
  impl->api->AddTo(impl->poller);
  return std::unique_ptr<Driver>(new Driver(std::move(impl)));
}

StatusOr<std::map<std::string, uint64_t>> Driver::Stats() { return impl_->Stats(); }

Status Driver::WaitForWorkers(int workers) {
  const auto want = static_cast<uint64_t>(workers);
  ASSIGN_OR_RETURN(const uint64_t connected, impl_->AwaitCounter("workers.connected", want));
  if (connected >= want) return Status::Ok();
  return Unavailable("only " + std::to_string(connected) + " of " + std::to_string(workers) +
                     " workers connected within 30 s");
}

StatusOr<PhaseResult> Driver::ClosedLoop(uint64_t tasks, uint32_t inflight, uint32_t batch,
                                         const TaskShape& shape, const Progress& progress) {
  auto r = impl_->Run(tasks, shape, progress, [&](uint64_t sent, uint64_t ended, double) {
    const uint64_t open = sent - std::min(sent, ended);
    return open >= inflight ? 0 : std::min<uint64_t>(batch, inflight - open);
  });
  if (r.ok()) r->name = "closed loop";
  return r;
}

StatusOr<PhaseResult> Driver::OpenLoop(uint64_t tasks, double rate, const TaskShape& shape,
                                       const Progress& progress) {
  auto r = impl_->Run(tasks, shape, progress, [&](uint64_t sent, uint64_t, double elapsed) {
    const auto due = static_cast<uint64_t>(rate * elapsed);
    return due <= sent ? 0 : std::min<uint64_t>(due - sent, MaxTasksPerSubmit(shape));
  });
  if (!r.ok()) return r;
  r->name = "open loop";
  r->offered_per_s = rate;
  return r;
}

StatusOr<PhaseResult> Driver::Fill(uint64_t tasks, uint32_t batch, const TaskShape& shape,
                                   const Progress& progress) {
  ASSIGN_OR_RETURN(auto before, Stats());
  ASSIGN_OR_RETURN(auto pumped,
                   impl_->Pump(
                       tasks, shape, progress, [&](uint64_t, uint64_t, double) { return batch; },
                       /*until_ended=*/false));
  PhaseResult r;
  r.name = "fill";
  r.tasks = tasks;
  r.latency_kind = "none";
  r.seconds = pumped.seconds;
  r.tasks_per_s = double(tasks) / r.seconds;
  ASSIGN_OR_RETURN(auto after, Stats());
  const uint64_t queued = after["tasks.queued"] - before["tasks.queued"];
  r.succeeded = std::min(queued, tasks);
  r.not_succeeded = tasks - r.succeeded;
  return r;
}

StatusOr<PhaseResult> Driver::OneAtATime(uint64_t tasks, const TaskShape& shape,
                                         const Progress& progress) {
  PhaseResult r;
  r.name = "one at a time";
  r.tasks = tasks;
  r.latency_kind = "client round trip";
  r.latency.us.reserve(tasks);
  auto t_start = SteadyClock::now();
  for (uint64_t i = 0; i < kWarmup + tasks; ++i) {
    if (i == kWarmup) t_start = SteadyClock::now();
    const auto t0 = SteadyClock::now();
    ASSIGN_OR_RETURN(auto ids, impl_->Call<std::vector<uint64_t>>([&](api::MasterApi& a, auto cb) {
      a.Submit(Specs(i, 1, shape), std::move(cb));
    }));
    ASSIGN_OR_RETURN(auto t, impl_->Call<protocol::TaskInfo>([&](api::MasterApi& a, auto cb) {
      a.WatchTask(ids.at(0), kCallTimeout, std::move(cb));
    }));
    const double us = std::chrono::duration<double, std::micro>(SteadyClock::now() - t0).count();
    if (i < kWarmup) continue;
    r.latency.us.push_back(us);
    (t.state == protocol::TaskState::kSucceeded ? r.succeeded : r.not_succeeded)++;
    if (progress) progress(i + 1 - kWarmup, tasks);
  }
  r.seconds = Since(t_start);
  r.tasks_per_s = double(tasks) / r.seconds;
  std::sort(r.latency.us.begin(), r.latency.us.end());
  return r;
}

StatusOr<PhaseResult> Driver::Jobs(uint64_t jobs, uint32_t parts, const TaskShape& shape,
                                   const Progress& progress) {
  PhaseResult r;
  r.name = "jobs";
  r.tasks = jobs * parts;
  r.latency_kind = "master job submit-to-end";
  uint64_t sent = 0, ended = 0;
  size_t open = 0;
  Status error;
  const auto t0 = SteadyClock::now();
  auto& api = *impl_->api;
  while (ended < jobs) {
    while (sent < jobs && open < kJobsInFlight) {
      protocol::JobSpec spec;
      spec.task = Specs(sent, 1, shape)[0];
      spec.task.payload.clear();
      spec.split = "range:1.." + std::to_string(parts);
      spec.aggregate = "count";
      ++open;
      ++sent;
      api.SubmitJob(std::move(spec), [&](StatusOr<protocol::JobSubmitReply> s) {
        if (!s.ok()) {
          error = s.status().WithContext("job submit");
          return;
        }
        api.WatchJob(s->job_id, kCallTimeout, [&](StatusOr<protocol::JobInfo> j) {
          --open;
          ++ended;
          if (!j.ok()) {
            error = j.status().WithContext("watching a job");
            return;
          }
          const bool ok = j->state == protocol::JobState::kSucceeded;
          (ok ? r.succeeded : r.not_succeeded) += j->parts;
          r.latency.us.push_back(double(j->finished_us - j->submitted_us));
        });
      });
    }
    impl_->Step();
    if (!error.ok()) return error;
    if (progress) progress(ended * parts, jobs * parts);
  }
  r.seconds = Since(t0);
  r.tasks_per_s = double(r.tasks) / r.seconds;
  std::sort(r.latency.us.begin(), r.latency.us.end());
  return r;
}

StatusOr<PhaseResult> Driver::Ingest(uint64_t messages, DevicesRun& devices,
                                     const Progress& progress) {
  ASSIGN_OR_RETURN(const uint64_t connected, impl_->AwaitCounter("mqtt.connected", 1));
  if (connected == 0) {
    return Unavailable(
        "the master's mqtt role was not connected to a broker within 30 s (mqtt.connected "
        "stayed 0): is the role on, and the broker up?");
  }
  ASSIGN_OR_RETURN(const uint64_t mark, impl_->LastTaskId());
  ASSIGN_OR_RETURN(auto before, Stats());
  RETURN_IF_ERROR(devices.Start().WithContext("yard-devices"));
  const Clock& clock = SystemClock::Get();
  std::optional<nlohmann::json> published;  // yard-devices' summary, once it has exited
  uint64_t acked = 0, committed = 0, submitted = 0, ended = 0;
  Micros changed = clock.Now(), changed_wall = clock.WallNow();
  while (true) {
    if (!published) {
      if (auto r = devices.Poll()) {
        if (!r->ok()) return r->status();
        published = std::move(**r);
        acked = published->value("acked", uint64_t{0});
      }
    }
    ASSIGN_OR_RETURN(auto s, Stats());
    auto delta = [&](const char* k) { return s[k] - before[k]; };
    const auto now = std::make_tuple(delta("mqtt.messages_committed"),
                                     delta("mqtt.tasks_submitted"), Ended(s) - Ended(before));
    if (now != std::tie(committed, submitted, ended)) {
      std::tie(committed, submitted, ended) = now;
      changed = clock.Now();
      changed_wall = clock.WallNow();
    }
    // Messages whose tasks have ended (in proportion, when readings are batched).
    if (progress && submitted > 0) {
      progress(static_cast<uint64_t>(double(committed) * double(ended) / double(submitted)),
               messages);
    }
    if (published && committed >= acked && ended >= submitted) break;
    if (clock.Now() - changed > kIngestStall) {
      if (published && ended >= submitted) break;  // the rest of the messages were lost
      return DeadlineExceeded("nothing moved for 10 s: " + std::to_string(committed) +
                              (published ? " of " + std::to_string(acked) : "") +
                              " messages committed, " + std::to_string(ended) + " of " +
                              std::to_string(submitted) + " tasks made of them ended" +
                              (published ? "" : "; yard-devices still running"));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(kStatsEvery));
  }
  PhaseResult r;
  r.name = "mqtt ingest";
  r.messages = acked;
  r.messages_lost = acked - std::min(acked, committed);
  r.tasks = submitted;
  const Micros t0 = published->value("t0_us", Micros{0});
  r.seconds = double(std::max<Micros>(1, changed_wall - t0)) / 1e6;
  r.tasks_per_s = double(r.tasks) / r.seconds;
  r.messages_per_s = double(acked - r.messages_lost) / r.seconds;
  r.latency_kind = "master submit-to-end";
  ASSIGN_OR_RETURN(const uint64_t last, impl_->LastTaskId());
  if (last - mark != submitted) {
    return FailedPrecondition("the master listed " + std::to_string(last - mark) +
                              " new tasks and its mqtt role submitted " +
                              std::to_string(submitted) +
                              ": something else ran tasks meanwhile, they cannot be told apart");
  }
  if (submitted == 0) return r;
  std::vector<uint64_t> ids(submitted);
  std::iota(ids.begin(), ids.end(), mark + 1);
  RETURN_IF_ERROR(impl_->Account(ids, &r));
  return r;
}

}  // namespace yard::bench
