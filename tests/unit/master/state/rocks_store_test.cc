// RocksStore beyond the shared contract: the on-disk layout, what survives a reopen, which
// directories it refuses, expiry by compaction, and what full disks and I/O errors do.
#include "master/state/rocks_store.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/file_system.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "common/protocol/codec.h"
#include "tests/fakes/fake_clock.h"
#include "tests/testing/temp_dir.h"

namespace yard::state {
namespace {

using protocol::JobInfo;
using protocol::JobState;
using protocol::TaskInfo;
using protocol::TaskState;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

using KeyValues = std::vector<std::pair<std::string, std::string>>;

std::string Be64(uint64_t v) {
  std::string out;
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
  return out;
}

// Opens the RocksDB database in `dir` with the plain RocksDB API and every column family it
// has, for tests that look under the store or build databases it must refuse.
class RawDb {
 public:
  // Opens an existing database with all its families (`create`: a new one with `families`).
  explicit RawDb(const std::string& dir, std::vector<std::string> families = {}) {
    rocksdb::DBOptions o;
    if (families.empty()) {
      EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(o, dir, &names_).ok());
    } else {
      o.create_if_missing = true;
      o.create_missing_column_families = true;
      names_ = std::move(families);
    }
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const auto& n : names_) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    rocksdb::DB* db = nullptr;
    const rocksdb::Status s = rocksdb::DB::Open(o, dir, descs, &handles_, &db);
    EXPECT_TRUE(s.ok()) << s.ToString();
    db_.reset(db);
  }
  ~RawDb() {
    if (!db_) return;
    for (auto* h : handles_) EXPECT_TRUE(db_->DestroyColumnFamilyHandle(h).ok());
    EXPECT_TRUE(db_->Close().ok());
  }
  const std::vector<std::string>& families() const { return names_; }
  rocksdb::ColumnFamilyHandle* family(const std::string& name) const {
    const auto it = std::find(names_.begin(), names_.end(), name);
    return it == names_.end() ? nullptr : handles_[it - names_.begin()];
  }
  void Put(const std::string& family_name, const std::string& key, const std::string& value) {
    ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), family(family_name), key, value).ok());
  }
  KeyValues Contents(const std::string& family_name) const {
    KeyValues out;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), family(family_name)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      out.emplace_back(it->key().ToString(), it->value().ToString());
    }
    return out;
  }

 private:
  std::vector<std::string> names_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::unique_ptr<rocksdb::DB> db_;
};

TaskInfo Decode(const std::string& value) {
  TaskInfo t;
  EXPECT_TRUE(protocol::DecodeBody(value, &t).ok());
  return t;
}
JobInfo DecodeJob(const std::string& value) {
  JobInfo j;
  EXPECT_TRUE(protocol::DecodeBody(value, &j).ok());
  return j;
}

class RocksStoreTest : public ::testing::Test {
 protected:
  RocksStoreTest() : root_(tmp_.path()) {
    options_.dir = root_ + "/data";
    options_.durability = Durability::kNone;
    options_.result_ttl = 3600 * kSeconds;
  }

