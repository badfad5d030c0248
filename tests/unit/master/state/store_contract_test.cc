// The StateStore contract, run against every implementation. A new store joins the suite by
// adding its factory to `StoreFactories` below.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "master/state/memory_store.h"
#include "master/state/state_store.h"

namespace yard::state {
namespace {

using protocol::TaskInfo;
using protocol::TaskState;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// A factory opens a fresh, empty store and owns whatever it needs (a temp dir for a durable
// store) for as long as it lives.
struct MemoryStoreFactory {
  std::unique_ptr<StateStore> Open() { return std::make_unique<MemoryStore>(); }
};

using StoreFactories = ::testing::Types<MemoryStoreFactory>;

auto Tie(const TaskInfo& t) {
  return std::tie(t.id, t.type, t.state, t.priority, t.key, t.attempt, t.failures, t.max_attempts,
                  t.timeout_ms, t.payload, t.result, t.error, t.worker, t.submitted_us,
                  t.dispatched_us, t.finished_us);
}

TaskInfo Record(uint64_t id, TaskState state, std::string payload = "payload") {
  TaskInfo t;
  t.id = id;
  t.type = "echo";
  t.state = state;
  t.priority = 3;
  t.key = "k" + std::to_string(id % 3);
  t.attempt = 2;
  t.failures = 1;
  t.max_attempts = 4;
  t.timeout_ms = 1500;
  t.payload = std::move(payload);
  t.result = protocol::IsTerminal(state) ? "result-" + std::to_string(id) : "";
  t.error = "boom";
  t.worker = "w1";
  t.submitted_us = 1000 + static_cast<int64_t>(id);
  t.dispatched_us = 2000;
  t.finished_us = protocol::IsTerminal(state) ? 3000 : 0;
  return t;
}

template <typename Factory>
class StoreContractTest : public ::testing::Test {
 protected:
  StoreContractTest() : store_(factory_.Open()) {}

