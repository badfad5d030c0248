// Scheduling rules on a fake clock: priority aging, delays, deadlines, routing by required
// tags, cancellation of running tasks, and jobs (split, aggregate, fail-fast/continue, reduce,
// cancel, recovery).
#include "tests/unit/master/core/engine_fixture.h"

namespace yard::core {
namespace {

using protocol::JobInfo;
using protocol::JobPolicy;
using protocol::JobSpec;
using protocol::JobState;

// ------------------------------------------------------------------ priorities and aging

TEST_F(EngineTest, AgingLetsALongWaitingLowPriorityTaskGoFirst) {
  config_.aging = kSeconds;
  Restart();
  const uint64_t old_low = SubmitOne(Spec("echo", "p", "", 9));
  Advance(5 * kSeconds);  // 9 - 5 levels = 4, ahead of a fresh 5
  const uint64_t fresh_mid = SubmitOne(Spec("echo", "p", "", 5));
  Join("c1", "w1", {"echo"}, 1);
  EXPECT_EQ(DispatchOne("c1").id, old_low);
  Report("c1", old_low, 1, Outcome::kOk);
  EXPECT_EQ(DispatchOne("c1").id, fresh_mid);
}

TEST_F(EngineTest, AgingIsNotEnoughBeforeItsTime) {
  config_.aging = kSeconds;
  Restart();
  const uint64_t low = SubmitOne(Spec("echo", "p", "", 9));
  Advance(3 * kSeconds);  // 9 - 3 = 6: still behind a 5
  const uint64_t mid = SubmitOne(Spec("echo", "p", "", 5));
  Join("c1", "w1", {"echo"}, 1);
  EXPECT_EQ(DispatchOne("c1").id, mid);
  Report("c1", mid, 1, Outcome::kOk);
  EXPECT_EQ(DispatchOne("c1").id, low);
}

TEST_F(EngineTest, WithoutAgingPriorityIsStrict) {
  config_.aging = 0;
  Restart();
  const uint64_t low = SubmitOne(Spec("echo", "p", "", 9));
  Advance(3600 * kSeconds);
  const uint64_t high = SubmitOne(Spec("echo", "p", "", 0));
  Join("c1", "w1", {"echo"}, 1);
  EXPECT_EQ(DispatchOne("c1").id, high);
  Report("c1", high, 1, Outcome::kOk);
  EXPECT_EQ(DispatchOne("c1").id, low);
}

TEST_F(EngineTest, AgedLowPriorityTasksProgressUnderAStreamOfHighOnes) {
  config_.aging = kSeconds;
  Restart();
  const uint64_t low = SubmitOne(Spec("echo", "p", "", 9));
  Join("c1", "w1", {"echo"}, 1);
  // Every 100 ms a new priority-0 task arrives and one task runs.
  for (int i = 0; i < 200; ++i) {
    SubmitOne(Spec("echo", "p", "", 0));
    Advance(100 * kMillis);
    const TaskMsg t = DispatchOne("c1");
    Report("c1", t, Outcome::kOk);
    if (t.id == low) {
      SUCCEED() << "ran after " << i << " turns";
      return;
    }
  }
  FAIL() << "the priority-9 task never ran";
}

// ------------------------------------------------------------------ delays and deadlines

TEST_F(EngineTest, DelayedTaskRunsOnlyAfterItsDelay) {
  TaskSpec s = Spec();
  s.delay_ms = 5000;
  const uint64_t id = SubmitOne(s);
  EXPECT_EQ(Stat("tasks.scheduled"), 1u);
  ASSERT_TRUE(engine().NextDeadline().has_value());
  Advance(4999 * kMillis);
  Tick();
  Join("c1", "w1");
  EXPECT_EQ(Dispatch().total(), 0u);
  Advance(1 * kMillis);
  Tick();
  EXPECT_EQ(DispatchOne("c1").id, id);
  EXPECT_EQ(Stat("tasks.scheduled"), 0u);
}

TEST_F(EngineTest, NotBeforeIsAWallClockTime) {
  TaskSpec s = Spec();
  s.not_before_us = now().wall + 2 * kSeconds;
  const uint64_t id = SubmitOne(s);
  Join("c1", "w1");
  EXPECT_EQ(Dispatch().total(), 0u);
  Advance(2 * kSeconds);
  Tick();
  EXPECT_EQ(DispatchOne("c1").id, id);
}

TEST_F(EngineTest, DeadlineExpiresATaskThatDidNotStart) {
  TaskSpec s = Spec();
  s.deadline_ms = 1000;
  const uint64_t id = SubmitOne(s);
  Advance(1000 * kMillis);
  const Effects fx = Tick();
  const TaskInfo* rec = Record(fx, id);
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(rec->state, TaskState::kExpired);
  EXPECT_THAT(rec->error, HasSubstr("deadline"));
  EXPECT_THAT(fx.finished, ElementsAre(id));
  EXPECT_EQ(Stat("tasks.expired"), 1u);
  Join("c1", "w1");
  EXPECT_EQ(Dispatch().total(), 0u);
}

TEST_F(EngineTest, DeadlineDoesNotStopAStartedTaskButStopsItsRetry) {
  TaskSpec s = Spec();
  s.deadline_ms = 1000;
  const uint64_t id = SubmitOne(s);
  Join("c1", "w1");
  const TaskMsg t = DispatchOne("c1");
  Advance(2 * kSeconds);
  EXPECT_THAT(Tick().store_puts, IsEmpty()) << "a running task does not expire";
  const Effects fx = Report("c1", t, Outcome::kFailRetry, "flaky");
  ASSERT_NE(Record(fx, id), nullptr);
  EXPECT_EQ(Record(fx, id)->state, TaskState::kExpired);
  EXPECT_THAT(Record(fx, id)->error, HasSubstr("flaky"));
}

TEST_F(EngineTest, DeadlineBeforeTheDelayIsRefused) {
  TaskSpec s = Spec();
  s.delay_ms = 5000;
  s.deadline_ms = 1000;
  Effects fx;
  auto ids = engine().Submit({s}, now(), fx);
  ASSERT_FALSE(ids.ok());
  EXPECT_THAT(ids.status().message(), HasSubstr("deadline"));
  EXPECT_EQ(engine().active(), 0u);
}

TEST_F(EngineTest, KeyedTaskBehindAnExpiredHeadRuns) {
  TaskSpec first = Spec("echo", "p", "dev-1");
  first.deadline_ms = 1000;
  const uint64_t a = SubmitOne(first);
  const uint64_t b = SubmitOne(Spec("echo", "p", "dev-1"));
  Advance(kSeconds);
  Tick();
  EXPECT_FALSE(engine().Find(a));
  Join("c1", "w1");
  EXPECT_EQ(DispatchOne("c1").id, b);
}

// ------------------------------------------------------------------ routing

TEST_F(EngineTest, RequiredTagsRouteOnlyToWorkersWithAllOfThem) {
  protocol::Hello plain, gpu;
  plain.worker_id = "plain";
  plain.handlers = {"echo"};
  plain.credit = 10;
  gpu = plain;
  gpu.worker_id = "gpu";
  gpu.tags = {"gpu", "eu"};
  Effects fx;
  engine().OnHello("c-plain", plain, now(), fx);
  engine().OnHello("c-gpu", gpu, now(), fx);
  TaskSpec needs = Spec();
  needs.requirements = {"gpu"};
  TaskSpec needs_two = Spec();
  needs_two.requirements = {"eu", "gpu"};
  TaskSpec needs_other = Spec();
  needs_other.requirements = {"tpu"};
  const uint64_t a = SubmitOne(needs);
  const uint64_t b = SubmitOne(needs_two);
  const uint64_t c = SubmitOne(needs_other);
  const uint64_t d = SubmitOne(Spec());
  const Sent s = Dispatch();
  EXPECT_THAT(s.Ids("c-gpu"), ::testing::IsSupersetOf({a, b}));
  EXPECT_THAT(s.Ids("c-plain"), ::testing::Not(::testing::Contains(a)));
  EXPECT_THAT(s.Ids("c-plain"), ::testing::Not(::testing::Contains(b)));
  EXPECT_EQ(s.total(), 3u) << "nobody has tpu";
  EXPECT_EQ(StateOf(c), TaskState::kQueued);
  EXPECT_TRUE(engine().Find(d));
}

TEST_F(EngineTest, RequiredTagsAreValidated) {
  TaskSpec s = Spec();
  s.requirements = {""};
  Effects fx;
  EXPECT_FALSE(engine().Submit({s}, now(), fx).ok());
  s.requirements.assign(17, "t");
  EXPECT_FALSE(engine().Submit({s}, now(), fx).ok());
}

// ------------------------------------------------------------------ cancellation

TEST_F(EngineTest, CancelOfARunningTaskTellsItsWorker) {
  Join("c1", "w1");
  const uint64_t id = SubmitOne(Spec());
  const TaskMsg t = DispatchOne("c1");
  Effects fx;
  ASSERT_TRUE(engine().Cancel(id, now(), fx).ok());
  ASSERT_THAT(fx.cancels, SizeIs(1));
  EXPECT_EQ(fx.cancels[0].first, "c1");
  EXPECT_EQ(fx.cancels[0].second, (protocol::TaskRef{id, t.attempt}));
  Report("c1", t, Outcome::kCancelled, "cancelled");
  EXPECT_EQ(Stat("results.after_cancel"), 1u);
}

TEST_F(EngineTest, CancelOfAQueuedTaskTellsNoWorker) {
  const uint64_t id = SubmitOne(Spec());
  Effects fx;
  ASSERT_TRUE(engine().Cancel(id, now(), fx).ok());
  EXPECT_THAT(fx.cancels, IsEmpty());
}

// ------------------------------------------------------------------ jobs

JobSpec Job(std::string split, std::string payload, std::string aggregate = "collect",
            JobPolicy policy = JobPolicy::kFailFast) {
  JobSpec j;
  j.task = Spec("echo", std::move(payload));
  j.split = std::move(split);
  j.aggregate = std::move(aggregate);
  j.policy = policy;
  return j;
}

const JobInfo* LastJob(const Effects& fx, uint64_t id) {
  const JobInfo* last = nullptr;
  for (const auto& j : fx.job_puts) {
    if (j.id == id) last = &j;
  }
  return last;
}

TEST_F(EngineTest, JobSplitsIntoConsecutivePartTasks) {
  Effects fx;
  auto r = SubmitJob(Job("lines:1", "a\nb\nc\n"), &fx);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->parts, 3u);
  EXPECT_EQ(r->first_task_id, r->job_id + 1);
  EXPECT_THAT(fx.created, ElementsAre(r->job_id + 1, r->job_id + 2, r->job_id + 3));
  ASSERT_NE(LastJob(fx, r->job_id), nullptr);
  EXPECT_EQ(LastJob(fx, r->job_id)->state, JobState::kRunning);
  for (uint32_t i = 0; i < 3; ++i) {
    const std::optional<TaskInfo> part = engine().Find(r->first_task_id + i);
    ASSERT_TRUE(part.has_value());
    EXPECT_EQ(part->job_id, r->job_id);
    EXPECT_EQ(part->part, i);
  }
  EXPECT_EQ(engine().Find(r->first_task_id)->payload, "a\n");
  auto live = engine().FindJob(r->job_id);
  ASSERT_TRUE(live.has_value());
  EXPECT_EQ(live->queued, 3u);
}

TEST_F(EngineTest, JobAggregatesOnceEveryPartSucceeded) {
  auto r = SubmitJob(Job("range:1..4", "", "sum"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Join("c1", "w1");
  const Sent s = Dispatch();
  ASSERT_EQ(s.total(), 4u);
  Effects last;
  for (const auto& t : s.tasks.at("c1")) last = Report("c1", t, Outcome::kOk, t.payload);
  const JobInfo* j = LastJob(last, r->job_id);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state, JobState::kSucceeded);
  EXPECT_EQ(j->result, "10");
  EXPECT_EQ(j->succeeded, 4u);
  EXPECT_FALSE(engine().FindJob(r->job_id).has_value());
  EXPECT_EQ(Stat("jobs.succeeded"), 1u);
}

TEST_F(EngineTest, FailFastFailsTheJobAndCancelsTheOtherParts) {
  auto r = SubmitJob(Job("lines:1", "a\nb\nc\n"));
  ASSERT_TRUE(r.ok());
  Join("c1", "w1");
  const Sent s = Dispatch();
  ASSERT_EQ(s.total(), 3u);
  const Effects fx = Report("c1", s.tasks.at("c1")[1], Outcome::kFailPermanent, "bad line");
  const JobInfo* j = LastJob(fx, r->job_id);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state, JobState::kFailed);
  EXPECT_THAT(j->error, HasSubstr("part 1"));
  EXPECT_THAT(j->error, HasSubstr("bad line"));
  EXPECT_EQ(j->failed, 1u);
  EXPECT_EQ(j->cancelled, 2u);
  EXPECT_THAT(fx.cancels, SizeIs(2)) << "the running parts' worker is told";
  EXPECT_EQ(engine().active(), 0u);
}

TEST_F(EngineTest, ContinueFinishesWithThePartsThatSucceeded) {
  auto r = SubmitJob(Job("lines:1", "a\nb\nc\n", "concat", JobPolicy::kContinue));
  ASSERT_TRUE(r.ok());
  Join("c1", "w1");
  const Sent s = Dispatch();
  const auto& t = s.tasks.at("c1");
  Report("c1", t[0], Outcome::kOk, "A");
  Report("c1", t[1], Outcome::kFailPermanent, "bad line");
  const Effects fx = Report("c1", t[2], Outcome::kOk, "C");
  const JobInfo* j = LastJob(fx, r->job_id);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state, JobState::kPartial);
  EXPECT_EQ(j->result, "AC");
  ASSERT_THAT(j->failures, SizeIs(1));
  EXPECT_EQ(j->failures[0].part, 1u);
  EXPECT_EQ(j->failures[0].task_id, t[1].id);
  EXPECT_EQ(j->failures[0].error, "bad line");
}