  std::unique_ptr<RocksStore> Open() {
    auto s = RocksStore::Open(options_, clock_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }
  TaskInfo Record(uint64_t id, TaskState state) const {
    TaskInfo t;
    t.id = id;
    t.type = "echo";
    t.state = state;
    t.payload = "p" + std::to_string(id);
    t.max_attempts = 3;
    t.finished_us = protocol::IsTerminal(state) ? clock_.WallNow() : 0;
    return t;
  }
  JobInfo Job(uint64_t id, JobState state) const {
    JobInfo j;
    j.id = id;
    j.type = "echo";
    j.split = "lines:1";
    j.aggregate = "collect";
    j.state = state;
    j.parts = 2;
    j.first_task_id = id + 1;
    j.result = protocol::IsTerminal(state) ? "r" + std::to_string(id) : "";
    j.finished_us = protocol::IsTerminal(state) ? clock_.WallNow() : 0;
    return j;
  }
  static std::vector<uint64_t> OpenJobs(const StateStore& s) {
    std::vector<uint64_t> ids;
    EXPECT_TRUE(s.ForEachOpenJob([&](JobInfo&& j) {
                   ids.push_back(j.id);
                   return Status::Ok();
                 }).ok());
    return ids;
  }
  static std::vector<uint64_t> Active(const StateStore& s) {
    std::vector<uint64_t> ids;
    EXPECT_TRUE(s.ForEachActive([&](TaskInfo&& t) { ids.push_back(t.id); }).ok());
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  testing::TempDir tmp_;  // before root_, which names it
  std::string root_;
  RocksStoreOptions options_;
  testing::FakeClock clock_;
};

TEST_F(RocksStoreTest, ReopenKeepsEverythingAndBumpsTheEpoch) {
  {
    auto s = Open();
    EXPECT_EQ(s->Epoch(), 1u);
    Batch b;
    b.records = {Record(1, TaskState::kQueued), Record(2, TaskState::kSucceeded),
                 Record(3, TaskState::kDead), Record(4, TaskState::kQueued)};
    b.records[3].run_after_us = clock_.WallNow() + kSeconds;
    b.idem = {{"k", 1, clock_.WallNow() + kSeconds}};
    ASSERT_TRUE(s->Commit(b).ok());
    Batch gone;
    gone.records = {Record(9, TaskState::kSucceeded)};
    ASSERT_TRUE(s->Commit(gone).ok());
  }
  auto s = Open();
  EXPECT_EQ(s->Epoch(), 2u);
  EXPECT_EQ(s->MaxTaskId(), 9u);
  EXPECT_THAT(Active(*s), ElementsAre(1, 4));
  EXPECT_EQ((*s->Get(4))->run_after_us, clock_.WallNow() + kSeconds);
  EXPECT_EQ((*s->Get(2))->state, TaskState::kSucceeded);
  EXPECT_EQ((*s->Get(3))->payload, "p3");
  size_t keys = 0;
  ASSERT_TRUE(s->ForEachIdem(clock_.WallNow(), [&](IdemEntry&& e) {
                 EXPECT_EQ(e.key, "k");
                 EXPECT_EQ(e.id, 1u);
                 ++keys;
               }).ok());
  EXPECT_EQ(keys, 1u);
  // The waiting retry is found again after the reopen, and moves cleanly.
  TaskInfo t = *(*s->Get(4));
  t.state = TaskState::kSucceeded;
  Batch done;
  done.records = {t};
  ASSERT_TRUE(s->Commit(done).ok());
  EXPECT_THAT(Active(*s), ElementsAre(1));
  EXPECT_EQ(*s->CountKeys("sched"), 0u);
}

TEST_F(RocksStoreTest, EveryDurabilityModeCommitsAndReopens) {
  for (Durability d : {Durability::kFsync, Durability::kInterval, Durability::kNone}) {
    options_.durability = d;
    options_.sync_interval_ms = 5;
    {
      auto s = Open();
      Batch b;
      b.records = {Record(s->MaxTaskId() + 1, TaskState::kQueued)};
      ASSERT_TRUE(s->Commit(b).ok()) << DurabilityName(d);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the syncer run
    }
    auto s = Open();
    EXPECT_EQ(Active(*s).size(), static_cast<size_t>(s->MaxTaskId())) << DurabilityName(d);
  }
}

TEST_F(RocksStoreTest, ParsesDurabilityNames) {
  EXPECT_EQ(*ParseDurability("interval"), Durability::kInterval);
  auto bad = ParseDurability("sometimes");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("fsync, interval or none"));
}

TEST_F(RocksStoreTest, LayoutIsAsDocumented) {
  const int64_t run_after = 0x0011223344556677;
  {
    auto s = Open();
    TaskInfo ready = Record(0x0102, TaskState::kQueued);
    ready.priority = 3;
    TaskInfo waiting = Record(7, TaskState::kQueued);
    waiting.run_after_us = run_after;
    Batch b;
    b.records = {ready, waiting, Record(9, TaskState::kSucceeded), Record(10, TaskState::kDead)};
    b.idem = {{"key-1", 9, 0x0A0B}};
    b.jobs = {Job(0x0300, JobState::kRunning)};
    ASSERT_TRUE(s->Commit(b).ok());
  }
  RawDb raw(options_.dir);
  EXPECT_THAT(raw.families(), UnorderedElementsAre("default", "meta", "ready", "sched", "done",
                                                   "dead", "idem", "jobs"));
  using KV = std::pair<std::string, std::string>;
  EXPECT_THAT(raw.Contents("meta"),
              ElementsAre(KV{"epoch", Be64(1)}, KV{"max_task_id", Be64(0x0300)},
                          KV{"program", "yard"}, KV{"schema", std::string("\0\0\0\2", 4)}))
      << "job ids come from the task id counter";
  const KeyValues ready = raw.Contents("ready");
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].first, "\x03" + Be64(0x0102)) << "[priority u8][id u64 BE]";
  EXPECT_EQ(Decode(ready[0].second).payload, "p258");
  const KeyValues sched = raw.Contents("sched");
  ASSERT_EQ(sched.size(), 1u);
  EXPECT_EQ(sched[0].first, Be64(run_after) + Be64(7)) << "[run_after_us u64 BE][id u64 BE]";
  EXPECT_EQ(Decode(sched[0].second).run_after_us, run_after);
  const KeyValues done = raw.Contents("done");
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].first, Be64(9));
  EXPECT_EQ(Decode(done[0].second).payload, "") << "finished records drop the payload";
  const KeyValues dead = raw.Contents("dead");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].first, Be64(10));
  EXPECT_EQ(Decode(dead[0].second).payload, "p10") << "dead letters keep it";
  EXPECT_THAT(raw.Contents("idem"), ElementsAre(KV{"key-1", Be64(9) + Be64(0x0A0B)}));
  const KeyValues jobs = raw.Contents("jobs");
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].first, Be64(0x0300)) << "[id u64 BE]";
  EXPECT_EQ(DecodeJob(jobs[0].second).first_task_id, 0x0301u);
  EXPECT_TRUE(raw.Contents("default").empty());
}