  void Commit(const std::vector<TaskInfo>& records) {
    const Status st = store_->Commit(records);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  std::optional<TaskInfo> Get(uint64_t id) {
    auto got = store_->Get(id);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() ? *got : std::nullopt;
  }

  std::vector<uint64_t> ActiveIds() {
    std::vector<uint64_t> ids;
    const Status st = store_->ForEachActive([&](TaskInfo&& t) { ids.push_back(t.id); });
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
  const TaskInfo a = Record(1, TaskState::kQueued, std::string("\x00\xff\x00", 3));
  const TaskInfo b = Record(2, TaskState::kDispatched);
  this->Commit({a, b});
  const auto got_a = this->Get(1);
  ASSERT_TRUE(got_a.has_value());
  EXPECT_EQ(Tie(*got_a), Tie(a));
  const auto got_b = this->Get(2);
  ASSERT_TRUE(got_b.has_value());
  EXPECT_EQ(Tie(*got_b), Tie(b));
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
  this->Commit({});
  EXPECT_EQ(this->store_->MaxTaskId(), 0u);
}

TYPED_TEST(StoreContractTest, ForEachActiveYieldsOnlyUnfinishedTasksInIdOrder) {
  this->Commit({Record(5, TaskState::kQueued), Record(2, TaskState::kDispatched),
                Record(9, TaskState::kSucceeded), Record(3, TaskState::kFailed)});
  this->Commit({Record(7, TaskState::kQueued), Record(1, TaskState::kCancelled),
                Record(4, TaskState::kDead), Record(6, TaskState::kQueued)});
  EXPECT_THAT(this->ActiveIds(), ElementsAre(2, 5, 6, 7));

  // Finishing a task takes it out of the active set; the records passed are complete.
  this->Commit({Record(5, TaskState::kSucceeded)});
  std::vector<TaskInfo> active;
  ASSERT_TRUE(
      this->store_->ForEachActive([&](TaskInfo&& t) { active.push_back(std::move(t)); }).ok());
  ASSERT_EQ(active.size(), 3u);
  EXPECT_EQ(Tie(active[0]), Tie(Record(2, TaskState::kDispatched)));
  EXPECT_EQ(Tie(active[1]), Tie(Record(6, TaskState::kQueued)));
  EXPECT_EQ(Tie(active[2]), Tie(Record(7, TaskState::kQueued)));
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

TYPED_TEST(StoreContractTest, TerminalRecordsDropTheirPayload) {
  for (TaskState s :
       {TaskState::kSucceeded, TaskState::kFailed, TaskState::kCancelled, TaskState::kDead}) {
    const uint64_t id = 100 + static_cast<uint64_t>(s);
    this->Commit({Record(id, s, std::string(1000, 'p'))});
    const auto got = this->Get(id);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->payload, "") << protocol::TaskStateName(s);
    EXPECT_EQ(got->result, "result-" + std::to_string(id)) << "the result stays";
    EXPECT_EQ(got->state, s);
    EXPECT_EQ(got->error, "boom");
  }
  // Active records keep theirs: a restart needs it to run them.
  this->Commit({Record(1, TaskState::kQueued, "keep me")});
  EXPECT_EQ(this->Get(1)->payload, "keep me");
}

// ---------------------------------------------------------------- MemoryStore retention

TEST(MemoryStoreRetention, EvictsTheOldestFinishedTasks) {
  MemoryStore store(/*max_finished=*/2);
  // Finished in the order 5, 2, 8: 5 is the oldest although its id is not the lowest.
  ASSERT_TRUE(store.Commit({Record(5, TaskState::kSucceeded)}).ok());
  ASSERT_TRUE(store.Commit({Record(2, TaskState::kFailed)}).ok());
  ASSERT_TRUE(store.Commit({Record(8, TaskState::kCancelled)}).ok());
  EXPECT_FALSE(store.Get(5)->has_value());
  EXPECT_TRUE(store.Get(2)->has_value());
  EXPECT_TRUE(store.Get(8)->has_value());
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.MaxTaskId(), 8u);
}

TEST(MemoryStoreRetention, NeverEvictsActiveTasks) {
  MemoryStore store(/*max_finished=*/1);
  ASSERT_TRUE(
      store.Commit({Record(1, TaskState::kQueued), Record(2, TaskState::kDispatched)}).ok());
  for (uint64_t id = 10; id < 20; ++id) {
    ASSERT_TRUE(store.Commit({Record(id, TaskState::kSucceeded)}).ok());
  }
  EXPECT_TRUE(store.Get(1)->has_value());
  EXPECT_TRUE(store.Get(2)->has_value());
  EXPECT_TRUE(store.Get(19)->has_value());
  EXPECT_FALSE(store.Get(18)->has_value());
  EXPECT_EQ(store.size(), 3u);
  std::vector<uint64_t> active;
  ASSERT_TRUE(store.ForEachActive([&](TaskInfo&& t) { active.push_back(t.id); }).ok());
  EXPECT_THAT(active, ElementsAre(1, 2));
}

TEST(MemoryStoreRetention, TasksFinishedInOneBatchAreEvictedInBatchOrder) {
  MemoryStore store(/*max_finished=*/2);
  ASSERT_TRUE(store
                  .Commit({Record(3, TaskState::kSucceeded), Record(1, TaskState::kSucceeded),
                           Record(2, TaskState::kSucceeded)})
                  .ok());
  EXPECT_FALSE(store.Get(3)->has_value());
  EXPECT_TRUE(store.Get(1)->has_value());
  EXPECT_TRUE(store.Get(2)->has_value());
}

TEST(MemoryStoreRetention, ZeroKeepsNoFinishedTasks) {
  MemoryStore store(/*max_finished=*/0);
  ASSERT_TRUE(store.Commit({Record(1, TaskState::kSucceeded), Record(2, TaskState::kQueued)}).ok());
  EXPECT_FALSE(store.Get(1)->has_value());
  EXPECT_TRUE(store.Get(2)->has_value());
  EXPECT_EQ(store.MaxTaskId(), 2u);
}

}  // namespace
}  // namespace yard::state
