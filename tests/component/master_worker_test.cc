// Master and workers in one process over inproc://: the real server loop, worker sessions and
// client, without processes or ports. Every wait has a deadline; nothing sleeps to let things
// happen, it polls for the condition.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cli/client.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/transport/socket.h"
#include "master/api/client_api.h"
#include "master/server/options.h"
#include "master/server/server.h"
#include "master/state/memory_store.h"
#include "tests/testing/task_spec.h"
#include "worker/handlers/builtin.h"
#include "worker/session.h"

namespace yard {
namespace {

using protocol::TaskInfo;
using protocol::TaskSpec;
using protocol::TaskState;
using ::testing::HasSubstr;

constexpr Micros kDeadline = 30 * kSeconds;

using testing::Spec;

// A MemoryStore whose commits can be made to fail, as a full disk would make a durable one.
class FlakyStore final : public state::StateStore {
 public:
  using state::StateStore::Commit;
  Status Commit(state::Batch& batch) override {
    if (fail_commits.load()) {
      ++failed_commits;
      return ResourceExhausted("disk full (the test says so)");
    }
    return inner_.Commit(batch);
  }
  StatusOr<std::optional<TaskInfo>> Get(uint64_t id) const override { return inner_.Get(id); }
  Status ForEachActive(const std::function<void(TaskInfo&&)>& fn) const override {
    return inner_.ForEachActive(fn);
  }
  Status ForEachDead(uint64_t after_id, const std::function<bool(TaskInfo&&)>& fn) const override {
    return inner_.ForEachDead(after_id, fn);
  }
  Status ForEachIdem(int64_t now_us,
                     const std::function<void(state::IdemEntry&&)>& fn) const override {
    return inner_.ForEachIdem(now_us, fn);
  }
  Status ForEachFinished(uint64_t after_id,
                         const std::function<bool(TaskInfo&&)>& fn) const override {
    return inner_.ForEachFinished(after_id, fn);
  }
  StatusOr<std::optional<protocol::JobInfo>> GetJob(uint64_t id) const override {
    return inner_.GetJob(id);
  }
  Status ForEachOpenJob(const std::function<Status(protocol::JobInfo&&)>& fn) const override {
    return inner_.ForEachOpenJob(fn);
  }
  uint64_t MaxTaskId() const override { return inner_.MaxTaskId(); }
  uint64_t Epoch() const override { return inner_.Epoch(); }

  std::atomic<bool> fail_commits{false};
  std::atomic<int> failed_commits{0};

 private:
  state::MemoryStore inner_;  // used by the server's loop thread only
};

// One worker process's worth of state, run on its own thread.
struct TestWorker {
  worker::HandlerRegistry registry;
  std::unique_ptr<worker::Session> session;
  std::thread thread;
  Status result = Internal("still running");

  void Stop() {
    if (!thread.joinable()) return;
    session->Stop();
    thread.join();
  }
};

class MasterWorkerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Once per process: SetupLogging registers a named logger, and --gtest_repeat comes back here.
    static const bool logging = SetupLogging("component_test", "warn", false).ok();
    (void)logging;
  }

  void SetUp() override {
    static std::atomic<int> sequence{0};
    const std::string suffix = std::to_string(getpid()) + "-" + std::to_string(sequence++);
    options_.client_endpoint = "inproc://clients-" + suffix;
    options_.worker_endpoint = "inproc://workers-" + suffix;
    options_.drain_timeout_ms = 5000;
    options_.engine.retry_backoff = 10 * kMillis;
    options_.engine.retry_backoff_max = 40 * kMillis;
    auto server = server::Server::Create(options_, ctx_, store_, SystemClock::Get());
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    server_thread_ = std::thread([this] { server_result_ = server_->Run(); });

    for (const char* id : {"worker-a", "worker-b"}) StartWorker(id);

    auto client = cli::Client::Create(ctx_, server_->client_endpoint(), 5 * kSeconds);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = std::move(*client);
    WaitForWorkers(2);
  }

