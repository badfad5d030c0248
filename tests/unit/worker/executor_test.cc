#include "worker/executor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/fakes/fake_clock.h"
#include "worker/handlers/builtin.h"
#include "worker/handlers/registry.h"

namespace yard::worker {
namespace {

using protocol::Outcome;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr auto kDeadline = std::chrono::seconds(30);

// A latch a handler can wait on (with a deadline, so a broken test fails instead of hanging).
class Gate {
 public:
  void Open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  bool WaitOpen() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return open_; });
  }
  void Arrive() {
    {
      std::lock_guard lock(mu_);
      ++arrived_;
    }
    cv_.notify_all();
  }
  bool WaitArrived(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return arrived_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int arrived_ = 0;
};

class ExecutorTest : public ::testing::Test {
 protected:
  ExecutorTest() {
    auto ok = [](Status st) { ASSERT_TRUE(st.ok()) << st.ToString(); };
    ok(registry_.Register("echo", [](const TaskContext& ctx) -> StatusOr<std::string> {
      return std::string(ctx.payload);
    }));
    ok(registry_.Register("retry", [](const TaskContext&) -> StatusOr<std::string> {
      return Unavailable("try later");
    }));
    ok(registry_.Register("permanent", [](const TaskContext&) -> StatusOr<std::string> {
      return InvalidArgument("bad input");
    }));
    ok(registry_.Register("throws", [](const TaskContext&) -> StatusOr<std::string> {
      throw std::runtime_error("kaboom");
    }));
    ok(registry_.Register("throws_int",
                          [](const TaskContext&) -> StatusOr<std::string> { throw 42; }));
    ok(registry_.Register("block", [this](const TaskContext&) -> StatusOr<std::string> {
      gate_.Arrive();
      if (!gate_.WaitOpen()) return DeadlineExceeded("gate never opened");
      return std::string("unblocked");
    }));
    ok(registry_.Register("until_stopped", [this](const TaskContext& ctx) -> StatusOr<std::string> {
      gate_.Arrive();
      const auto give_up = std::chrono::steady_clock::now() + kDeadline;
      while (!ctx.Stopping()) {
        if (std::chrono::steady_clock::now() > give_up) return DeadlineExceeded("never stopped");
        std::this_thread::yield();
      }
      if (ctx.Cancelled()) return Internal("a stop is not a cancel");
      return Cancelled("stopping");
    }));
    ok(registry_.Register("context", [](const TaskContext& ctx) -> StatusOr<std::string> {
      return std::to_string(ctx.id) + "/" + std::to_string(ctx.attempt) + "/" +
             std::string(ctx.type);
    }));
  }

  void Make(size_t threads) {
    executor_ = std::make_unique<Executor>(registry_, clock_, threads, [this] {
      {
        std::lock_guard lock(mu_);
        ++wakeups_;
      }
      cv_.notify_all();
    });
    executor_->Start();
  }

  Job MakeJob(uint64_t id, std::string type, std::string payload = "", size_t link = 0,
              uint32_t attempt = 1, uint32_t lease_ms = 1000) {
    Job j;
    j.received = clock_.Now();
    j.link = link;
    j.task.id = id;
    j.task.attempt = attempt;
    j.task.type = std::move(type);
    j.task.payload = std::move(payload);
    j.task.lease_ms = lease_ms;
    return j;
  }

  // Collects finished results until there are `n`, woken by on_done. False on timeout.
  bool WaitForDone(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] {
      executor_->TakeDone(&done_);
      return done_.size() >= n;
    });
  }

  std::map<uint64_t, protocol::ResultMsg> ById() const {
    std::map<uint64_t, protocol::ResultMsg> out;
    for (const auto& d : done_) out[d.result.id] = d.result;
    return out;
  }

  yard::testing::FakeClock clock_;
  HandlerRegistry registry_;
  Gate gate_;
  std::mutex mu_;
  std::condition_variable cv_;
  int wakeups_ = 0;
  std::vector<Done> done_;
  std::unique_ptr<Executor> executor_;  // last: stopped before what its handlers use
};