TEST_F(EngineTest, ContinueWithNoSuccessFailsTheJob) {
  auto r = SubmitJob(Job("lines:1", "a\n", "collect", JobPolicy::kContinue));
  ASSERT_TRUE(r.ok());
  Join("c1", "w1");
  const Effects fx = Report("c1", DispatchOne("c1"), Outcome::kFailPermanent, "no");
  ASSERT_NE(LastJob(fx, r->job_id), nullptr);
  EXPECT_EQ(LastJob(fx, r->job_id)->state, JobState::kFailed);
}

TEST_F(EngineTest, ReduceRunsATaskOverThePartResults) {
  JobSpec spec = Job("lines:1", "a\nb\n", "reduce:merge");
  auto r = SubmitJob(spec);
  ASSERT_TRUE(r.ok());
  Join("c1", "w1", {"echo", "merge"});
  const Sent s = Dispatch();
  Report("c1", s.tasks.at("c1")[0], Outcome::kOk, "1");
  Effects fx = Report("c1", s.tasks.at("c1")[1], Outcome::kOk, "2");
  const JobInfo* j = LastJob(fx, r->job_id);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->state, JobState::kReducing);
  ASSERT_NE(j->reduce_task_id, 0u);
  engine().OnCommitted(fx.created);
  const TaskMsg reduce = DispatchOne("c1");
  EXPECT_EQ(reduce.id, j->reduce_task_id);
  EXPECT_EQ(reduce.type, "merge");
  EXPECT_EQ(reduce.payload, "[1,2]");
  fx = Report("c1", reduce, Outcome::kOk, "3");
  ASSERT_NE(LastJob(fx, r->job_id), nullptr);
  EXPECT_EQ(LastJob(fx, r->job_id)->state, JobState::kSucceeded);
  EXPECT_EQ(LastJob(fx, r->job_id)->result, "3");
}