  void TearDown() override {
    for (auto& [id, w] : workers_) {
      w->Stop();
      EXPECT_TRUE(w->result.ok()) << id << ": " << w->result.ToString();
    }
    if (server_thread_.joinable()) {
      server_->Stop();
      server_thread_.join();
      EXPECT_TRUE(server_result_.ok()) << server_result_.ToString();
    }
    client_.reset();
    workers_.clear();
    server_.reset();
  }

  void StartWorker(const std::string& id) {
    auto w = std::make_unique<TestWorker>();
    worker::RegisterBuiltinHandlers(w->registry);
    worker::WorkerOptions wo;
    wo.connect = {server_->worker_endpoint()};
    wo.id = id;
    wo.threads = 2;
    w->session = std::make_unique<worker::Session>(wo, ctx_, w->registry, SystemClock::Get());
    TestWorker* raw = w.get();
    w->thread = std::thread([raw] { raw->result = raw->session->Run(); });
    workers_[id] = std::move(w);
  }

  static Micros Now() { return SystemClock::Get().Now(); }

  // Polls `done` every few milliseconds until it holds or the deadline passes.
  template <typename Fn>
  bool Eventually(Fn done, Micros timeout = kDeadline) {
    const Micros until = Now() + timeout;
    while (Now() < until) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return done();
  }

  std::map<std::string, uint64_t> Stats() {
    auto s = client_->Stats();
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : std::map<std::string, uint64_t>{};
  }
  uint64_t Stat(const std::string& name) {
    const auto s = Stats();
    auto it = s.find(name);
    return it == s.end() ? 0 : it->second;
  }

  void WaitForWorkers(size_t n) {
    ASSERT_TRUE(Eventually([&] {
      auto w = client_->Workers();
      return w.ok() && w->size() == n;
    })) << "workers did not join";
  }

  std::vector<uint64_t> Submit(const std::vector<TaskSpec>& specs, size_t batch = 250) {
    std::vector<uint64_t> ids;
    for (size_t from = 0; from < specs.size(); from += batch) {
      std::vector<TaskSpec> part(
          specs.begin() + static_cast<ptrdiff_t>(from),
          specs.begin() + static_cast<ptrdiff_t>(std::min(specs.size(), from + batch)));
      auto got = client_->Submit(part);
      EXPECT_TRUE(got.ok()) << got.status().ToString();
      if (!got.ok()) return ids;
      EXPECT_EQ(got->size(), part.size());
      ids.insert(ids.end(), got->begin(), got->end());
    }
    return ids;
  }

  // Waits until every task is terminal, then returns their records in the order of `ids`.
  std::vector<TaskInfo> WaitAll(const std::vector<uint64_t>& ids) {
    const Micros until = Now() + kDeadline;
    for (uint64_t id : ids) {
      const Micros left = until - Now();
      if (left <= 0) {
        ADD_FAILURE() << "deadline passed waiting for task " << id;
        return {};
      }
      auto t = client_->Wait(id, left);
      if (!t.ok() || !t->has_value() || !protocol::IsTerminal((*t)->state)) {
        ADD_FAILURE() << "task " << id << " did not finish: "
                      << (t.ok()
                              ? (t->has_value() ? protocol::TaskStateName((*t)->state) : "unknown")
                              : t.status().ToString());
        return {};
      }
    }
    std::vector<TaskInfo> out;
    for (size_t from = 0; from < ids.size(); from += 500) {
      std::vector<uint64_t> part(
          ids.begin() + static_cast<ptrdiff_t>(from),
          ids.begin() + static_cast<ptrdiff_t>(std::min(ids.size(), from + 500)));
      auto got = client_->Get(part, /*with_payload=*/false);
      if (!got.ok()) {
        ADD_FAILURE() << got.status().ToString();
        return {};
      }
      for (size_t i = 0; i < got->size(); ++i) {
        if (!(*got)[i]) {
          ADD_FAILURE() << "task " << part[i] << " is unknown to the master";
          return {};
        }
        out.push_back(*(*got)[i]);
      }
    }
    return out;
  }

  transport::Context ctx_;  // first: outlives every socket
  FlakyStore store_;
  server::MasterOptions options_;
  std::unique_ptr<server::Server> server_;
  std::thread server_thread_;
  Status server_result_ = Internal("still running");
  std::map<std::string, std::unique_ptr<TestWorker>> workers_;
  std::unique_ptr<cli::Client> client_;
};