TEST_F(ExecutorTest, RunsJobsAndReportsEachOnce) {
  Make(2);
  std::vector<Job> jobs;
  for (uint64_t id = 1; id <= 50; ++id)
    jobs.push_back(MakeJob(id, "echo", "p" + std::to_string(id)));
  executor_->Submit(std::move(jobs));
  ASSERT_TRUE(WaitForDone(50));
  EXPECT_THAT(done_, SizeIs(50));
  const auto by_id = ById();
  ASSERT_THAT(by_id, SizeIs(50)) << "each job reported exactly once";
  for (const auto& [id, r] : by_id) {
    EXPECT_EQ(r.outcome, Outcome::kOk);
    EXPECT_EQ(r.output, "p" + std::to_string(id));
    EXPECT_EQ(r.attempt, 1u);
    EXPECT_EQ(r.error, "");
  }
  EXPECT_EQ(executor_->busy(), 0u);
  std::lock_guard lock(mu_);
  EXPECT_GE(wakeups_, 1) << "on_done wakes the I/O thread";
}

TEST_F(ExecutorTest, MapsHandlerResultsToOutcomes) {
  Make(2);
  executor_->Submit({MakeJob(1, "echo", "out"), MakeJob(2, "retry"), MakeJob(3, "permanent"),
                     MakeJob(4, "no.such.type"), MakeJob(5, "throws"), MakeJob(6, "throws_int")});
  ASSERT_TRUE(WaitForDone(6));
  const auto r = ById();
  ASSERT_THAT(r, SizeIs(6));
  EXPECT_EQ(r.at(1).outcome, Outcome::kOk);
  EXPECT_EQ(r.at(1).output, "out");

  EXPECT_EQ(r.at(2).outcome, Outcome::kFailRetry);
  EXPECT_THAT(r.at(2).error, HasSubstr("try later"));
  EXPECT_THAT(r.at(2).error, HasSubstr("UNAVAILABLE"));

  EXPECT_EQ(r.at(3).outcome, Outcome::kFailPermanent);
  EXPECT_THAT(r.at(3).error, HasSubstr("bad input"));

  EXPECT_EQ(r.at(4).outcome, Outcome::kFailPermanent) << "unknown types never succeed here";
  EXPECT_THAT(r.at(4).error, HasSubstr("no.such.type"));

  EXPECT_EQ(r.at(5).outcome, Outcome::kFailRetry);
  EXPECT_THAT(r.at(5).error, HasSubstr("kaboom"));

  EXPECT_EQ(r.at(6).outcome, Outcome::kFailRetry);
  EXPECT_THAT(r.at(6).error, HasSubstr("exception"));
  for (const auto& [id, res] : r) {
    if (id != 1) {
      EXPECT_EQ(res.output, "") << id;
    }
  }
}

TEST_F(ExecutorTest, KeepsTheTaskIdentityAndLink) {
  Make(1);
  executor_->Submit({MakeJob(7, "context", "", /*link=*/3, /*attempt=*/4)});
  ASSERT_TRUE(WaitForDone(1));
  ASSERT_THAT(done_, SizeIs(1));
  EXPECT_EQ(done_[0].link, 3u);
  EXPECT_EQ(done_[0].result.id, 7u);
  EXPECT_EQ(done_[0].result.attempt, 4u);
  EXPECT_EQ(done_[0].result.output, "7/4/context");
}

TEST_F(ExecutorTest, RunsJobsConcurrentlyOnItsThreads) {
  // Each job waits until all three have started: only three threads at once can finish.
  ASSERT_TRUE(registry_
                  .Register("rendezvous",
                            [this](const TaskContext&) -> StatusOr<std::string> {
                              gate_.Arrive();
                              if (!gate_.WaitArrived(3)) return DeadlineExceeded("alone");
                              return std::string("met");
                            })
                  .ok());
  Make(3);
  executor_->Submit({MakeJob(1, "rendezvous"), MakeJob(2, "rendezvous"), MakeJob(3, "rendezvous")});
  ASSERT_TRUE(WaitForDone(3));
  for (const auto& [id, r] : ById()) EXPECT_EQ(r.output, "met") << id;
}