TEST_F(RocksStoreTest, MovesWithinOneBatchLeaveNoKeysBehind) {
  auto s = Open();
  TaskInfo t = Record(1, TaskState::kQueued);
  Batch b;
  b.records.push_back(t);
  t.run_after_us = clock_.WallNow() + kSeconds;
  b.records.push_back(t);
  t.run_after_us += kSeconds;
  b.records.push_back(t);
  t.run_after_us = 0;
  b.records.push_back(t);
  t.run_after_us = clock_.WallNow() + 5 * kSeconds;
  b.records.push_back(t);
  t.state = TaskState::kSucceeded;
  t.finished_us = clock_.WallNow();
  b.records.push_back(t);
  ASSERT_TRUE(s->Commit(b).ok());
  EXPECT_EQ(*s->CountKeys("ready"), 0u);
  EXPECT_EQ(*s->CountKeys("sched"), 0u);
  EXPECT_EQ(*s->CountKeys("done"), 1u);
  // Across commits too, and after a reopen (the sched index is rebuilt from disk).
  Batch wait;
  wait.records = {Record(2, TaskState::kQueued)};
  wait.records[0].run_after_us = clock_.WallNow() + kSeconds;
  ASSERT_TRUE(s->Commit(wait).ok());
  s.reset();
  s = Open();
  wait.records[0].run_after_us += kSeconds;
  ASSERT_TRUE(s->Commit(wait).ok());
  EXPECT_EQ(*s->CountKeys("sched"), 1u);
  wait.records[0].state = TaskState::kDead;
  ASSERT_TRUE(s->Commit(wait).ok());
  EXPECT_EQ(*s->CountKeys("sched"), 0u);
  EXPECT_EQ(*s->CountKeys("dead"), 1u);
  EXPECT_FALSE(s->CountKeys("nope").ok());
}

TEST_F(RocksStoreTest, RefusesADirectoryWithOtherFilesAndTouchesNothing) {
  std::filesystem::create_directories(options_.dir);
  std::ofstream(options_.dir + "/notes.txt") << "keep me";
  auto s = RocksStore::Open(options_, clock_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr(options_.dir + " is not a Yard data directory"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(options_.dir), {}), 1);
  std::string kept;
  std::getline(std::ifstream(options_.dir + "/notes.txt"), kept);
  EXPECT_EQ(kept, "keep me");
}