TEST_F(EngineTest, CancelJobCancelsItsActiveParts) {
  auto r = SubmitJob(Job("lines:1", "a\nb\nc\n"));
  ASSERT_TRUE(r.ok());
  Join("c1", "w1", {"echo"}, 1);
  const TaskMsg running = DispatchOne("c1");
  Effects fx;
  auto j = engine().CancelJob(r->job_id, now(), fx);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->state, JobState::kCancelled);
  EXPECT_EQ(j->cancelled, 3u);
  EXPECT_THAT(fx.cancels, ElementsAre(::testing::Pair("c1", protocol::TaskRef{running.id, 1})));
  EXPECT_EQ(engine().active(), 0u);
  EXPECT_FALSE(engine().CancelJob(r->job_id, now(), fx).ok());
}

TEST_F(EngineTest, CancellingOnePartUnderFailFastFailsTheJob) {
  auto r = SubmitJob(Job("lines:1", "a\nb\n"));
  ASSERT_TRUE(r.ok());
  Effects fx;
  ASSERT_TRUE(engine().Cancel(r->first_task_id, now(), fx).ok());
  ASSERT_NE(LastJob(fx, r->job_id), nullptr);
  EXPECT_EQ(LastJob(fx, r->job_id)->state, JobState::kFailed);
}