TEST_F(ExecutorTest, TakeQueuedReturnsJobsThatHaveNotStarted) {
  Make(1);
  executor_->Submit({MakeJob(1, "block")});
  ASSERT_TRUE(gate_.WaitArrived(1)) << "the first job is running";
  executor_->Submit({MakeJob(2, "echo", "", 1), MakeJob(3, "echo"), MakeJob(4, "echo")});
  EXPECT_EQ(executor_->busy(), 4u) << "queued plus running";
  const std::vector<Job> queued = executor_->TakeQueued();
  ASSERT_THAT(queued, SizeIs(3));
  EXPECT_EQ(queued[0].task.id, 2u);
  EXPECT_EQ(queued[0].link, 1u);
  EXPECT_EQ(queued[1].task.id, 3u);
  EXPECT_EQ(queued[2].task.id, 4u);
  EXPECT_EQ(executor_->busy(), 1u);
  EXPECT_THAT(executor_->TakeQueued(), IsEmpty());

  gate_.Open();
  ASSERT_TRUE(WaitForDone(1));
  ASSERT_THAT(done_, SizeIs(1));
  EXPECT_EQ(done_[0].result.id, 1u);
  EXPECT_EQ(done_[0].result.output, "unblocked");
  EXPECT_EQ(executor_->busy(), 0u);
}

TEST_F(ExecutorTest, StopLetsRunningHandlersSeeTheFlagAndReturn) {
  Make(1);
  executor_->Submit({MakeJob(1, "until_stopped")});
  ASSERT_TRUE(gate_.WaitArrived(1));
  executor_->Stop();  // joins: returns only once the handler has returned
  executor_->TakeDone(&done_);
  ASSERT_THAT(done_, SizeIs(1));
  EXPECT_EQ(done_[0].result.outcome, Outcome::kFailRetry) << "a cancelled task may run again";
  EXPECT_THAT(done_[0].result.error, HasSubstr("CANCELLED"));
  executor_->Stop();  // a second Stop is harmless
}

TEST_F(ExecutorTest, StopLeavesQueuedJobsForTakeQueued) {
  Make(1);
  executor_->Submit({MakeJob(1, "block")});
  ASSERT_TRUE(gate_.WaitArrived(1));
  executor_->Submit({MakeJob(2, "echo"), MakeJob(3, "echo")});
  gate_.Open();
  executor_->Stop();
  std::vector<Done> done;
  executor_->TakeDone(&done);
  const std::vector<Job> queued = executor_->TakeQueued();
  // Whatever did not run is still there to be released; nothing is lost or run twice.
  EXPECT_EQ(done.size() + queued.size(), 3u);
  ASSERT_FALSE(done.empty());
  EXPECT_EQ(done[0].result.id, 1u);
}

TEST_F(ExecutorTest, RenewsTheLeaseOfTasksThatStartedLate) {
  Make(1);
  executor_->Submit({MakeJob(1, "block")});
  ASSERT_TRUE(gate_.WaitArrived(1));
  // Queued behind the blocked job while the clock moves 251 ms: over a quarter of a 1 s lease,
  // under a quarter of a 2 s one.
  executor_->Submit({MakeJob(2, "echo", "", /*link=*/1, /*attempt=*/3, /*lease_ms=*/1000),
                     MakeJob(3, "echo", "", 0, 1, /*lease_ms=*/2000)});
  clock_.Advance(251 * kMillis);
  gate_.Open();
  ASSERT_TRUE(WaitForDone(3));
  std::vector<Renewal> renewals;
  executor_->TakeRenewals(&renewals);
  ASSERT_THAT(renewals, SizeIs(1));
  EXPECT_EQ(renewals[0].link, 1u);
  EXPECT_EQ(renewals[0].ref, (protocol::TaskRef{2, 3}));
  EXPECT_EQ(renewals[0].lease_ms, 1000u);
  renewals.clear();
  executor_->TakeRenewals(&renewals);
  EXPECT_THAT(renewals, IsEmpty()) << "taken once";
}

TEST_F(ExecutorTest, TasksThatStartPromptlyAreNotLate) {
  Make(2);
  std::vector<Job> jobs;
  for (uint64_t id = 1; id <= 10; ++id) jobs.push_back(MakeJob(id, "echo"));
  executor_->Submit(std::move(jobs));
  ASSERT_TRUE(WaitForDone(10));
  std::vector<Renewal> renewals;
  executor_->TakeRenewals(&renewals);
  EXPECT_THAT(renewals, IsEmpty());
}