TEST_F(MasterWorkerTest, RunsTwoThousandEchoTasksExactlyOnce) {
  constexpr size_t kTasks = 2000;
  std::vector<TaskSpec> specs;
  for (size_t i = 0; i < kTasks; ++i) {
    std::string payload = "task-" + std::to_string(i);
    if (i % 7 == 0) payload += std::string("\x00\xff", 2);  // binary payloads survive the trip
    specs.push_back(Spec("echo", payload));
  }
  const std::vector<uint64_t> ids = Submit(specs);
  ASSERT_EQ(ids.size(), kTasks);
  const std::vector<TaskInfo> tasks = WaitAll(ids);
  ASSERT_EQ(tasks.size(), kTasks);
  std::map<std::string, int> by_worker;
  for (size_t i = 0; i < kTasks; ++i) {
    const TaskInfo& t = tasks[i];
    ASSERT_EQ(t.id, ids[i]);
    EXPECT_EQ(t.state, TaskState::kSucceeded) << t.id << ": " << t.error;
    EXPECT_EQ(t.result, specs[i].payload) << t.id;
    EXPECT_EQ(t.attempt, 1u) << t.id;
    EXPECT_EQ(t.failures, 0u) << t.id;
    ++by_worker[t.worker];
  }
  EXPECT_EQ(by_worker.size(), 2u) << "both workers took part";
  const auto stats = Stats();
  EXPECT_EQ(stats.at("tasks.succeeded"), kTasks);
  EXPECT_EQ(stats.at("tasks.submitted"), kTasks);
  EXPECT_EQ(stats.contains("results.duplicate") ? stats.at("results.duplicate") : 0, 0u);
  EXPECT_EQ(stats.at("tasks.active"), 0u);
  EXPECT_EQ(stats.at("workers.connected"), 2u);
}

TEST_F(MasterWorkerTest, KeyedTasksRunOneAfterAnotherInSubmitOrder) {
  std::vector<TaskSpec> specs;
  for (int i = 0; i < 5; ++i) specs.push_back(Spec("sleep", "20", "the-key"));
  for (int i = 0; i < 6; ++i) specs.push_back(Spec("echo", "free-" + std::to_string(i)));
  const std::vector<uint64_t> ids = Submit(specs, /*batch=*/100);
  ASSERT_EQ(ids.size(), specs.size());
  const std::vector<TaskInfo> tasks = WaitAll(ids);
  ASSERT_EQ(tasks.size(), specs.size());
  for (const TaskInfo& t : tasks) {
    EXPECT_EQ(t.state, TaskState::kSucceeded) << t.id << ": " << t.error;
    EXPECT_EQ(t.attempt, 1u);
  }
  for (size_t i = 0; i + 1 < 5; ++i) {
    EXPECT_EQ(tasks[i].key, "the-key");
    EXPECT_LE(tasks[i].finished_us, tasks[i + 1].dispatched_us)
        << "task " << tasks[i + 1].id << " of the key started before " << tasks[i].id
        << " finished";
    EXPECT_LT(tasks[i].dispatched_us, tasks[i + 1].dispatched_us);
  }
}