TEST_F(RocksStoreTest, RefusesAFile) {
  std::ofstream(options_.dir) << "not a directory";
  auto s = RocksStore::Open(options_, clock_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("is not a directory"));
}

TEST_F(RocksStoreTest, RefusesAnotherProgramsRocksDb) {
  {
    RawDb theirs(options_.dir, {"default"});
    theirs.Put("default", "theirs", "data");
  }
  auto s = RocksStore::Open(options_, clock_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("belongs to another program"));
  RawDb after(options_.dir);
  EXPECT_THAT(after.families(), ElementsAre("default")) << "nothing created in it";
  EXPECT_EQ(after.Contents("default").size(), 1u);
}

TEST_F(RocksStoreTest, RefusesAnotherProgramsRocksDbEvenWithAMetaFamily) {
  {
    RawDb theirs(options_.dir, {"default", "meta"});
    theirs.Put("meta", "program", "theirs");
  }
  auto s = RocksStore::Open(options_, clock_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("belongs to another program ('theirs')"));

  // No program record, but data: not ours either.
  std::filesystem::remove_all(options_.dir);
  {
    RawDb theirs(options_.dir, {"default", "meta"});
    theirs.Put("meta", "version", "7");
  }
  s = RocksStore::Open(options_, clock_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("another program"));
  {
    RawDb after(options_.dir);
    EXPECT_THAT(after.families(), ElementsAre("default", "meta")) << "nothing created in it";
    EXPECT_EQ(after.Contents("meta").size(), 1u);
  }

  // A family Yard does not know.
  std::filesystem::remove_all(options_.dir);
  { RawDb theirs(options_.dir, {"default", "meta", "users"}); }
  s = RocksStore::Open(options_, clock_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("column family 'users'"));
}

TEST_F(RocksStoreTest, CompletesACreationThatStoppedBeforeItsMetadata) {
  // Families created, metadata never written (a crash inside the first Open).
  { RawDb partial(options_.dir, {"default", "meta", "ready"}); }
  auto s = Open();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->Epoch(), 1u);
  EXPECT_EQ(*s->CountKeys("idem"), 0u) << "missing families are created";
  Batch b;
  b.records = {Record(1, TaskState::kQueued)};
  ASSERT_TRUE(s->Commit(b).ok());
  s.reset();
  s = Open();
  EXPECT_EQ(s->Epoch(), 2u);
  EXPECT_THAT(Active(*s), ElementsAre(1));
}

TEST_F(RocksStoreTest, RefusesANewerSchema) {
  Open().reset();
  {
    RawDb raw(options_.dir);
    raw.Put("meta", "schema", std::string("\0\0\0\3", 4));  // as a newer Yard would write it
  }
  auto s = RocksStore::Open(options_, clock_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(),
              HasSubstr(options_.dir + " was written by a newer Yard (schema 3); this build "
                                       "reads schema 2"));
  RawDb after(options_.dir);
  EXPECT_EQ(after.Contents("meta")[0], std::make_pair(std::string("epoch"), Be64(1)))
      << "the epoch is not bumped";
}