TEST_F(ExecutorTest, HandlerExtendsBecomeOneRenewalPerExecution) {
  // Many calls before the I/O thread looks: one renewal, with the latest lease. After it has
  // taken them, the same lease can be asked for again.
  ASSERT_TRUE(registry_
                  .Register("extends",
                            [this](const TaskContext& ctx) -> StatusOr<std::string> {
                              for (int i = 0; i < 100; ++i) ctx.Extend(ctx.lease_ms);
                              ctx.Extend(0);  // ignored: it would expire the task at once
                              ctx.Extend(ctx.lease_ms * 2);
                              gate_.Arrive();
                              if (!gate_.WaitOpen()) return DeadlineExceeded("gate never opened");
                              ctx.Extend(ctx.lease_ms * 2);
                              return std::string("extended");
                            })
                  .ok());
  Make(1);
  executor_->Submit({MakeJob(5, "extends", "", /*link=*/2, /*attempt=*/3, /*lease_ms=*/4000)});
  ASSERT_TRUE(gate_.WaitArrived(1));
  {
    std::lock_guard lock(mu_);
    EXPECT_GE(wakeups_, 1) << "a renewal wakes the I/O thread";
  }
  std::vector<Renewal> renewals;
  executor_->TakeRenewals(&renewals);
  ASSERT_THAT(renewals, SizeIs(1));
  EXPECT_EQ(renewals[0].link, 2u);
  EXPECT_EQ(renewals[0].ref, (protocol::TaskRef{5, 3}));
  EXPECT_EQ(renewals[0].lease_ms, 8000u);

  gate_.Open();
  ASSERT_TRUE(WaitForDone(1));
  EXPECT_EQ(done_[0].result.outcome, Outcome::kOk);
  renewals.clear();
  executor_->TakeRenewals(&renewals);
  ASSERT_THAT(renewals, SizeIs(1)) << "asked again after the first was taken";
  EXPECT_EQ(renewals[0].ref, (protocol::TaskRef{5, 3}));
  EXPECT_EQ(renewals[0].lease_ms, 8000u);
}

TEST_F(ExecutorTest, HandlersSeeTheirLease) {
  ASSERT_TRUE(registry_
                  .Register("lease",
                            [](const TaskContext& ctx) -> StatusOr<std::string> {
                              return std::to_string(ctx.lease_ms);
                            })
                  .ok());
  Make(1);
  executor_->Submit({MakeJob(1, "lease", "", 0, 1, /*lease_ms=*/12345)});
  ASSERT_TRUE(WaitForDone(1));
  EXPECT_EQ(done_[0].result.output, "12345");
}

TEST_F(ExecutorTest, CancelSkipsQueuedJobsAndReportsThemCancelled) {
  Make(1);
  executor_->Submit({MakeJob(1, "block")});
  ASSERT_TRUE(gate_.WaitArrived(1));
  executor_->Submit({MakeJob(2, "echo", "", /*link=*/0), MakeJob(3, "echo", "", 0, /*attempt=*/2),
                     MakeJob(2, "echo", "", /*link=*/1), MakeJob(4, "echo")});
  // (3, 1) is an older attempt, (99, 1) unknown: ignored. (2, 1) only on link 0.
  const CancelCounts counts = executor_->Cancel(0, {{2, 1}, {3, 1}, {99, 1}, {2, 1}});
  EXPECT_EQ(counts.skipped, 1u);
  EXPECT_EQ(counts.flagged, 0u);
  ASSERT_TRUE(WaitForDone(1)) << "the skipped job is reported at once";
  ASSERT_THAT(done_, SizeIs(1));
  EXPECT_EQ(done_[0].link, 0u);
  EXPECT_EQ(done_[0].result.id, 2u);
  EXPECT_EQ(done_[0].result.attempt, 1u);
  EXPECT_EQ(done_[0].result.outcome, Outcome::kCancelled);
  EXPECT_EQ(done_[0].result.error, "cancelled before start");
  EXPECT_EQ(executor_->busy(), 4u) << "one running, three still queued";

  gate_.Open();
  ASSERT_TRUE(WaitForDone(5));
  ASSERT_THAT(done_, SizeIs(5));
  for (size_t i = 1; i < done_.size(); ++i) {
    EXPECT_EQ(done_[i].result.outcome, Outcome::kOk) << done_[i].result.id;
  }
  EXPECT_EQ(executor_->busy(), 0u);
}

TEST_F(ExecutorTest, CancelOfUnknownRefsChangesNothing) {
  Make(1);
  EXPECT_EQ(executor_->Cancel(0, {}).skipped, 0u);
  const CancelCounts counts = executor_->Cancel(3, {{1, 1}, {2, 7}});
  EXPECT_EQ(counts.skipped, 0u);
  EXPECT_EQ(counts.flagged, 0u);
  executor_->Submit({MakeJob(1, "echo", "still runs")});
  ASSERT_TRUE(WaitForDone(1));
  EXPECT_EQ(done_[0].result.outcome, Outcome::kOk);
  EXPECT_EQ(done_[0].result.output, "still runs");
}

