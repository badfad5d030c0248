// The StateStore contract, run against every implementation: MemoryStore and RocksStore (in a
// fresh temp dir), both on a FakeClock. A new store joins the suite by adding its factory to
// `StoreFactories` below.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "master/state/memory_store.h"
#include "master/state/rocks_store.h"
#include "master/state/state_store.h"
#include "tests/fakes/fake_clock.h"
#include "tests/testing/message_tie.h"
#include "tests/testing/temp_dir.h"

namespace yard::state {
namespace {

using protocol::JobInfo;
using protocol::JobPolicy;
using protocol::JobState;
using protocol::TaskInfo;
using protocol::TaskState;
using protocol::Tie;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr Micros kTtl = 3600 * kSeconds;

// A factory opens a fresh, empty store on `clock` and owns whatever it needs (a temp dir for a
// durable store) for as long as it lives.
struct MemoryStoreFactory {
  std::unique_ptr<StateStore> Open(const Clock& clock) {
    return std::make_unique<MemoryStore>(MemoryStoreOptions{1000000, kTtl}, clock);
  }
};

struct RocksStoreFactory {
  testing::TempDir dir;
  std::unique_ptr<StateStore> Open(const Clock& clock) {
    RocksStoreOptions o;
    o.dir = dir.path() + "/data";
    o.durability = Durability::kNone;  // the contract is about content, not syncing
    o.result_ttl = kTtl;
    auto store = RocksStore::Open(o, clock);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }
};

using StoreFactories = ::testing::Types<MemoryStoreFactory, RocksStoreFactory>;

testing::FakeClock& TestClock() {
  static testing::FakeClock clock;
  return clock;
}

TaskInfo Record(uint64_t id, TaskState state, std::string payload = "payload") {
  TaskInfo t;
  t.id = id;
  t.type = "echo";
  t.state = state;
  t.priority = static_cast<uint8_t>(id % 10);
  t.key = "k" + std::to_string(id % 3);
  t.attempt = 2;
  t.failures = 1;
  t.max_attempts = 4;
  t.timeout_ms = 1500;
  t.payload = std::move(payload);
  t.result = protocol::IsTerminal(state) ? "result-" + std::to_string(id) : "";
  t.error = "boom";
  t.worker = "w1";
  const int64_t wall = TestClock().WallNow();
  t.submitted_us = wall - 3000 + static_cast<int64_t>(id);
  t.dispatched_us = wall - 2000;
  t.finished_us = protocol::IsTerminal(state) ? wall - 1000 : 0;
  t.idempotency_key = "idem-" + std::to_string(id);
  return t;
}

// A queued task waiting out a retry back-off until `delay` from now.
TaskInfo Waiting(uint64_t id, Micros delay = 5 * kSeconds) {
  TaskInfo t = Record(id, TaskState::kQueued);
  t.run_after_us = TestClock().WallNow() + delay;
  return t;
}

Batch Records(std::vector<TaskInfo> records) {
  Batch b;
  b.records = std::move(records);
  return b;
}

// A job record with every field set; finished 1 ms before the test began if `state` is final.
JobInfo Job(uint64_t id, JobState state) {
  JobInfo j;
  j.id = id;
  j.type = "echo";
  j.split = "lines:10";
  j.aggregate = "concat";
  j.policy = JobPolicy::kContinue;
  j.state = state;
  j.parts = 4;
  j.first_task_id = id + 1;
  j.reduce_task_id = state == JobState::kReducing ? id + 5 : 0;
  j.queued = 1;
  j.running = 1;
  j.succeeded = 1;
  j.failed = 1;
  j.cancelled = 0;
  j.result = protocol::IsTerminal(state) ? "result-" + std::to_string(id) : "";
  j.error = "part 2 failed";
  j.failures = {{2, id + 3, TaskState::kDead, std::string("bo\0om", 5)}};
  const int64_t wall = TestClock().WallNow();
  j.submitted_us = wall - 3000;
  j.finished_us = protocol::IsTerminal(state) ? wall - 1000 : 0;
  j.priority = 2;
  j.key = "k" + std::to_string(id % 3);
  j.max_attempts = 3;
  j.timeout_ms = 1500;
  j.requirements = {"gpu", "x86"};
  return j;
}

Batch Jobs(std::vector<JobInfo> jobs) {
  Batch b;
  b.jobs = std::move(jobs);
  return b;
}

// Every field of a job record, for comparing and printing.
auto JobTie(const JobInfo& j) {
  std::vector<std::tuple<uint32_t, uint64_t, TaskState, std::string>> failures;
  for (const auto& f : j.failures) failures.emplace_back(f.part, f.task_id, f.state, f.error);
  return std::make_tuple(j.id, j.type, j.split, j.aggregate, j.policy, j.state, j.parts,
                         j.first_task_id, j.reduce_task_id, j.queued, j.running, j.succeeded,
                         j.failed, j.cancelled, j.result, j.error, failures, j.submitted_us,
                         j.finished_us, j.priority, j.key, j.max_attempts, j.timeout_ms,
                         j.requirements);
}

template <typename Factory>
class StoreContractTest : public ::testing::Test {
 protected:
  StoreContractTest() : store_(factory_.Open(TestClock())) {}