TEST_F(RocksStoreTest, RefusesASchemaRecordOfNoVersion) {
  Open().reset();
  {
    RawDb raw(options_.dir);
    raw.Put("meta", "schema", std::string("\0\0\0\0", 4));
  }
  auto s = RocksStore::Open(options_, clock_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(s.status().message(), HasSubstr("damaged schema record"));
}

// Schema 1 (before jobs): the families and metadata an earlier Yard wrote, with one ready task
// (6) and one finished task (7); `jobs_family`: an upgrade that stopped after creating `jobs`.
void WriteSchema1Store(const std::string& dir, int64_t now, bool jobs_family) {
  std::vector<std::string> families = {"default", "meta", "ready", "sched", "done", "dead", "idem"};
  if (jobs_family) families.push_back("jobs");
  RawDb v1(dir, families);
  v1.Put("meta", "program", "yard");
  v1.Put("meta", "schema", std::string("\0\0\0\1", 4));
  v1.Put("meta", "max_task_id", Be64(7));
  v1.Put("meta", "epoch", Be64(3));
  TaskInfo ready;
  ready.id = 6;
  ready.type = "echo";
  ready.payload = "p6";
  v1.Put("ready", std::string(1, '\5') + Be64(6), protocol::EncodeBody(ready));
  TaskInfo done = ready;
  done.id = 7;
  done.payload.clear();
  done.state = TaskState::kSucceeded;
  done.result = "r7";
  done.finished_us = now;
  v1.Put("done", Be64(7), protocol::EncodeBody(done));
}

TEST_F(RocksStoreTest, UpgradesASchema1Store) {
  for (const bool jobs_family : {false, true}) {
    SCOPED_TRACE(jobs_family ? "upgrade cut short before" : "schema 1");
    std::filesystem::remove_all(options_.dir);
    WriteSchema1Store(options_.dir, clock_.WallNow(), jobs_family);
    {
      auto s = Open();
      ASSERT_NE(s, nullptr);
      EXPECT_EQ(s->Epoch(), 4u);
      EXPECT_EQ(s->MaxTaskId(), 7u);
      EXPECT_THAT(Active(*s), ElementsAre(6));
      EXPECT_EQ((*s->Get(6))->payload, "p6");
      EXPECT_EQ((*s->Get(7))->result, "r7");
      EXPECT_EQ(*s->CountKeys("jobs"), 0u);
      EXPECT_THAT(OpenJobs(*s), ElementsAre());
      Batch b;
      b.jobs = {Job(8, JobState::kRunning)};
      ASSERT_TRUE(s->Commit(b).ok());
      EXPECT_EQ(s->MaxTaskId(), 8u);
    }
    {
      RawDb raw(options_.dir);
      EXPECT_THAT(raw.families(), UnorderedElementsAre("default", "meta", "ready", "sched", "done",
                                                       "dead", "idem", "jobs"));
      const KeyValues meta = raw.Contents("meta");
      const auto schema = std::find_if(meta.begin(), meta.end(),
                                       [](const auto& kv) { return kv.first == "schema"; });
      ASSERT_NE(schema, meta.end());
      EXPECT_EQ(schema->second, std::string("\0\0\0\2", 4)) << "the upgrade is recorded";
    }
    auto s = Open();
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->Epoch(), 5u);
    EXPECT_THAT(OpenJobs(*s), ElementsAre(8));
    EXPECT_EQ(s->MaxTaskId(), 8u);
  }
}

TEST_F(RocksStoreTest, ReadsTheWideSchemaRecordOfEarlierStores) {
  Open().reset();
  {
    RawDb raw(options_.dir);
    raw.Put("meta", "schema", Be64(1));
  }
  auto s = Open();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->Epoch(), 2u);
}

TEST_F(RocksStoreTest, ReopenKeepsJobsAndTheirIds) {
  {
    auto s = Open();
    Batch b;
    b.records = {Record(1, TaskState::kQueued)};
    b.jobs = {Job(30, JobState::kRunning), Job(20, JobState::kSucceeded),
              Job(25, JobState::kReducing)};
    b.jobs[2].reduce_task_id = 29;
    ASSERT_TRUE(s->Commit(b).ok());
  }
  auto s = Open();
  EXPECT_EQ(s->MaxTaskId(), 30u) << "a new task must not take a job's id";
  EXPECT_THAT(OpenJobs(*s), ElementsAre(25, 30));
  EXPECT_EQ((*s->GetJob(20))->result, "r20");
  EXPECT_EQ((*s->GetJob(25))->reduce_task_id, 29u);
  EXPECT_EQ((*s->GetJob(30))->state, JobState::kRunning);
  EXPECT_THAT(Active(*s), ElementsAre(1));
}

TEST_F(RocksStoreTest, ACorruptJobRecordIsDataLoss) {
  {
    auto s = Open();
    Batch b;
    b.jobs = {Job(1, JobState::kRunning)};
    ASSERT_TRUE(s->Commit(b).ok());
  }
  {
    RawDb raw(options_.dir);
    raw.Put("jobs", Be64(2), "\x93\x01");  // an array of 3 with one element
  }
  auto s = Open();
  auto got = s->GetJob(2);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(got.status().message(), HasSubstr("corrupt record in jobs"));
  EXPECT_TRUE((*s->GetJob(1)).has_value());
  const Status st = s->ForEachOpenJob([](JobInfo&&) { return Status::Ok(); });
  EXPECT_EQ(st.code(), StatusCode::kDataLoss) << "recovery does not skip a record it cannot read";
}