TEST_F(EngineTest, BadJobsCreateNothing) {
  config_.max_job_tasks = 2;
  Restart();
  for (const JobSpec& bad : {Job("nope:1", "a"), Job("lines:1", ""), Job("lines:1", "a\nb\nc\n"),
                             Job("range:5..1", ""), Job("lines:1", "a\n", "median")}) {
    Effects fx;
    auto r = engine().SubmitJob(bad, now(), fx);
    EXPECT_FALSE(r.ok()) << bad.split << " " << bad.aggregate;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(fx.store_puts, IsEmpty());
    EXPECT_THAT(fx.job_puts, IsEmpty());
  }
  EXPECT_EQ(engine().active(), 0u);
}

TEST_F(EngineTest, JobPartsKeepTheirKeyOrder) {
  JobSpec spec = Job("lines:1", "a\nb\nc\n");
  spec.task.key = "dev-1";
  auto r = SubmitJob(spec);
  ASSERT_TRUE(r.ok());
  Join("c1", "w1");
  for (uint32_t i = 0; i < 3; ++i) {
    const TaskMsg t = DispatchOne("c1");
    EXPECT_EQ(t.id, r->first_task_id + i);
    Report("c1", t, Outcome::kOk, "x");
  }
}

TEST_F(EngineTest, JobRecoversFromItsRecordAndItsPartsRecords) {
  auto r = SubmitJob(Job("range:1..3", "", "sum"));
  ASSERT_TRUE(r.ok());
  Join("c1", "w1");
  const Sent s = Dispatch();
  // Part 0 finishes before the "crash"; parts 1 and 2 are still active.
  std::map<uint64_t, TaskInfo> store;
  JobInfo job_record;
  auto keep = [&](const Effects& fx) {
    for (const auto& t : fx.store_puts) store[t.id] = t;
    for (const auto& j : fx.job_puts) job_record = j;
  };
  keep(Report("c1", s.tasks.at("c1")[0], Outcome::kOk, "1"));
  job_record.id = r->job_id;  // the running record written at submit
  job_record.first_task_id = r->first_task_id;
  job_record.parts = 3;
  job_record.aggregate = "sum";
  job_record.state = JobState::kRunning;

  Restart();
  engine().RestoreJob(JobInfo(job_record));
  for (uint64_t id = r->first_task_id + 1; id < r->first_task_id + 3; ++id) {
    TaskInfo t;
    t.id = id;
    t.type = "echo";
    t.payload = std::to_string(id - r->first_task_id + 1);
    t.job_id = r->job_id;
    t.part = static_cast<uint32_t>(id - r->first_task_id);
    t.max_attempts = 3;
    t.timeout_ms = 1000;
    engine().Restore(std::move(t), now());
  }
  engine().FinishRestore(now());
  const auto ended = engine().EndedPartIds();
  ASSERT_THAT(ended, ElementsAre(::testing::Pair(r->job_id, r->first_task_id)));
  engine().RestoreEndedPart(r->job_id, r->first_task_id, store.at(r->first_task_id));
  Effects fx;
  engine().FinishJobRestore(now(), fx);
  EXPECT_THAT(fx.job_puts, IsEmpty()) << "two parts still run";
  ASSERT_TRUE(engine().FindJob(r->job_id).has_value());
  EXPECT_EQ(engine().FindJob(r->job_id)->succeeded, 1u);
  Join("c1", "w1");
  const Sent again = Dispatch();
  Effects last;
  for (const auto& t : again.tasks.at("c1")) last = Report("c1", t, Outcome::kOk, t.payload);
  ASSERT_NE(LastJob(last, r->job_id), nullptr);
  EXPECT_EQ(LastJob(last, r->job_id)->state, JobState::kSucceeded);
  EXPECT_EQ(LastJob(last, r->job_id)->result, "6");
  // Ids continue past the job's parts.
  EXPECT_GT(SubmitOne(Spec()), r->first_task_id + 2);
}

TEST_F(EngineTest, JobWhosePartRecordIsGoneCountsThatPartAsFailed) {
  JobInfo rec;
  rec.id = 10;
  rec.first_task_id = 11;
  rec.parts = 1;
  rec.aggregate = "collect";
  rec.policy = JobPolicy::kContinue;
  engine().RestoreJob(std::move(rec));
  engine().FinishRestore(now());
  engine().RestoreEndedPart(10, 11, std::nullopt);
  Effects fx;
  engine().FinishJobRestore(now(), fx);
  ASSERT_NE(LastJob(fx, 10), nullptr);
  EXPECT_EQ(LastJob(fx, 10)->state, JobState::kFailed);
  EXPECT_THAT(LastJob(fx, 10)->failures.at(0).error, HasSubstr("gone"));
}

}  // namespace
}  // namespace yard::core