  void Commit(Batch batch) {
    const Status st = store_->Commit(batch);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  void Commit(std::initializer_list<TaskInfo> records) { Commit(Records(records)); }

  std::optional<TaskInfo> Get(uint64_t id) {
    auto got = store_->Get(id);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() ? *got : std::nullopt;
  }

  std::vector<uint64_t> ActiveIds() {
    std::vector<uint64_t> ids;
    const Status st = store_->ForEachActive([&](TaskInfo&& t) { ids.push_back(t.id); });
    EXPECT_TRUE(st.ok()) << st.ToString();
    std::sort(ids.begin(), ids.end());  // the contract sets no order
    return ids;
  }

  std::vector<uint64_t> DeadIds(uint64_t after = 0, size_t limit = 1000) {
    std::vector<uint64_t> ids;
    const Status st = store_->ForEachDead(after, [&](TaskInfo&& t) {
      ids.push_back(t.id);
      return ids.size() < limit;
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return ids;
  }

  std::vector<uint64_t> FinishedIds(uint64_t after = 0, size_t limit = 1000) {
    std::vector<uint64_t> ids;
    const Status st = store_->ForEachFinished(after, [&](TaskInfo&& t) {
      ids.push_back(t.id);
      return ids.size() < limit;
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return ids;
  }

  std::optional<JobInfo> GetJob(uint64_t id) {
    auto got = store_->GetJob(id);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() ? *got : std::nullopt;
  }

  std::vector<uint64_t> OpenJobIds() {
    std::vector<uint64_t> ids;
    const Status st = store_->ForEachOpenJob([&](JobInfo&& j) {
      ids.push_back(j.id);
      return Status::Ok();
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return ids;
  }

  Factory factory_;
  std::unique_ptr<StateStore> store_;
};

TYPED_TEST_SUITE(StoreContractTest, StoreFactories);

TYPED_TEST(StoreContractTest, StartsEmpty) {
  EXPECT_EQ(this->store_->MaxTaskId(), 0u);
  EXPECT_THAT(this->ActiveIds(), IsEmpty());
  EXPECT_FALSE(this->Get(1).has_value());
}

TYPED_TEST(StoreContractTest, GetReturnsWhatWasCommitted) {
  // Every field set, in every state (each lands somewhere else in a durable store).
  TaskInfo finished = Record(5, TaskState::kFailed, "");
  finished.result = std::string("\x00r\xff", 3);
  const std::vector<TaskInfo> records = {
      Record(1, TaskState::kQueued, std::string("\x00\xff\x00", 3)),
      Record(2, TaskState::kDispatched), Waiting(3), Record(4, TaskState::kDead), finished};
  this->Commit(Records(records));
  for (const TaskInfo& r : records) {
    const auto got = this->Get(r.id);
    ASSERT_TRUE(got.has_value()) << r.id;
    EXPECT_EQ(Tie(*got), Tie(r)) << r.id;
  }
}

TYPED_TEST(StoreContractTest, GetOfAnUnknownIdIsNullopt) {
  this->Commit({Record(5, TaskState::kQueued)});
  for (uint64_t id : {0ull, 4ull, 6ull, ~0ull}) {
    auto got = this->store_->Get(id);
    ASSERT_TRUE(got.ok()) << "an unknown id is not an error";
    EXPECT_FALSE(got->has_value()) << id;
  }
}

TYPED_TEST(StoreContractTest, OverwriteKeepsTheLatestVersion) {
  TaskInfo t = Record(7, TaskState::kQueued);
  this->Commit({t});
  t.state = TaskState::kDispatched;
  t.attempt = 3;
  t.worker = "w2";
  this->Commit({t});
  auto got = this->Get(7);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(Tie(*got), Tie(t));

  // Within one batch, the later version of a record wins.
  TaskInfo first = Record(8, TaskState::kQueued);
  TaskInfo second = first;
  second.failures = 2;
  second.error = "second";
  this->Commit({first, second});
  got = this->Get(8);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->failures, 2u);
  EXPECT_EQ(got->error, "second");
}

TYPED_TEST(StoreContractTest, AnEmptyCommitIsFine) {
  this->Commit(Batch{});
  EXPECT_EQ(this->store_->MaxTaskId(), 0u);
}

TYPED_TEST(StoreContractTest, ForEachActiveYieldsOnlyUnfinishedTasks) {
  this->Commit({Record(5, TaskState::kQueued), Record(2, TaskState::kDispatched),
                Record(9, TaskState::kSucceeded), Record(3, TaskState::kFailed)});
  this->Commit({Record(7, TaskState::kQueued), Record(1, TaskState::kCancelled),
                Record(4, TaskState::kDead), Record(6, TaskState::kQueued), Waiting(8)});
  EXPECT_THAT(this->ActiveIds(), ElementsAre(2, 5, 6, 7, 8)) << "waiting retries are active";

  // Finishing a task takes it out of the active set; the records passed are complete.
  this->Commit({Record(5, TaskState::kSucceeded)});
  std::vector<TaskInfo> active;
  ASSERT_TRUE(
      this->store_->ForEachActive([&](TaskInfo&& t) { active.push_back(std::move(t)); }).ok());
  std::sort(active.begin(), active.end(),
            [](const TaskInfo& a, const TaskInfo& b) { return a.id < b.id; });
  ASSERT_EQ(active.size(), 4u);
  EXPECT_EQ(Tie(active[0]), Tie(Record(2, TaskState::kDispatched)));
  EXPECT_EQ(Tie(active[1]), Tie(Record(6, TaskState::kQueued)));
  EXPECT_EQ(Tie(active[2]), Tie(Record(7, TaskState::kQueued)));
  EXPECT_EQ(active[3].id, 8u);
  EXPECT_GT(active[3].run_after_us, 0);
}

TYPED_TEST(StoreContractTest, MaxTaskIdIsTheHighestIdEverCommitted) {
  this->Commit({Record(3, TaskState::kQueued)});
  EXPECT_EQ(this->store_->MaxTaskId(), 3u);
  this->Commit({Record(10, TaskState::kQueued), Record(4, TaskState::kQueued)});
  EXPECT_EQ(this->store_->MaxTaskId(), 10u);
  this->Commit({Record(2, TaskState::kSucceeded)});
  EXPECT_EQ(this->store_->MaxTaskId(), 10u) << "never goes down";
  this->Commit({Record(10, TaskState::kSucceeded)});
  EXPECT_EQ(this->store_->MaxTaskId(), 10u);
}

TYPED_TEST(StoreContractTest, FinishedRecordsDropTheirPayload) {
  for (TaskState s :
       {TaskState::kSucceeded, TaskState::kFailed, TaskState::kCancelled, TaskState::kExpired}) {
    const uint64_t id = 100 + static_cast<uint64_t>(s);
    this->Commit({Record(id, s, std::string(1000, 'p'))});
    const auto got = this->Get(id);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->payload, "") << protocol::TaskStateName(s);
    EXPECT_EQ(got->result, "result-" + std::to_string(id)) << "the result stays";
    EXPECT_EQ(got->state, s);
    EXPECT_EQ(got->error, "boom");
  }
  // Active records and dead letters keep theirs: they may run again.
  this->Commit({Record(1, TaskState::kQueued, "keep me"), Record(2, TaskState::kDead, "me too")});
  EXPECT_EQ(this->Get(1)->payload, "keep me");
  EXPECT_EQ(this->Get(2)->payload, "me too");
}

TYPED_TEST(StoreContractTest, ARecordMovingBetweenStatesLeavesNothingBehind) {
  TaskInfo t = Record(42, TaskState::kQueued);
  this->Commit({t});
  // Retry back-offs: into the waiting set and to a later time within it.
  t.failures = 1;
  t.run_after_us = TestClock().WallNow() + kSeconds;
  this->Commit({t});
  EXPECT_THAT(this->ActiveIds(), ElementsAre(42));
  EXPECT_EQ(this->Get(42)->run_after_us, t.run_after_us);
  t.failures = 2;
  t.run_after_us += kSeconds;
  this->Commit({t});
  EXPECT_THAT(this->ActiveIds(), ElementsAre(42));
  EXPECT_EQ(this->Get(42)->failures, 2u);
  // Back to ready (a requeue), then finished.
  t.run_after_us = 0;
  this->Commit({t});
  EXPECT_THAT(this->ActiveIds(), ElementsAre(42));
  t.run_after_us = TestClock().WallNow() + 5 * kSeconds;
  this->Commit({t});
  t.state = TaskState::kSucceeded;
  t.finished_us = TestClock().WallNow();
  this->Commit({t});
  EXPECT_THAT(this->ActiveIds(), IsEmpty());
  EXPECT_EQ(this->Get(42)->state, TaskState::kSucceeded);
  EXPECT_THAT(this->DeadIds(), IsEmpty());
}

TYPED_TEST(StoreContractTest, SubmitAndFinishInOneBatchLeaveOnlyTheFinishedRecord) {
  TaskInfo queued = Record(3, TaskState::kQueued);
  TaskInfo done = Record(3, TaskState::kSucceeded);
  this->Commit({queued, done});
  EXPECT_THAT(this->ActiveIds(), IsEmpty());
  EXPECT_EQ(this->Get(3)->state, TaskState::kSucceeded);

  // Through every active place in one batch: queued, waiting, waiting longer, finished.
  this->Commit({Record(4, TaskState::kQueued), Waiting(4), Waiting(4, 10 * kSeconds),
                Record(4, TaskState::kSucceeded)});
  EXPECT_THAT(this->ActiveIds(), IsEmpty());
  EXPECT_EQ(this->Get(4)->state, TaskState::kSucceeded);
  EXPECT_EQ(this->Get(4)->payload, "");

  // Waiting, then queued again in the same batch: only the queued version is left.
  this->Commit({Waiting(5), Record(5, TaskState::kQueued)});
  std::vector<TaskInfo> active;
  ASSERT_TRUE(
      this->store_->ForEachActive([&](TaskInfo&& t) { active.push_back(std::move(t)); }).ok());
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(Tie(active[0]), Tie(Record(5, TaskState::kQueued)));
}

TYPED_TEST(StoreContractTest, DeadLettersAreListedInIdOrderAndPaged) {
  this->Commit({Record(9, TaskState::kDead), Record(2, TaskState::kDead),
                Record(5, TaskState::kQueued), Record(7, TaskState::kDead),
                Record(4, TaskState::kFailed)});
  EXPECT_THAT(this->DeadIds(), ElementsAre(2, 7, 9));
  EXPECT_THAT(this->DeadIds(2), ElementsAre(7, 9));
  EXPECT_THAT(this->DeadIds(0, 2), ElementsAre(2, 7));
  EXPECT_THAT(this->DeadIds(9), IsEmpty());
  EXPECT_THAT(this->DeadIds(~0ull), IsEmpty());
  EXPECT_THAT(this->ActiveIds(), ElementsAre(5));
}

TYPED_TEST(StoreContractTest, RequeuedAndPurgedDeadLettersLeaveTheDeadSet) {
  this->Commit(
      {Record(1, TaskState::kDead), Record(2, TaskState::kDead), Record(3, TaskState::kDead)});
  // Requeue 1: its new record plus its removal from the dead set, in one batch.
  Batch requeue;
  TaskInfo again = Record(1, TaskState::kQueued, "payload");
  again.failures = 0;
  requeue.records.push_back(again);
  requeue.dead_removed.push_back(1);
  this->Commit(requeue);
  EXPECT_THAT(this->DeadIds(), ElementsAre(2, 3));
  EXPECT_THAT(this->ActiveIds(), ElementsAre(1));
  EXPECT_EQ(this->Get(1)->state, TaskState::kQueued);
  // Purge 2.
  Batch purge;
  purge.dead_removed.push_back(2);
  this->Commit(purge);
  EXPECT_THAT(this->DeadIds(), ElementsAre(3));
  EXPECT_FALSE(this->Get(2).has_value());
  EXPECT_EQ(this->store_->MaxTaskId(), 3u);
}

TYPED_TEST(StoreContractTest, IdempotencyKeysAreKeptUntilTheyExpire) {
  const int64_t now = TestClock().WallNow();
  Batch b = Records({Record(1, TaskState::kQueued), Record(2, TaskState::kQueued)});
  b.idem = {{"order-1", 1, now + kSeconds}, {"order-2", 2, now + 10 * kSeconds}};
  this->Commit(b);
  auto keys = [&](int64_t at) {
    std::vector<std::pair<std::string, uint64_t>> out;
    EXPECT_TRUE(this->store_->ForEachIdem(at,
                                          [&](IdemEntry&& e) {
                                            out.push_back({e.key, e.id});
                                          })
                    .ok());
    std::sort(out.begin(), out.end());
    return out;
  };
  using P = std::pair<std::string, uint64_t>;
  EXPECT_THAT(keys(now), ElementsAre(P{"order-1", 1}, P{"order-2", 2}));
  EXPECT_THAT(keys(now + kSeconds), ElementsAre(P{"order-2", 2}));
  EXPECT_THAT(keys(now + 10 * kSeconds), IsEmpty());
}

TYPED_TEST(StoreContractTest, FinishedRecordsVanishAfterTheResultTtl) {
  this->Commit({Record(1, TaskState::kSucceeded), Record(2, TaskState::kDead),
                Record(3, TaskState::kQueued)});
  TestClock().Advance(kTtl - kMillis);  // it finished 1 ms before the test began
  EXPECT_TRUE(this->Get(1).has_value()) << "exactly the TTL old: still there";
  TestClock().Advance(kSeconds);
  this->Commit(Batch{});
  EXPECT_FALSE(this->Get(1).has_value());
  EXPECT_TRUE(this->Get(2).has_value()) << "dead letters stay until requeued or purged";
  EXPECT_TRUE(this->Get(3).has_value()) << "active tasks never expire";
  EXPECT_EQ(this->store_->MaxTaskId(), 3u);
}

TYPED_TEST(StoreContractTest, KeepsTheFieldsTasksOfJobsCarry) {
  // In every place a record can be: ready, waiting, finished, dead.
  std::vector<TaskInfo> records = {Record(1, TaskState::kQueued), Waiting(2),
                                   Record(3, TaskState::kExpired), Record(4, TaskState::kDead)};
  for (TaskInfo& t : records) {
    t.deadline_us = TestClock().WallNow() + 7 * kSeconds;
    t.requirements = {"gpu", "region=eu"};
    t.job_id = 100;
    t.part = t.id == 3 ? protocol::kReducePart : static_cast<uint32_t>(t.id);
  }
  this->Commit(Records(records));
  for (const TaskInfo& r : records) {
    const auto got = this->Get(r.id);
    ASSERT_TRUE(got.has_value()) << r.id;
    EXPECT_EQ(got->state, r.state) << r.id;
    EXPECT_EQ(got->deadline_us, r.deadline_us) << r.id;
    EXPECT_EQ(got->requirements, r.requirements) << r.id;
    EXPECT_EQ(got->job_id, 100u) << r.id;
    EXPECT_EQ(got->part, r.part) << r.id;
  }
}

TYPED_TEST(StoreContractTest, ExpiredTasksAreFinishedOnes) {
  this->Commit({Record(1, TaskState::kExpired), Record(2, TaskState::kQueued)});
  EXPECT_THAT(this->ActiveIds(), ElementsAre(2));
  EXPECT_THAT(this->DeadIds(), IsEmpty());
  EXPECT_THAT(this->FinishedIds(), ElementsAre(1));
  TestClock().Advance(kTtl + kSeconds);
  this->Commit(Batch{});
  EXPECT_FALSE(this->Get(1).has_value()) << "gone after the result TTL like any finished task";
  EXPECT_THAT(this->FinishedIds(), IsEmpty());
}

TYPED_TEST(StoreContractTest, FinishedTasksAreListedInIdOrderAcrossFinishedAndDead) {
  this->Commit({Record(9, TaskState::kDead), Record(2, TaskState::kSucceeded),
                Record(5, TaskState::kQueued), Record(7, TaskState::kFailed)});
  this->Commit({Record(4, TaskState::kDead), Record(3, TaskState::kCancelled),
                Record(6, TaskState::kExpired), Record(8, TaskState::kDispatched), Waiting(11),
                Record(12, TaskState::kDead), Record(10, TaskState::kSucceeded)});
  EXPECT_THAT(this->FinishedIds(), ElementsAre(2, 3, 4, 6, 7, 9, 10, 12));
  EXPECT_THAT(this->FinishedIds(4), ElementsAre(6, 7, 9, 10, 12)) << "after_id is excluded";
  EXPECT_THAT(this->FinishedIds(5), ElementsAre(6, 7, 9, 10, 12)) << "after_id may be any id";
  EXPECT_THAT(this->FinishedIds(0, 3), ElementsAre(2, 3, 4)) << "stops when fn says so";
  EXPECT_THAT(this->FinishedIds(6, 1), ElementsAre(7));
  EXPECT_THAT(this->FinishedIds(12), IsEmpty());
  EXPECT_THAT(this->FinishedIds(~0ull), IsEmpty());

  // The records are complete: a dead letter keeps its payload, a finished task does not.
  std::vector<TaskInfo> listed;
  ASSERT_TRUE(this->store_
                  ->ForEachFinished(3,
                                    [&](TaskInfo&& t) {
                                      listed.push_back(std::move(t));
                                      return listed.size() < 2;
                                    })
                  .ok());
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(Tie(listed[0]), Tie(Record(4, TaskState::kDead)));
  TaskInfo expired = Record(6, TaskState::kExpired);
  expired.payload.clear();
  EXPECT_EQ(Tie(listed[1]), Tie(expired));

  // A requeued dead letter is active again, so no longer listed; a purged one is gone.
  Batch requeue = Records({Record(4, TaskState::kQueued)});
  requeue.dead_removed = {4, 12};
  this->Commit(requeue);
  EXPECT_THAT(this->FinishedIds(), ElementsAre(2, 3, 6, 7, 9, 10));
}

TYPED_TEST(StoreContractTest, FinishedTasksPastTheResultTtlAreNotListed) {
  this->Commit({Record(1, TaskState::kSucceeded), Record(2, TaskState::kDead)});
  TestClock().Advance(kTtl / 2);
  this->Commit({Record(3, TaskState::kFailed)});
  TestClock().Advance(kTtl / 2 + kSeconds);
  // Hidden at once, before any commit gives the store a chance to drop it.
  EXPECT_THAT(this->FinishedIds(), ElementsAre(2, 3));
  EXPECT_THAT(this->FinishedIds(0, 1), ElementsAre(2)) << "a hidden record does not count";
  this->Commit(Batch{});
  EXPECT_THAT(this->FinishedIds(), ElementsAre(2, 3));
}

TYPED_TEST(StoreContractTest, JobsAreStoredUpdatedAndFinished) {
  JobInfo job = Job(10, JobState::kRunning);
  this->Commit(Jobs({job}));
  auto got = this->GetJob(10);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(JobTie(*got), JobTie(job));

  // Progress, then the reduce step, then the end; each commit replaces the record.
  job.queued = 0;
  job.running = 2;
  this->Commit(Jobs({job}));
  EXPECT_EQ(this->GetJob(10)->running, 2u);
  job.state = JobState::kReducing;
  job.reduce_task_id = 15;
  this->Commit(Jobs({job}));
  EXPECT_EQ(JobTie(*this->GetJob(10)), JobTie(job));
  job.state = JobState::kPartial;
  job.result = std::string(3000, 'r');
  job.finished_us = TestClock().WallNow();
  this->Commit(Jobs({job}));
  got = this->GetJob(10);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(JobTie(*got), JobTie(job)) << "a finished job keeps its result";

  // Within one batch, the later version of a job wins.
  JobInfo first = Job(20, JobState::kRunning);
  JobInfo second = Job(20, JobState::kSucceeded);
  this->Commit(Jobs({first, second}));
  EXPECT_EQ(JobTie(*this->GetJob(20)), JobTie(second));
  this->Commit(Jobs({Job(21, JobState::kFailed), Job(21, JobState::kRunning)}));
  EXPECT_EQ(this->GetJob(21)->state, JobState::kRunning);
  EXPECT_THAT(this->OpenJobIds(), ElementsAre(21));
}

TYPED_TEST(StoreContractTest, JobsAndTasksAreApart) {
  Batch b = Records({Record(1, TaskState::kQueued), Record(2, TaskState::kSucceeded)});
  b.jobs = {Job(3, JobState::kRunning)};
  EXPECT_FALSE(Batch(Jobs({Job(4, JobState::kRunning)})).empty());
  this->Commit(b);
  EXPECT_FALSE(this->GetJob(1).has_value()) << "a task id is no job id";
  EXPECT_FALSE(this->GetJob(2).has_value());
  EXPECT_FALSE(this->Get(3).has_value()) << "a job id is no task id";
  for (uint64_t id : {0ull, 4ull, ~0ull}) EXPECT_FALSE(this->GetJob(id).has_value()) << id;
  EXPECT_THAT(this->ActiveIds(), ElementsAre(1));
  EXPECT_THAT(this->FinishedIds(), ElementsAre(2));
  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_TRUE(b.jobs.empty());
}

TYPED_TEST(StoreContractTest, ForEachOpenJobYieldsUnfinishedJobsInIdOrder) {
  this->Commit(Jobs({Job(9, JobState::kRunning), Job(5, JobState::kSucceeded),
                     Job(2, JobState::kReducing), Job(7, JobState::kPartial)}));
  this->Commit(Jobs({Job(3, JobState::kFailed), Job(4, JobState::kCancelled),
                     Job(1, JobState::kRunning), Job(12, JobState::kRunning)}));
  EXPECT_THAT(this->OpenJobIds(), ElementsAre(1, 2, 9, 12));

  // Finishing a job takes it out; the records passed are complete.
  this->Commit(Jobs({Job(9, JobState::kCancelled)}));
  std::vector<JobInfo> open;
  ASSERT_TRUE(this->store_
                  ->ForEachOpenJob([&](JobInfo&& j) {
                    open.push_back(std::move(j));
                    return Status::Ok();
                  })
                  .ok());
  ASSERT_EQ(open.size(), 3u);
  EXPECT_EQ(JobTie(open[0]), JobTie(Job(1, JobState::kRunning)));
  EXPECT_EQ(JobTie(open[1]), JobTie(Job(2, JobState::kReducing)));
  EXPECT_EQ(JobTie(open[2]), JobTie(Job(12, JobState::kRunning)));

  // The first error stops the walk and is returned.
  std::vector<uint64_t> seen;
  const Status st = this->store_->ForEachOpenJob([&](JobInfo&& j) {
    seen.push_back(j.id);
    return j.id == 2 ? DataLoss("job 2 does not fit") : Status::Ok();
  });
  EXPECT_EQ(st.code(), StatusCode::kDataLoss);
  EXPECT_EQ(st.message(), "job 2 does not fit");
  EXPECT_THAT(seen, ElementsAre(1, 2));
}

TYPED_TEST(StoreContractTest, FinishedJobsVanishAfterTheResultTtl) {
  this->Commit(Jobs(
      {Job(1, JobState::kSucceeded), Job(2, JobState::kRunning), Job(3, JobState::kReducing)}));
  TestClock().Advance(kTtl - kMillis);  // it finished 1 ms before the test began
  EXPECT_TRUE(this->GetJob(1).has_value()) << "exactly the TTL old: still there";
  TestClock().Advance(kSeconds);
  EXPECT_FALSE(this->GetJob(1).has_value()) << "hidden at once";
  this->Commit(Batch{});
  EXPECT_FALSE(this->GetJob(1).has_value());
  EXPECT_TRUE(this->GetJob(2).has_value()) << "open jobs never expire";
  EXPECT_TRUE(this->GetJob(3).has_value());
  EXPECT_THAT(this->OpenJobIds(), ElementsAre(2, 3));
  // A job finished now counts its TTL from now.
  JobInfo done = Job(2, JobState::kFailed);
  done.finished_us = TestClock().WallNow();
  this->Commit(Jobs({done}));
  TestClock().Advance(kTtl);
  EXPECT_EQ(this->GetJob(2)->state, JobState::kFailed);
  EXPECT_THAT(this->OpenJobIds(), ElementsAre(3));
  EXPECT_EQ(this->store_->MaxTaskId(), 3u);
}

TYPED_TEST(StoreContractTest, MaxTaskIdCoversJobIds) {
  this->Commit({Record(3, TaskState::kQueued)});
  this->Commit(Jobs({Job(8, JobState::kRunning)}));
  EXPECT_EQ(this->store_->MaxTaskId(), 8u) << "tasks and jobs share the id counter";
  this->Commit({Record(5, TaskState::kQueued)});
  EXPECT_EQ(this->store_->MaxTaskId(), 8u);
  Batch both = Records({Record(12, TaskState::kQueued)});
  both.jobs = {Job(11, JobState::kRunning), Job(2, JobState::kSucceeded)};
  this->Commit(both);
  EXPECT_EQ(this->store_->MaxTaskId(), 12u);
  Batch job_last = Records({Record(13, TaskState::kQueued)});
  job_last.jobs = {Job(14, JobState::kRunning)};
  this->Commit(job_last);
  EXPECT_EQ(this->store_->MaxTaskId(), 14u);
}

// ---------------------------------------------------------------- MemoryStore retention

TEST(MemoryStoreRetention, EvictsTheOldestFinishedTasks) {
  MemoryStore store(MemoryStoreOptions{2, kTtl}, TestClock());
  // Finished in the order 5, 2, 8: 5 is the oldest although its id is not the lowest.
  ASSERT_TRUE(store.Commit(Records({Record(5, TaskState::kSucceeded)})).ok());
  ASSERT_TRUE(store.Commit(Records({Record(2, TaskState::kFailed)})).ok());
  ASSERT_TRUE(store.Commit(Records({Record(8, TaskState::kCancelled)})).ok());
  EXPECT_FALSE(store.Get(5)->has_value());
  EXPECT_TRUE(store.Get(2)->has_value());
  EXPECT_TRUE(store.Get(8)->has_value());
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.MaxTaskId(), 8u);
}

TEST(MemoryStoreRetention, NeverEvictsActiveTasks) {
  MemoryStore store(MemoryStoreOptions{1, kTtl}, TestClock());
  ASSERT_TRUE(
      store.Commit(Records({Record(1, TaskState::kQueued), Record(2, TaskState::kDispatched)}))
          .ok());
  for (uint64_t id = 10; id < 20; ++id) {
    ASSERT_TRUE(store.Commit(Records({Record(id, TaskState::kSucceeded)})).ok());
  }
  EXPECT_TRUE(store.Get(1)->has_value());
  EXPECT_TRUE(store.Get(2)->has_value());
  EXPECT_TRUE(store.Get(19)->has_value());
  EXPECT_FALSE(store.Get(18)->has_value());
  EXPECT_EQ(store.size(), 3u);
  std::vector<uint64_t> active;
  ASSERT_TRUE(store.ForEachActive([&](TaskInfo&& t) { active.push_back(t.id); }).ok());
  std::sort(active.begin(), active.end());
  EXPECT_THAT(active, ElementsAre(1, 2));
}

TEST(MemoryStoreRetention, TasksFinishedInOneBatchAreEvictedInBatchOrder) {
  MemoryStore store(MemoryStoreOptions{2, kTtl}, TestClock());
  ASSERT_TRUE(
      store
          .Commit(Records({Record(3, TaskState::kSucceeded), Record(1, TaskState::kSucceeded),
                           Record(2, TaskState::kSucceeded)}))
          .ok());
  EXPECT_FALSE(store.Get(3)->has_value());
  EXPECT_TRUE(store.Get(1)->has_value());
  EXPECT_TRUE(store.Get(2)->has_value());
}

TEST(MemoryStoreRetention, EvictsTheOldestFinishedJobsButNoOpenOnes) {
  MemoryStore store(MemoryStoreOptions{2, kTtl}, TestClock());
  ASSERT_TRUE(store.Commit(Jobs({Job(1, JobState::kRunning), Job(5, JobState::kSucceeded)})).ok());
  ASSERT_TRUE(store.Commit(Jobs({Job(2, JobState::kFailed)})).ok());
  // Finished tasks are counted apart: they do not push jobs out.
  ASSERT_TRUE(
      store.Commit(Records({Record(10, TaskState::kSucceeded), Record(11, TaskState::kSucceeded)}))
          .ok());
  EXPECT_TRUE(store.GetJob(5)->has_value());
  ASSERT_TRUE(store.Commit(Jobs({Job(8, JobState::kCancelled)})).ok());
  EXPECT_FALSE(store.GetJob(5)->has_value()) << "the oldest finished job";
  EXPECT_TRUE(store.GetJob(2)->has_value());
  EXPECT_TRUE(store.GetJob(8)->has_value());
  EXPECT_TRUE(store.GetJob(1)->has_value()) << "open jobs are never evicted";
  EXPECT_EQ(store.job_count(), 3u);
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.MaxTaskId(), 11u);
}

TEST(MemoryStoreRetention, ZeroKeepsNoFinishedTasks) {
  MemoryStore store(MemoryStoreOptions{0, kTtl}, TestClock());
  ASSERT_TRUE(
      store.Commit(Records({Record(1, TaskState::kSucceeded), Record(2, TaskState::kQueued)}))
          .ok());
  EXPECT_FALSE(store.Get(1)->has_value());
  EXPECT_TRUE(store.Get(2)->has_value());
  EXPECT_EQ(store.MaxTaskId(), 2u);
}

}  // namespace
}  // namespace yard::state