TEST_F(RocksStoreTest, ListsFinishedTasksAcrossTheirFamiliesAfterAReopen) {
  {
    auto s = Open();
    Batch b;
    for (uint64_t id = 1; id <= 40; ++id) {
      b.records.push_back(Record(id, id % 3 == 0   ? TaskState::kDead
                                     : id % 3 == 1 ? TaskState::kSucceeded
                                                   : TaskState::kQueued));
    }
    ASSERT_TRUE(s->Commit(b).ok());
  }
  auto s = Open();
  std::vector<uint64_t> ids;
  std::vector<TaskState> states;
  ASSERT_TRUE(s->ForEachFinished(30, [&](TaskInfo&& t) {
                 ids.push_back(t.id);
                 states.push_back(t.state);
                 return true;
               }).ok());
  EXPECT_THAT(ids, ElementsAre(31, 33, 34, 36, 37, 39, 40));
  EXPECT_THAT(states, ElementsAre(TaskState::kSucceeded, TaskState::kDead, TaskState::kSucceeded,
                                  TaskState::kDead, TaskState::kSucceeded, TaskState::kDead,
                                  TaskState::kSucceeded));
}

TEST_F(RocksStoreTest, ASecondOpenOfTheSameDirectoryIsRefused) {
  auto first = Open();
  auto second = RocksStore::Open(options_, clock_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr(options_.dir + " is in use by another process"));
  EXPECT_EQ(first->Epoch(), 1u);
}

TEST_F(RocksStoreTest, ADirectoryAnotherProcessHoldsIsRefused) {
  Open().reset();
  // A child process takes the lock as another master's RocksDB would (fcntl on LOCK).
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const std::string lock_path = options_.dir + "/LOCK";
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // only async-signal-safe calls from here
    const int fd = open(lock_path.c_str(), O_RDWR);
    struct flock fl = {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    const char ok = fd >= 0 && fcntl(fd, F_SETLK, &fl) == 0 ? '1' : '0';
    (void)!write(ready[1], &ok, 1);
    for (;;) pause();
  }
  close(ready[1]);
  char ok = 0;
  ASSERT_EQ(read(ready[0], &ok, 1), 1);
  close(ready[0]);
  auto s = RocksStore::Open(options_, clock_);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ASSERT_EQ(ok, '1');
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(s.status().message(), HasSubstr(options_.dir + " is in use by another process"));
  EXPECT_NE(Open(), nullptr) << "free again once the other process is gone";
}

