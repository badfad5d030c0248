// RocksStore beyond the shared contract: what survives a reopen, which directories it
// refuses, expiry by compaction, and what a full disk does to a commit.
#include "master/state/rocks_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/file_system.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/fakes/fake_clock.h"

namespace yard::state {
namespace {

using protocol::TaskInfo;
using protocol::TaskState;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class RocksStoreTest : public ::testing::Test {
 protected:
  RocksStoreTest() {
    std::string tmpl = ::testing::TempDir() + "yard-rocks-XXXXXX";
    root_ = mkdtemp(tmpl.data());
    options_.dir = root_ + "/data";
    options_.durability = Durability::kNone;
    options_.result_ttl = 3600 * kSeconds;
  }
  ~RocksStoreTest() override {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
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
  static std::vector<uint64_t> Active(const StateStore& s) {
    std::vector<uint64_t> ids;
    EXPECT_TRUE(s.ForEachActive([&](TaskInfo&& t) { ids.push_back(t.id); }).ok());
    std::sort(ids.begin(), ids.end());
    return ids;
  }

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

TEST_F(RocksStoreTest, RefusesADirectoryWithOtherFilesAndTouchesNothing) {
  std::filesystem::create_directories(options_.dir);
  std::ofstream(options_.dir + "/notes.txt") << "keep me";
  auto s = RocksStore::Open(options_, clock_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("not a Yard data directory"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(options_.dir), {}), 1);
}

TEST_F(RocksStoreTest, RefusesAnotherProgramsRocksDb) {
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, options_.dir, &db).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "theirs", "data").ok());
    delete db;
  }
  auto s = RocksStore::Open(options_, clock_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("another program"));
}

TEST_F(RocksStoreTest, RefusesANewerSchema) {
  Open().reset();
  {
    // Rewrite the schema record as a newer Yard would.
    rocksdb::DBOptions o;
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(o, options_.dir, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, options_.dir, descs, &handles, &db).ok());
    const size_t meta = std::find(names.begin(), names.end(), "meta") - names.begin();
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), handles[meta], "schema",
                        std::string("\0\0\0\0\0\0\0\2", 8))
                    .ok());
    for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    delete db;
  }
  auto s = RocksStore::Open(options_, clock_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("newer Yard (schema 2)"));
}

TEST_F(RocksStoreTest, ASecondOpenOfTheSameDirectoryIsRefused) {
  auto first = Open();
  auto second = RocksStore::Open(options_, clock_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("in use by another process"));
}

TEST_F(RocksStoreTest, ReportsAPathThatCannotBeCreated) {
  std::ofstream(root_ + "/file") << "";
  options_.dir = root_ + "/file/data";
  auto s = RocksStore::Open(options_, clock_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(s.status().message(), HasSubstr(root_ + "/file/data"));
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
  clock_.Advance(options_.result_ttl + kSeconds);
  ASSERT_TRUE(s->CompactNow().ok());
  EXPECT_EQ(*s->CountKeys("done"), 0u);
  EXPECT_EQ(*s->CountKeys("idem"), 0u);
  EXPECT_EQ(*s->CountKeys("dead"), 1u);
  EXPECT_EQ(s->MaxTaskId(), 101u);
}

// A file system whose writes fail with "no space" while `full` is set, as a full disk would.
class FullDisk : public rocksdb::FileSystemWrapper {
 public:
  explicit FullDisk(std::shared_ptr<rocksdb::FileSystem> base) : FileSystemWrapper(base) {}
  const char* Name() const override { return "FullDisk"; }

  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> f, const std::atomic<bool>& full)
        : FSWritableFileOwnerWrapper(std::move(f)), full_(full) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override {
      if (full_) return rocksdb::IOStatus::NoSpace("test: disk full");
      return FSWritableFileOwnerWrapper::Append(d, o, dbg);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o,
                             const rocksdb::DataVerificationInfo& v,
                             rocksdb::IODebugContext* dbg) override {
      if (full_) return rocksdb::IOStatus::NoSpace("test: disk full");
      return FSWritableFileOwnerWrapper::Append(d, o, v, dbg);
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
      if (full_) return rocksdb::IOStatus::NoSpace("test: disk full");
      return FSWritableFileOwnerWrapper::Sync(o, dbg);
    }

   private:
    const std::atomic<bool>& full_;
  };

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& fo,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    std::unique_ptr<rocksdb::FSWritableFile> file;
    auto s = target()->NewWritableFile(f, fo, &file, dbg);
    if (s.ok()) r->reset(new File(std::move(file), full));
    return s;
  }

  std::atomic<bool> full{false};
};

TEST_F(RocksStoreTest, AFullDiskRefusesCommitsKeepsReadsAndRecovers) {
  auto fs = std::make_shared<FullDisk>(rocksdb::FileSystem::Default());
  options_.file_system = fs;
  options_.durability = Durability::kFsync;
  auto s = Open();
  Batch first;
  first.records = {Record(1, TaskState::kQueued)};
  ASSERT_TRUE(s->Commit(first).ok());

  fs->full = true;
  Batch second;
  second.records = {Record(2, TaskState::kQueued)};
  const Status failed = s->Commit(second);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.code(), StatusCode::kResourceExhausted) << failed.ToString();
  EXPECT_THAT(failed.message(), HasSubstr("disk full"));
  EXPECT_TRUE((*s->Get(1)).has_value()) << "reads go on";
  EXPECT_FALSE((*s->Get(2)).has_value()) << "nothing of a failed batch is visible";
  EXPECT_FALSE(s->Commit(second).ok()) << "still full";

  // Space is back: RocksDB resumes in the background; the caller retries (the master does,
  // every loop turn) until a commit goes through.
  fs->full = false;
  Status retried = s->Commit(second);
  for (int i = 0; i < 500 && !retried.ok(); ++i) {
    EXPECT_EQ(retried.code(), StatusCode::kResourceExhausted) << retried.ToString();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    retried = s->Commit(second);
  }
  ASSERT_TRUE(retried.ok()) << retried.ToString();
  s.reset();
  options_.file_system = nullptr;
  s = Open();
  EXPECT_THAT(Active(*s), ElementsAre(1, 2));
}

}  // namespace
}  // namespace yard::state
