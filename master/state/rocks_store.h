// RocksStore: the durable StateStore, on RocksDB. Layout, durability modes and what each
// survives are in docs/architecture.md and docs/operations.md. One writer (the master's loop
// thread) commits one WriteBatch per loop turn; RocksDB's own threads flush and compact, and
// with Durability::kInterval one more thread syncs the WAL.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "master/state/state_store.h"

namespace rocksdb {
class FileSystem;
}  // namespace rocksdb

namespace yard::state {

enum class Durability {
  kFsync,     // every commit syncs the WAL before returning
  kInterval,  // commits reach the WAL (OS page cache); a thread syncs it periodically
  kNone,      // commits reach the WAL, never synced by Yard (benchmarks only)
};
const char* DurabilityName(Durability d);
// kInvalidArgument naming the choices.
StatusOr<Durability> ParseDurability(std::string_view s);

struct RocksStoreOptions {
  std::string dir;  // created if missing
  Durability durability = Durability::kFsync;
  uint32_t sync_interval_ms = 100;  // kInterval
  Micros result_ttl = 24LL * 3600 * kSeconds;
  // Tests only: a file system to inject faults through. Null: the default one.
  std::shared_ptr<rocksdb::FileSystem> file_system;
};

class RocksStore final : public StateStore {
 public:
  // Opens or creates the store (`dir` and its parents are created if missing) and bumps its
  // epoch, synced. A store of an earlier schema is upgraded (schema 1: the `jobs` family is
  // added). Refuses, storing nothing in it, a directory that holds other files, a RocksDB
  // database of another program or of a newer schema (kFailedPrecondition), one another
  // process holds open (kUnavailable) and one it may not use (kPermissionDenied). `clock`
  // must outlive the store; it times the result TTL and is read from RocksDB's compaction
  // threads too (Clock::WallNow is thread-safe).
  static StatusOr<std::unique_ptr<RocksStore>> Open(const RocksStoreOptions& options,
                                                    const Clock& clock);
  ~RocksStore() override;

  using StateStore::Commit;
  Status Commit(Batch& batch) override;
  StatusOr<std::optional<protocol::TaskInfo>> Get(uint64_t id) const override;
  Status ForEachActive(const std::function<void(protocol::TaskInfo&&)>& fn) const override;
  Status ForEachDead(uint64_t after_id,
                     const std::function<bool(protocol::TaskInfo&&)>& fn) const override;
  Status ForEachFinished(uint64_t after_id,
                         const std::function<bool(protocol::TaskInfo&&)>& fn) const override;
  Status ForEachIdem(int64_t now_us, const std::function<void(IdemEntry&&)>& fn) const override;
  StatusOr<std::optional<protocol::JobInfo>> GetJob(uint64_t id) const override;
  Status ForEachOpenJob(const std::function<Status(protocol::JobInfo&&)>& fn) const override;
  uint64_t MaxTaskId() const override;
  uint64_t Epoch() const override;

  // Compacts the finished-task, job and idempotency-key families now, dropping expired entries.
  Status CompactNow();
  // Keys stored in one family ("meta", "ready", "sched", "done", "dead", "idem", "jobs"), by a
  // full scan: for tests and diagnostics.
  StatusOr<size_t> CountKeys(std::string_view family) const;

 private:
  struct Impl;
  explicit RocksStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace yard::state