TEST_F(RocksStoreTest, ReportsAPathThatCannotBeCreated) {
  std::ofstream(root_ + "/file") << "";
  options_.dir = root_ + "/file/data";
  auto s = RocksStore::Open(options_, clock_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(s.status().message(), HasSubstr(root_ + "/file/data"));
}

TEST_F(RocksStoreTest, ReportsADirectoryItMayNotWrite) {
  if (geteuid() == 0) GTEST_SKIP() << "root may write anywhere";
  const std::string locked = root_ + "/locked";
  std::filesystem::create_directories(locked);
  ASSERT_EQ(chmod(locked.c_str(), 0555), 0);
  options_.dir = locked + "/data";  // cannot be created
  auto s = RocksStore::Open(options_, clock_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(s.status().message(), HasSubstr(options_.dir));
  options_.dir = locked;  // exists, empty, but RocksDB cannot create its files
  s = RocksStore::Open(options_, clock_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kPermissionDenied) << s.status().ToString();
  EXPECT_THAT(s.status().message(), HasSubstr(locked));
  ASSERT_EQ(chmod(locked.c_str(), 0755), 0);
}

TEST_F(RocksStoreTest, CompactionRemovesExpiredResultsAndKeys) {
  auto s = Open();
  Batch b;
  for (uint64_t id = 1; id <= 100; ++id) b.records.push_back(Record(id, TaskState::kSucceeded));
  b.records.push_back(Record(101, TaskState::kDead));
  b.idem = {{"old", 1, clock_.WallNow() + kSeconds}};
  ASSERT_TRUE(s->Commit(b).ok());
  ASSERT_TRUE(s->CompactNow().ok());
  EXPECT_EQ(*s->CountKeys("done"), 100u) << "nothing is old yet";
  EXPECT_EQ(*s->CountKeys("idem"), 1u);
  clock_.Advance(options_.result_ttl + kSeconds);
  EXPECT_FALSE((*s->Get(1)).has_value()) << "hidden from Get before compaction";
  EXPECT_EQ(*s->CountKeys("done"), 100u) << "but only compaction removes them";
  ASSERT_TRUE(s->CompactNow().ok());
  EXPECT_EQ(*s->CountKeys("done"), 0u);
  EXPECT_EQ(*s->CountKeys("idem"), 0u);
  EXPECT_EQ(*s->CountKeys("dead"), 1u);
  EXPECT_EQ(s->MaxTaskId(), 101u);
  s.reset();
  s = Open();
  EXPECT_EQ(s->MaxTaskId(), 101u) << "ids are never reused";
}

TEST_F(RocksStoreTest, CompactionRemovesExpiredJobsButNotOpenOnes) {
  auto s = Open();
  Batch b;
  for (uint64_t id = 1; id <= 50; ++id) b.jobs.push_back(Job(id, JobState::kSucceeded));
  b.jobs.push_back(Job(51, JobState::kRunning));
  b.jobs.push_back(Job(52, JobState::kReducing));
  ASSERT_TRUE(s->Commit(b).ok());
  ASSERT_TRUE(s->CompactNow().ok());
  EXPECT_EQ(*s->CountKeys("jobs"), 52u) << "nothing is old yet";
  clock_.Advance(options_.result_ttl + kSeconds);
  EXPECT_FALSE((*s->GetJob(1)).has_value()) << "hidden from GetJob before compaction";
  EXPECT_EQ(*s->CountKeys("jobs"), 52u) << "but only compaction removes them";
  ASSERT_TRUE(s->CompactNow().ok());
  EXPECT_EQ(*s->CountKeys("jobs"), 2u);
  EXPECT_THAT(OpenJobs(*s), ElementsAre(51, 52));
  s.reset();
  s = Open();
  EXPECT_EQ(s->MaxTaskId(), 52u) << "ids are never reused";
}

// A file system whose writable files fail while `fail` is set, as a full disk (ENOSPC: RocksDB's
// POSIX file system reports NoSpace, marked retryable) or a failing device (EIO) would.
class FaultyDisk : public rocksdb::FileSystemWrapper {
 public:
  enum Fault { kNone, kNoSpace, kIoError };

  explicit FaultyDisk(std::shared_ptr<rocksdb::FileSystem> base) : FileSystemWrapper(base) {}
  const char* Name() const override { return "FaultyDisk"; }

  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> f, const std::atomic<Fault>& fail)
        : FSWritableFileOwnerWrapper(std::move(f)), fail_(fail) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override {
      if (fail_ != kNone) return Error();
      return FSWritableFileOwnerWrapper::Append(d, o, dbg);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o,
                             const rocksdb::DataVerificationInfo& v,
                             rocksdb::IODebugContext* dbg) override {
      if (fail_ != kNone) return Error();
      return FSWritableFileOwnerWrapper::Append(d, o, v, dbg);
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
      if (fail_ != kNone) return Error();
      return FSWritableFileOwnerWrapper::Sync(o, dbg);
    }

   private:
    rocksdb::IOStatus Error() const {
      if (fail_ == kIoError) return rocksdb::IOStatus::IOError("test: Input/output error");
      rocksdb::IOStatus s = rocksdb::IOStatus::NoSpace("test: No space left on device");
      s.SetRetryable(true);
      return s;
    }
    const std::atomic<Fault>& fail_;
  };

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& fo,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    std::unique_ptr<rocksdb::FSWritableFile> file;
    auto s = target()->NewWritableFile(f, fo, &file, dbg);
    if (s.ok()) r->reset(new File(std::move(file), fail));
    return s;
  }

  std::atomic<Fault> fail{kNone};
};