TEST_F(ExecutorTest, CancelFlagsARunningHandlerAndItsErrorIsReportedCancelled) {
  ASSERT_TRUE(registry_
                  .Register("until_cancelled",
                            [this](const TaskContext& ctx) -> StatusOr<std::string> {
                              gate_.Arrive();
                              const auto give_up = std::chrono::steady_clock::now() + kDeadline;
                              while (!ctx.Cancelled()) {
                                if (std::chrono::steady_clock::now() > give_up) {
                                  return DeadlineExceeded("never cancelled");
                                }
                                if (ctx.Stopping()) return Unavailable("stopping, not cancelled");
                                std::this_thread::yield();
                              }
                              return Unavailable("gave up after the cancel");
                            })
                  .ok());
  Make(2);
  executor_->Submit({MakeJob(1, "until_cancelled", "", /*link=*/1, /*attempt=*/2)});
  ASSERT_TRUE(gate_.WaitArrived(1));
  EXPECT_EQ(executor_->Cancel(0, {{1, 2}}).flagged, 0u) << "another link's task";
  const CancelCounts counts = executor_->Cancel(1, {{1, 2}});
  EXPECT_EQ(counts.flagged, 1u);
  EXPECT_EQ(counts.skipped, 0u);
  ASSERT_TRUE(WaitForDone(1));
  EXPECT_EQ(done_[0].result.outcome, Outcome::kCancelled) << "not a retry: the master ended it";
  EXPECT_THAT(done_[0].result.error, HasSubstr("gave up after the cancel"));
}

TEST_F(ExecutorTest, ACancelledHandlerThatSucceedsAnywayIsReportedOk) {
  ASSERT_TRUE(registry_
                  .Register("finishes",
                            [this](const TaskContext& ctx) -> StatusOr<std::string> {
                              gate_.Arrive();
                              const auto give_up = std::chrono::steady_clock::now() + kDeadline;
                              while (!ctx.Cancelled()) {
                                if (std::chrono::steady_clock::now() > give_up) {
                                  return DeadlineExceeded("never cancelled");
                                }
                                std::this_thread::yield();
                              }
                              return std::string("done anyway");
                            })
                  .ok());
  Make(1);
  executor_->Submit({MakeJob(1, "finishes")});
  ASSERT_TRUE(gate_.WaitArrived(1));
  EXPECT_EQ(executor_->Cancel(0, {{1, 1}}).flagged, 1u);
  ASSERT_TRUE(WaitForDone(1));
  EXPECT_EQ(done_[0].result.outcome, Outcome::kOk);
  EXPECT_EQ(done_[0].result.output, "done anyway");
}

TEST_F(ExecutorTest, CancelWakesTheBuiltinSleep) {
  HandlerRegistry builtins;
  RegisterBuiltinHandlers(builtins);
  const Handler sleep = *builtins.Find("sleep");
  ASSERT_TRUE(registry_
                  .Register("sleep",
                            [this, sleep](const TaskContext& ctx) {
                              gate_.Arrive();
                              return sleep(ctx);
                            })
                  .ok());
  Make(1);
  executor_->Submit({MakeJob(1, "sleep", "3600000")});  // an hour
  ASSERT_TRUE(gate_.WaitArrived(1));
  EXPECT_EQ(executor_->Cancel(0, {{1, 1}}).flagged, 1u);
  ASSERT_TRUE(WaitForDone(1)) << "the sleep did not notice the cancel";
  EXPECT_EQ(done_[0].result.outcome, Outcome::kCancelled);
  EXPECT_THAT(done_[0].result.error, HasSubstr("cancelled"));
}

TEST_F(ExecutorTest, TakeDoneAppendsToWhatTheCallerHolds) {
  Make(1);
  executor_->Submit({MakeJob(1, "echo")});
  ASSERT_TRUE(WaitForDone(1));
  executor_->Submit({MakeJob(2, "echo")});
  ASSERT_TRUE(WaitForDone(2));
  ASSERT_THAT(done_, SizeIs(2));
  EXPECT_EQ(done_[0].result.id, 1u);
  EXPECT_EQ(done_[1].result.id, 2u);
}

}  // namespace
}  // namespace yard::worker