TEST_F(MasterWorkerTest, FailingTasksBecomeDeadLettersAfterMaxAttempts) {
  const std::vector<uint64_t> ids =
      Submit({Spec("fail", "", "", protocol::kDefaultPriority, /*max_attempts=*/3),
              Spec("fail", "permanent", "", protocol::kDefaultPriority, 3),
              Spec("echo", "fine", "", protocol::kDefaultPriority, 3)});
  ASSERT_EQ(ids.size(), 3u);
  const std::vector<TaskInfo> tasks = WaitAll(ids);
  ASSERT_EQ(tasks.size(), 3u);

  EXPECT_EQ(tasks[0].state, TaskState::kDead);
  EXPECT_EQ(tasks[0].attempt, 3u);
  EXPECT_EQ(tasks[0].failures, 3u);
  EXPECT_THAT(tasks[0].error, HasSubstr("gave up after 3"));
  EXPECT_THAT(tasks[0].error, HasSubstr("failed on purpose"));

  EXPECT_EQ(tasks[1].state, TaskState::kFailed);
  EXPECT_EQ(tasks[1].attempt, 1u) << "a permanent failure is not retried";
  EXPECT_THAT(tasks[1].error, HasSubstr("permanent"));

  EXPECT_EQ(tasks[2].state, TaskState::kSucceeded);
  EXPECT_EQ(tasks[2].result, "fine");

  const auto stats = Stats();
  EXPECT_EQ(stats.at("tasks.failed"), 1u);
  EXPECT_EQ(stats.at("tasks.dead"), 1u);
  EXPECT_EQ(stats.at("tasks.retried"), 2u);

  // The dead letter is listed, and requeued it runs again (and fails again: same handler).
  auto dead = client_->DeadList(0, 10);
  ASSERT_TRUE(dead.ok()) << dead.status().ToString();
  ASSERT_EQ(dead->tasks.size(), 1u);
  EXPECT_EQ(dead->tasks[0].id, ids[0]);
  EXPECT_FALSE(dead->more);
  auto requeued = client_->DeadRequeue({ids[0]}, false);
  ASSERT_TRUE(requeued.ok()) << requeued.status().ToString();
  EXPECT_EQ(requeued->count, 1u);
  auto again = client_->Wait(ids[0], kDeadline);
  ASSERT_TRUE(again.ok() && again->has_value());
  if ((*again)->state != TaskState::kDead) {
    again = client_->Wait(ids[0], kDeadline);
    ASSERT_TRUE(again.ok() && again->has_value());
  }
  EXPECT_EQ((*again)->state, TaskState::kDead);
  EXPECT_EQ((*again)->attempt, 6u);
  EXPECT_EQ(Stat("tasks.requeued"), 1u);

  // Purged, it is gone.
  auto purged = client_->DeadPurge({}, true);
  ASSERT_TRUE(purged.ok()) << purged.status().ToString();
  EXPECT_EQ(purged->count, 1u);
  auto gone = client_->Get({ids[0]}, false);
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE((*gone)[0].has_value());
  auto none = client_->DeadList(0, 10);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->tasks.empty());
}

TEST_F(MasterWorkerTest, IdempotencyKeyMakesARepeatedSubmitReturnTheFirstTask) {
  TaskSpec s = Spec("echo", "once");
  s.idempotency_key = "order-17";
  const auto first = Submit({s});
  const auto second = Submit({s});
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(first[0], second[0]);
  WaitAll(first);
  EXPECT_EQ(Stat("tasks.submitted"), 1u);
  EXPECT_EQ(Stat("tasks.deduplicated"), 1u);
}

TEST_F(MasterWorkerTest, StoppedWorkerHandsBackItsTasksAndTheOtherFinishesThem) {
  constexpr size_t kTasks = 16;
  const std::vector<uint64_t> ids = Submit(std::vector<TaskSpec>(kTasks, Spec("sleep", "200")));
  ASSERT_EQ(ids.size(), kTasks);
  // Stop worker-a while it holds tasks: some running, more queued behind its two threads. Once
  // the master has its first results, its threads have moved on to the next tasks.
  uint64_t completed_before_stop = 0;
  ASSERT_TRUE(Eventually([&] {
    auto w = client_->Workers();
    if (!w.ok()) return false;
    for (const auto& info : *w) {
      if (info.worker_id == "worker-a" && info.completed >= 1) {
        completed_before_stop = info.completed;
        return true;
      }
    }
    return false;
  })) << "worker-a never completed a task";
  TestWorker& a = *workers_.at("worker-a");
  a.Stop();
  EXPECT_TRUE(a.result.ok()) << a.result.ToString();
  ASSERT_TRUE(Eventually([&] {
    auto w = client_->Workers();
    return w.ok() && w->size() == 1 && (*w)[0].worker_id == "worker-b";
  })) << "the master still lists worker-a after it said goodbye";

  const std::vector<TaskInfo> tasks = WaitAll(ids);
  ASSERT_EQ(tasks.size(), kTasks);
  size_t finished_by_a = 0;
  for (const TaskInfo& t : tasks) {
    EXPECT_EQ(t.state, TaskState::kSucceeded) << t.id << ": " << t.error;
    EXPECT_EQ(t.result, "200");
    EXPECT_EQ(t.failures, 0u) << "handing a task back is not a failure";
    if (t.worker == "worker-a") ++finished_by_a;
  }
  EXPECT_GT(finished_by_a, completed_before_stop) << "worker-a finished what it had started";
  EXPECT_LT(finished_by_a, kTasks);
  const auto stats = Stats();
  EXPECT_GE(stats.at("tasks.released"), 1u) << "worker-a released what it had not started";
  EXPECT_EQ(stats.at("tasks.succeeded"), kTasks);
  EXPECT_EQ(stats.contains("results.duplicate") ? stats.at("results.duplicate") : 0, 0u);
  EXPECT_EQ(stats.at("workers.connected"), 1u);
}