// A synced store on a FaultyDisk, with task 1 committed before anything fails.
class RocksStoreFaultTest : public RocksStoreTest {
 protected:
  void SetUp() override {
    options_.file_system = fs;
    options_.durability = Durability::kFsync;
    s = Open();
    ASSERT_NE(s, nullptr);
    Batch first;
    first.records = {Record(1, TaskState::kQueued)};
    ASSERT_TRUE(s->Commit(first).ok());
  }

  std::shared_ptr<FaultyDisk> fs = std::make_shared<FaultyDisk>(rocksdb::FileSystem::Default());
  std::unique_ptr<RocksStore> s;
};

TEST_F(RocksStoreFaultTest, AFullDiskRefusesCommitsKeepsReadsAndRecovers) {
  fs->fail = FaultyDisk::kNoSpace;
  Batch second;
  second.records = {Record(2, TaskState::kQueued)};
  const Status failed = s->Commit(second);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.code(), StatusCode::kResourceExhausted) << failed.ToString();
  EXPECT_THAT(failed.message(), HasSubstr("disk full"));
  EXPECT_TRUE((*s->Get(1)).has_value()) << "reads go on";
  EXPECT_FALSE((*s->Get(2)).has_value()) << "nothing of a failed batch is visible";
  EXPECT_THAT(Active(*s), ElementsAre(1));
  const Status still = s->Commit(second);
  EXPECT_EQ(still.code(), StatusCode::kResourceExhausted) << still.ToString();

  // Space is back. What RocksDB 7.8 does: the NoSpace error stopped writes and handed
  // recovery to its SstFileManager, which checks the free space and resumes the database on
  // its own thread, retrying every 5 s; a manual Resume() answers Busy until then. So the
  // caller (the master, every loop turn) retries until a commit goes through: within about
  // 5 s, often at once. The deadline leaves room for a slow machine.
  fs->fail = FaultyDisk::kNone;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  Status retried = s->Commit(second);
  while (!retried.ok() && std::chrono::steady_clock::now() < deadline) {
    EXPECT_EQ(retried.code(), StatusCode::kResourceExhausted) << retried.ToString();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    retried = s->Commit(second);
  }
  ASSERT_TRUE(retried.ok()) << retried.ToString();
  EXPECT_THAT(Active(*s), ElementsAre(1, 2));
  Batch third;
  third.records = {Record(3, TaskState::kQueued)};
  ASSERT_TRUE(s->Commit(third).ok());
  s.reset();
  options_.file_system = nullptr;
  s = Open();
  EXPECT_THAT(Active(*s), ElementsAre(1, 2, 3));
}

TEST_F(RocksStoreFaultTest, AnIoErrorInTheLogStopsWritesUntilTheStoreIsReopened) {
  fs->fail = FaultyDisk::kIoError;
  Batch second;
  second.records = {Record(2, TaskState::kQueued)};
  Status failed = s->Commit(second);
  EXPECT_EQ(failed.code(), StatusCode::kUnavailable) << failed.ToString();
  EXPECT_THAT(failed.message(), HasSubstr("state store write failed"));
  EXPECT_TRUE((*s->Get(1)).has_value()) << "reads go on";

  // RocksDB 7.8 treats a non-retryable I/O error writing the WAL as fatal: Resume() fails for
  // good even once the device works again. Only a reopen brings writes back.
  fs->fail = FaultyDisk::kNone;
  failed = s->Commit(second);
  EXPECT_EQ(failed.code(), StatusCode::kUnavailable) << failed.ToString();
  EXPECT_THAT(failed.message(), HasSubstr("cannot resume"));
  EXPECT_THAT(Active(*s), ElementsAre(1));
  s.reset();
  s = Open();
  EXPECT_THAT(Active(*s), ElementsAre(1)) << "the failed batch never happened";
  ASSERT_TRUE(s->Commit(second).ok());
  EXPECT_THAT(Active(*s), ElementsAre(1, 2));
}

}  // namespace
}  // namespace yard::state