TEST_F(MasterWorkerTest, CancelledTaskIsNotRun) {
  // Behind four tasks of its key, the victim waits on the master when it is cancelled.
  const std::vector<uint64_t> busy = Submit(std::vector<TaskSpec>(4, Spec("sleep", "100", "k")));
  const std::vector<uint64_t> victim = Submit({Spec("sleep", "100", "k")});
  ASSERT_EQ(victim.size(), 1u);
  auto state = client_->Cancel(victim[0]);
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  EXPECT_EQ(*state, TaskState::kCancelled);
  const std::vector<TaskInfo> tasks = WaitAll(busy);
  ASSERT_EQ(tasks.size(), busy.size());
  auto got = client_->Get(victim, false);
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE((*got)[0].has_value());
  EXPECT_EQ((*got)[0]->state, TaskState::kCancelled);
  EXPECT_EQ((*got)[0]->dispatched_us, 0) << "a queued keyed task never reached a worker";
  auto again = client_->Cancel(victim[0]);
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
}

// A submit is answered, and its tasks dispatched, only once its record is committed. While the
// store refuses commits the master retries every turn, holds the reply, dispatches nothing and
// refuses further submits; when the store recovers, the held submit completes once.
TEST_F(MasterWorkerTest, TaskIsDispatchedOnlyAfterItsSubmitIsCommitted) {
  auto observer = cli::Client::Create(ctx_, server_->client_endpoint(), 5 * kSeconds);
  ASSERT_TRUE(observer.ok()) << observer.status().ToString();
  store_.fail_commits = true;
  std::thread submitter([&] {
    auto ids = client_->Submit({Spec("echo", "held")});
    EXPECT_TRUE(ids.ok()) << ids.status().ToString();
  });
  ASSERT_TRUE(Eventually([&] { return store_.failed_commits.load() >= 3; }))
      << "the master did not retry the commit";
  auto stats = (*observer)->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->count("tasks.dispatches"), 0u) << "an uncommitted task was dispatched";
  auto refused = (*observer)->Submit({Spec("echo", "refused")});
  ASSERT_FALSE(refused.ok());
  // The store's own reason comes back: a full disk is RESOURCE_EXHAUSTED.
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("disk full"));

  store_.fail_commits = false;
  submitter.join();
  ASSERT_TRUE(Eventually([&] {
    auto s = (*observer)->Stats();
    return s.ok() && s->count("tasks.succeeded") && s->at("tasks.succeeded") == 1;
  }));
  stats = (*observer)->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->at("tasks.dispatches"), 1u);
  EXPECT_EQ(stats->at("tasks.submitted"), 1u);
}

// When the commit of a result fails, the master keeps the terminal record, the ACK and the
// waiters' answers, and retries the commit every turn: once the store recovers the task reads
// succeeded.
TEST_F(MasterWorkerTest, ResultWhoseCommitFailedIsNotLost) {
  const std::vector<uint64_t> ids = Submit({Spec("sleep", "300")});
  ASSERT_EQ(ids.size(), 1u);
  ASSERT_TRUE(Eventually([&] {
    auto t = client_->Get(ids, false);
    return t.ok() && (*t)[0] && (*t)[0]->state == TaskState::kDispatched;
  }));
  store_.fail_commits = true;
  const bool failed = Eventually([&] { return store_.failed_commits.load() >= 1; });
  store_.fail_commits = false;
  ASSERT_TRUE(failed) << "the result never reached the store";
  auto t = client_->Wait(ids[0], 5 * kSeconds);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE(t->has_value());
  EXPECT_EQ((*t)->state, TaskState::kSucceeded) << protocol::TaskStateName((*t)->state);
}

}  // namespace
}  // namespace yard

namespace yard {
namespace {

// Drives a MasterApi from this thread until `done` holds: poll, Process(), repeat.
template <typename Fn>
bool Drive(api::MasterApi& api, Fn done, Micros timeout = kDeadline) {
  transport::Poller poller;
  api.AddTo(poller);
  const Micros until = SystemClock::Get().Now() + timeout;
  while (!done()) {
    if (SystemClock::Get().Now() > until) return false;
    EXPECT_TRUE(poller.Poll(api::MasterApi::kMaxProcessIntervalMs).ok());
    api.Process();
  }
  return true;
}

TEST_F(MasterWorkerTest, MasterApiSubmitsWatchesTasksAndJobsAndReadsStats) {
  auto made =
      api::ClientMasterApi::Create(ctx_, {server_->inproc_client_endpoint()}, SystemClock::Get());
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  api::MasterApi& api = **made;

  std::optional<StatusOr<std::vector<uint64_t>>> ids;
  api.Submit({Spec("echo", "a"), Spec("echo", "b")}, [&](auto r) { ids = std::move(r); });
  EXPECT_EQ(api.Outstanding(), 1u);  // callbacks never run inside the call
  ASSERT_TRUE(Drive(api, [&] { return ids.has_value(); }));
  ASSERT_TRUE(ids->ok()) << ids->status().ToString();
  ASSERT_EQ((*ids)->size(), 2u);

  std::vector<TaskInfo> ended;
  for (uint64_t id : **ids) {
    api.WatchTask(id, kDeadline, [&](StatusOr<TaskInfo> t) {
      ASSERT_TRUE(t.ok()) << t.status().ToString();
      ended.push_back(*t);
    });
  }
  ASSERT_TRUE(Drive(api, [&] { return ended.size() == 2; }));
  std::sort(ended.begin(), ended.end(), [](auto& x, auto& y) { return x.id < y.id; });
  EXPECT_EQ(ended[0].state, TaskState::kSucceeded);
  EXPECT_EQ(ended[0].result, "a");
  EXPECT_EQ(ended[1].result, "b");

  protocol::JobSpec job;
  job.task = Spec("echo", "1\n2\n3\n");
  job.split = "lines:1";
  job.aggregate = "count";
  std::optional<StatusOr<protocol::JobInfo>> job_end;
  api.SubmitJob(job, [&](StatusOr<protocol::JobSubmitReply> r) {
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    api.WatchJob(r->job_id, kDeadline, [&](auto j) { job_end = std::move(j); });
  });
  ASSERT_TRUE(Drive(api, [&] { return job_end.has_value(); }));
  ASSERT_TRUE(job_end->ok()) << job_end->status().ToString();
  EXPECT_EQ((*job_end)->state, protocol::JobState::kSucceeded);
  EXPECT_EQ((*job_end)->result, "3");

  std::optional<StatusOr<TaskInfo>> unknown;
  std::optional<StatusOr<protocol::JobInfo>> unknown_job;
  std::optional<StatusOr<std::map<std::string, uint64_t>>> stats;
  std::optional<StatusOr<std::vector<uint64_t>>> refused;
  api.WatchTask(999999, kDeadline, [&](auto t) { unknown = std::move(t); });
  api.GetJob(999999, false, [&](auto j) { unknown_job = std::move(j); });
  api.Stats([&](auto s) { stats = std::move(s); });
  api.Submit({Spec("", "no type")}, [&](auto r) { refused = std::move(r); });
  ASSERT_TRUE(Drive(api, [&] { return unknown && unknown_job && stats && refused; }));
  EXPECT_EQ(unknown->status().code(), StatusCode::kNotFound);
  EXPECT_EQ(unknown_job->status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(stats->ok());
  EXPECT_EQ((**stats).at("tasks.succeeded"), 5u);  // two tasks, three parts
  EXPECT_EQ(refused->status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(api.Outstanding(), 0u);
}

}  // namespace
}  // namespace yard
