#include "master/state/rocks_store.h"

#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/utilities/table_properties_collectors.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "common/protocol/codec.h"

namespace yard::state {

using protocol::JobInfo;
using protocol::TaskInfo;
using protocol::TaskState;

namespace {

// 1: tasks only. 2: adds the `jobs` family; a schema-1 store is upgraded on open.
constexpr uint32_t kSchema = 2;
constexpr const char* kProgram = "yard";

// Column families, in the order they are opened (RocksDB requires "default" too).
enum Family : size_t { kDefault, kMeta, kReady, kSched, kDone, kDead, kIdem, kJobs, kFamilies };
constexpr std::array<const char*, kFamilies> kFamilyNames = {"default", "meta", "ready", "sched",
                                                             "done",    "dead", "idem",  "jobs"};

// Big-endian integers of `bytes` bytes (keys sort numerically).
void PutBE(std::string* out, uint64_t v, int bytes = 8) {
  for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>(v >> shift));
  }
}
// Reads the first `bytes` bytes of `s` (which has at least that many).
uint64_t GetBE(std::string_view s, size_t bytes = 8) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(s[i]);
  return v;
}
std::string IdKey(uint64_t id) {
  std::string k;
  PutBE(&k, id);
  return k;
}
std::string ReadyKey(uint8_t priority, uint64_t id) {
  std::string k(1, static_cast<char>(priority));
  PutBE(&k, id);
  return k;
}
std::string SchedKey(int64_t run_after_us, uint64_t id) {
  std::string k;
  PutBE(&k, static_cast<uint64_t>(run_after_us));
  PutBE(&k, id);
  return k;
}
std::string Be64(uint64_t v) { return IdKey(v); }
std::string Be32(uint32_t v) {
  std::string out;
  PutBE(&out, v, 4);
  return out;
}

std::string_view View(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsNoSpace()) return ResourceExhausted("disk full: " + what + ": " + s.ToString());
  return Unavailable(what + ": " + s.ToString());
}

// RocksDB reports errno as text only (env/io_posix.cc: IOError(context, file, errno)).
bool IsPermissionDenied(const rocksdb::Status& s) {
  return s.IsIOError() && s.ToString().find("Permission denied") != std::string::npos;
}
// The LOCK file is held: by another process ("While lock file: ...: Resource temporarily
// unavailable") or by another open in this one ("lock hold by current process").
bool IsLockHeld(const rocksdb::Status& s) {
  const std::string m = s.ToString();
  return s.IsIOError() && (m.find("While lock file") != std::string::npos ||
                           m.find("lock hold by current process") != std::string::npos);
}

// Errors of opening `dir`, for people: whose fault it is and what the directory is.
Status OpenError(const rocksdb::Status& s, const std::string& dir) {
  if (IsPermissionDenied(s)) {
    return {StatusCode::kPermissionDenied,
            "cannot use data directory " + dir + ": permission denied (" + s.ToString() + ")"};
  }
  if (IsLockHeld(s)) {
    return Unavailable(dir + " is in use by another process (another master?): " + s.ToString());
  }
  return FromRocks(s, "cannot open data directory " + dir);
}

// Errors of the file system calls Open makes itself, before RocksDB's.
Status DirError(const std::error_code& ec, const std::string& what) {
  if (ec == std::errc::permission_denied || ec == std::errc::operation_not_permitted) {
    return {StatusCode::kPermissionDenied, what + ": permission denied"};
  }
  return Unavailable(what + ": " + ec.message());
}

// The schema record is a u32 BE. Stores written before it was narrowed hold a u64 BE: read
// both. nullopt: neither.
std::optional<uint64_t> ParseSchema(std::string_view v) {
  if (v.size() != 4 && v.size() != 8) return std::nullopt;
  return GetBE(v, v.size());
}

// Drops finished records (TaskInfo in `done`, JobInfo in `jobs`) past the result TTL; keeps
// every other record. Runs on RocksDB's compaction threads.
template <typename Record>
class FinishedFilter final : public rocksdb::CompactionFilter {
 public:
  // `name` is a string literal.
  FinishedFilter(const Clock& clock, Micros ttl, const char* name)
      : clock_(clock), ttl_(ttl), name_(name) {}
  bool Filter(int, const rocksdb::Slice&, const rocksdb::Slice& value, std::string*,
              bool*) const override {
    Record r;
    if (!protocol::DecodeBody(View(value), &r).ok()) return false;  // keep what we cannot read
    return PastResultTtl(r, ttl_, clock_.WallNow());
  }
  const char* Name() const override { return name_; }

 private:
  const Clock& clock_;
  Micros ttl_;
  const char* name_;
};

// Drops idempotency keys at or past their expiry (ForEachIdem skips those too).
class IdemFilter final : public rocksdb::CompactionFilter {
 public:
  explicit IdemFilter(const Clock& clock) : clock_(clock) {}
  bool Filter(int, const rocksdb::Slice&, const rocksdb::Slice& value, std::string*,
              bool*) const override {
    if (value.size() != 16) return false;
    return static_cast<int64_t>(GetBE(View(value).substr(8))) <= clock_.WallNow();
  }
  const char* Name() const override { return "yard.IdemFilter"; }

 private:
  const Clock& clock_;
};

}  // namespace

const char* DurabilityName(Durability d) {
  switch (d) {
    case Durability::kFsync:
      return "fsync";
    case Durability::kInterval:
      return "interval";
    case Durability::kNone:
      return "none";
  }
  return "?";
}

StatusOr<Durability> ParseDurability(std::string_view s) {
  for (Durability d : {Durability::kFsync, Durability::kInterval, Durability::kNone}) {
    if (s == DurabilityName(d)) return d;
  }
  return InvalidArgument("unknown durability '" + std::string(s) +
                         "' (choose fsync, interval or none)");
}

struct RocksStore::Impl {
  Impl(const RocksStoreOptions& o, const Clock& c)
      : options(o),
        clock(c),
        done_filter(c, o.result_ttl, "yard.DoneFilter"),
        jobs_filter(c, o.result_ttl, "yard.JobsFilter"),
        idem_filter(c) {}

  RocksStoreOptions options;
  const Clock& clock;
  FinishedFilter<TaskInfo> done_filter;  // the filters must outlive db
  FinishedFilter<JobInfo> jobs_filter;
  IdemFilter idem_filter;
  std::unique_ptr<rocksdb::Env> env;  // with options.file_system; must outlive db
  std::unique_ptr<rocksdb::DB> db;
  std::array<rocksdb::ColumnFamilyHandle*, kFamilies> cf{};  // null until opened or created
  std::unordered_map<uint64_t, int64_t> sched_at;            // tasks in `sched`: id -> run_after_us
  uint64_t max_id = 0;
  uint64_t epoch = 0;
  Status write_error;  // of the last write; not ok: Resume() before the next

  std::thread syncer;  // Durability::kInterval
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool sync_failing = false;  // syncer thread only: log a failing sync once, not every period

  rocksdb::DBOptions DbOptions() {
    rocksdb::DBOptions o;
    o.max_background_jobs = 2;          // two cores: one flush and one compaction at a time
    o.bytes_per_sync = 1u << 20;        // SST writes trickle to disk: no fsync storm at the end
    o.wal_bytes_per_sync = 0;           // WAL syncing is the durability mode's business
    o.max_total_wal_size = 256u << 20;  // flush the families that pin old WALs: bounds the WAL
                                        // replayed on a restart
    o.keep_log_file_num = 4;            // RocksDB's own LOG files
    o.max_log_file_size = 16u << 20;
    if (options.file_system) {
      env = rocksdb::NewCompositeEnv(options.file_system);
      o.env = env.get();
    }
    return o;
  }

  rocksdb::ColumnFamilyOptions FamilyOptions(Family f) const {
    rocksdb::ColumnFamilyOptions o;
    // Level compaction (RocksDB's default, stated on purpose): low space amplification and
    // few files to look in for a Get or to merge in a scan.
    o.compaction_style = rocksdb::kCompactionStyleLevel;
    switch (f) {
      case kReady:
      case kSched:
        // Queue-like: nearly every put is deleted again soon. A large memtable lets most puts
        // meet their delete before a flush (the put is dropped then; the tombstone stays), and
        // files whose recent entries are mostly tombstones are compacted early, so recovery
        // scans do not wade through them.
        o.write_buffer_size = f == kReady ? 64u << 20 : 16u << 20;  // sched: retries only
        o.table_properties_collector_factories.push_back(
            rocksdb::NewCompactOnDeletionCollectorFactory(/*sliding_window_size=*/128,
                                                          /*deletion_trigger=*/64));
        break;
      case kDone:
      case kJobs: {
        // Finished records arrive at the task rate and expire after the result TTL: the
        // compaction filter drops them, and periodic compaction makes it visit files that
        // nothing else would compact on an idle store (so a record lingers at most about one
        // period past its TTL; at least an hour, so a short TTL does not rewrite files nonstop).
        // Jobs are far fewer than tasks, and open ones are never dropped.
        if (f == kDone) {
          o.write_buffer_size = 64u << 20;
          o.compaction_filter = &done_filter;
        } else {
          o.write_buffer_size = 8u << 20;
          o.compaction_filter = &jobs_filter;
        }
        const auto ttl_s =
            static_cast<uint64_t>(std::max<Micros>(options.result_ttl / kSeconds, 1));
        o.periodic_compaction_seconds = std::clamp<uint64_t>(ttl_s, 3600, 86400);
        break;
      }
      case kIdem:
        // Idempotency keys: small, expire like finished records.
        o.write_buffer_size = 16u << 20;
        o.compaction_filter = &idem_filter;
        o.periodic_compaction_seconds = 86400;
        break;
      default:
        // default (unused), meta, dead: little data.
        o.write_buffer_size = 8u << 20;
        break;
    }
    return o;
  }

  StatusOr<std::optional<std::string>> Read(Family f, const std::string& key) const {
    std::string v;
    const rocksdb::Status s = db->Get(rocksdb::ReadOptions(), cf[f], key, &v);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return FromRocks(s, "cannot read " + options.dir);
    return std::optional<std::string>(std::move(v));
  }
  // Record: TaskInfo or JobInfo.
  template <typename Record>
  static Status DecodeRecord(Family f, std::string_view value, Record* r) {
    if (Status st = protocol::DecodeBody(value, r); !st.ok()) {
      return DataLoss(std::string("corrupt record in ") + kFamilyNames[f] + ": " + st.message());
    }
    return Status::Ok();
  }
  template <typename Record>
  StatusOr<std::optional<Record>> ReadRecord(Family f, const std::string& key) const {
    ASSIGN_OR_RETURN(auto v, Read(f, key));
    if (!v) return std::optional<Record>();
    Record r;
    RETURN_IF_ERROR(DecodeRecord(f, *v, &r));
    return std::optional<Record>(std::move(r));
  }
  StatusOr<std::optional<TaskInfo>> ReadTask(Family f, const std::string& key) const {
    return ReadRecord<TaskInfo>(f, key);
  }
  // Calls fn(key, value) for each entry of `f` from `start`, until fn clears *more. Full
  // scans bypass the block cache (they would only evict what Get needs) and read ahead.
  Status Scan(Family f, const std::string& start,
              const std::function<Status(std::string_view, std::string_view, bool*)>& fn) const {
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    ro.readahead_size = 2u << 20;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf[f]));
    bool more = true;
    for (it->Seek(start); more && it->Valid(); it->Next()) {
      RETURN_IF_ERROR(fn(View(it->key()), View(it->value()), &more));
    }
    return FromRocks(it->status(), std::string("cannot scan ") + kFamilyNames[f]);
  }
  Status ScanTasks(Family f, const std::string& start,
                   const std::function<bool(TaskInfo&&)>& fn) const {
    return Scan(f, start, [&](std::string_view, std::string_view v, bool* more) {
      TaskInfo t;
      RETURN_IF_ERROR(DecodeRecord(f, v, &t));
      *more = fn(std::move(t));
      return Status::Ok();
    });
  }
  // Whether every opened family is empty.
  StatusOr<bool> AllEmpty() const {
    for (size_t f = 0; f < kFamilies; ++f) {
      if (cf[f] == nullptr) continue;
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf[f]));
      it->SeekToFirst();
      if (it->Valid()) return false;
      RETURN_IF_ERROR(FromRocks(it->status(), "cannot read " + options.dir));
    }
    return true;
  }
  void SyncLoop() {
    std::unique_lock lock(mu);
    while (!stopping) {
      cv.wait_for(lock, std::chrono::milliseconds(options.sync_interval_ms));
      if (stopping) break;
      lock.unlock();
      // Commits stay fast while a sync runs: RocksDB allows writes during SyncWAL.
      const rocksdb::Status s = db->SyncWAL();
      if (!s.ok() && !sync_failing) {
        spdlog::error("WAL sync of {} failed (retried every {} ms): {}", options.dir,
                      options.sync_interval_ms, s.ToString());
      } else if (s.ok() && sync_failing) {
        spdlog::info("WAL sync of {} works again", options.dir);
      }
      sync_failing = !s.ok();
      lock.lock();
    }
  }
};

RocksStore::RocksStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RocksStore::~RocksStore() {
  if (impl_->syncer.joinable()) {
    {
      std::lock_guard lock(impl_->mu);
      impl_->stopping = true;
    }
    impl_->cv.notify_all();
    impl_->syncer.join();
  }
  if (impl_->db) {
    // A clean stop loses nothing in interval mode either. (kNone never syncs.)
    if (impl_->options.durability == Durability::kInterval) (void)impl_->db->SyncWAL();
    for (auto* h : impl_->cf) {
      if (h) (void)impl_->db->DestroyColumnFamilyHandle(h);
    }
    (void)impl_->db->Close();
  }
}

StatusOr<std::unique_ptr<RocksStore>> RocksStore::Open(const RocksStoreOptions& options,
                                                       const Clock& clock) {
  namespace fs = std::filesystem;
  const std::string& dir = options.dir;
  if (dir.empty()) return InvalidArgument("the data directory is not set");
  if (options.sync_interval_ms == 0) return InvalidArgument("sync interval must be > 0");

  // What is at `dir`: nothing (create it), an empty directory, a RocksDB database (it has a
  // CURRENT file) or anything else, which is refused untouched.
  std::error_code ec;
  bool fresh = false;
  const fs::file_status st = fs::status(dir, ec);
  if (st.type() == fs::file_type::not_found) {
    fs::create_directories(dir, ec);
    if (ec) return DirError(ec, "cannot create data directory " + dir);
    fresh = true;
  } else if (ec) {
    return DirError(ec, "cannot use data directory " + dir);
  } else if (!fs::is_directory(st)) {
    return FailedPrecondition(dir + " is not a directory; refusing to use it");
  } else {
    const bool has_current = fs::exists(fs::path(dir) / "CURRENT", ec);
    if (ec) return DirError(ec, "cannot read data directory " + dir);
    if (!has_current) {
      const bool empty = fs::is_empty(dir, ec);
      if (ec) return DirError(ec, "cannot read data directory " + dir);
      if (!empty) {
        return FailedPrecondition(dir +
                                  " is not a Yard data directory (it holds other files); "
                                  "refusing to use it");
      }
      fresh = true;
    }
  }

  auto impl = std::make_unique<Impl>(options, clock);
  rocksdb::DBOptions db_opts = impl->DbOptions();
  // The families to open: all of Yard's in a fresh directory; in a database, exactly those it
  // has (RocksDB opens all or none), after refusing one without Yard's `meta` family or with
  // a family Yard does not know. Missing ones are created once the metadata says it is ours.
  std::vector<Family> families;
  if (fresh) {
    db_opts.create_if_missing = true;
    db_opts.create_missing_column_families = true;
    for (size_t f = 0; f < kFamilies; ++f) families.push_back(static_cast<Family>(f));
  } else {
    std::vector<std::string> existing;
    const rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_opts, dir, &existing);
    if (!s.ok()) return OpenError(s, dir);
    if (std::find(existing.begin(), existing.end(), kFamilyNames[kMeta]) == existing.end()) {
      return FailedPrecondition(dir +
                                " holds a RocksDB database that belongs to another program; "
                                "refusing to use it");
    }
    for (const auto& name : existing) {
      auto it = std::find(kFamilyNames.begin(), kFamilyNames.end(), name);
      if (it == kFamilyNames.end()) {
        return FailedPrecondition(dir + " holds column family '" + name +
                                  "', unknown to this build: a database of a newer Yard or of "
                                  "another program; refusing to use it");
      }
      families.push_back(static_cast<Family>(it - kFamilyNames.begin()));
    }
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (Family f : families) descs.emplace_back(kFamilyNames[f], impl->FamilyOptions(f));
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  if (const rocksdb::Status s = rocksdb::DB::Open(db_opts, dir, descs, &handles, &raw); !s.ok()) {
    return OpenError(s, dir);
  }
  impl->db.reset(raw);
  for (size_t i = 0; i < families.size(); ++i) impl->cf[families[i]] = handles[i];
  // From here on the store's destructor closes what is open.
  std::unique_ptr<RocksStore> store(new RocksStore(std::move(impl)));
  Impl& m = *store->impl_;

  rocksdb::WriteBatch meta;  // written synced, with the new epoch
  rocksdb::Status ws;        // WriteBatch only appends to memory: Write reports errors
  ASSIGN_OR_RETURN(auto program, m.Read(kMeta, "program"));
  if (!program) {
    // A fresh store, or one whose creation stopped before its metadata was written: then
    // everything is empty. Anything else without Yard's name is another program's.
    ASSIGN_OR_RETURN(const bool empty, m.AllEmpty());
    if (!empty) {
      return FailedPrecondition(dir +
                                " holds a RocksDB database that belongs to another program "
                                "(it has no Yard metadata); refusing to use it");
    }
    ws = meta.Put(m.cf[kMeta], "program", kProgram);
    ws = meta.Put(m.cf[kMeta], "schema", Be32(kSchema));
    ws = meta.Put(m.cf[kMeta], "max_task_id", Be64(0));
  } else if (*program != kProgram) {
    return FailedPrecondition(dir + " belongs to another program ('" + *program +
                              "'); refusing to use it");
  } else {
    ASSIGN_OR_RETURN(auto schema, m.Read(kMeta, "schema"));
    const std::optional<uint64_t> version = schema ? ParseSchema(*schema) : std::nullopt;
    if (!version) return DataLoss(dir + " has a damaged schema record");
    if (*version > kSchema) {
      return FailedPrecondition(dir + " was written by a newer Yard (schema " +
                                std::to_string(*version) + "); this build reads schema " +
                                std::to_string(kSchema));
    }
    if (*version == 1) {
      // Schema 2 only adds the `jobs` family, created below with the others a store lacks. An
      // upgrade cut short leaves schema 1 and is simply done again.
      spdlog::info("upgrading data directory {} from schema 1 to {}", dir, kSchema);
      ws = meta.Put(m.cf[kMeta], "schema", Be32(kSchema));
    } else if (*version != kSchema) {
      return DataLoss(dir + " has a damaged schema record");
    }
  }
  for (size_t f = 0; f < kFamilies; ++f) {
    if (m.cf[f] != nullptr) continue;
    const rocksdb::Status s = m.db->CreateColumnFamily(m.FamilyOptions(static_cast<Family>(f)),
                                                       kFamilyNames[f], &m.cf[f]);
    if (!s.ok()) return OpenError(s, dir);
  }
  ASSIGN_OR_RETURN(auto epoch, m.Read(kMeta, "epoch"));
  m.epoch = (epoch && epoch->size() == 8 ? GetBE(*epoch) : 0) + 1;
  ws = meta.Put(m.cf[kMeta], "epoch", Be64(m.epoch));
  (void)ws;
  rocksdb::WriteOptions synced;
  synced.sync = true;
  if (const rocksdb::Status s = m.db->Write(synced, &meta); !s.ok()) return OpenError(s, dir);

  ASSIGN_OR_RETURN(auto max_id, m.Read(kMeta, "max_task_id"));
  m.max_id = max_id && max_id->size() == 8 ? GetBE(*max_id) : 0;
  RETURN_IF_ERROR(m.Scan(kSched, "", [&](std::string_view k, std::string_view, bool*) {
    if (k.size() != 16) return DataLoss("bad key in sched");
    m.sched_at[GetBE(k.substr(8))] = static_cast<int64_t>(GetBE(k));
    return Status::Ok();
  }));

  if (options.durability == Durability::kInterval) {
    m.syncer = std::thread([&m] { m.SyncLoop(); });
  }
  return store;
}

Status RocksStore::Commit(Batch& batch) {
  Impl& m = *impl_;
  if (!m.write_error.ok()) {
    // A failed write leaves RocksDB refusing writes (a "background error") until it resumes.
    // What RocksDB 7.8 does then (rocks_store_test.cc's fault tests pin down the WAL cases):
    // - no space, writing the WAL (or, by db/error_handler.cc, flushing): its SstFileManager
    //   recovers on its own, checking the free space and retrying every 5 s; Resume() answers
    //   Busy meanwhile. So writes come back within about 5 s of space coming back, and the
    //   original error stands until then.
    // - an I/O error marked retryable: it resumes on its own as well (Busy meanwhile).
    // - any other I/O error writing the WAL is fatal: Resume() fails for good, and only
    //   reopening the store (restarting the master) brings writes back.
    // Reads go on throughout.
    const rocksdb::Status s = m.db->Resume();
    if (s.IsBusy()) return m.write_error;
    if (!s.ok()) {
      return FromRocks(s, "state store write failed: cannot resume after an earlier error");
    }
    m.write_error = Status::Ok();
  }
  rocksdb::WriteBatch wb;
  std::unordered_map<uint64_t, int64_t> sched_changes;  // 0: left `sched`
  auto sched_of = [&](uint64_t id) -> int64_t {
    if (auto c = sched_changes.find(id); c != sched_changes.end()) return c->second;
    auto it = m.sched_at.find(id);
    return it == m.sched_at.end() ? 0 : it->second;
  };
  uint64_t max_id = m.max_id;
  std::string value;
  rocksdb::Status s;
  for (uint64_t id : batch.dead_removed) s = wb.Delete(m.cf[kDead], IdKey(id));
  for (const TaskInfo& r : batch.records) {
    max_id = std::max(max_id, r.id);
    Family dest = kReady;
    if (r.state == TaskState::kDead) {
      dest = kDead;
    } else if (protocol::IsTerminal(r.state)) {
      dest = kDone;
    } else if (r.run_after_us > 0) {
      dest = kSched;
    }
    if (const int64_t old = sched_of(r.id);
        old != 0 && !(dest == kSched && old == r.run_after_us)) {
      s = wb.Delete(m.cf[kSched], SchedKey(old, r.id));
      sched_changes[r.id] = 0;
    }
    if (dest != kReady) s = wb.Delete(m.cf[kReady], ReadyKey(r.priority, r.id));
    if (dest == kDone && !r.payload.empty()) {
      TaskInfo slim = r;  // finished records keep their result, not their payload
      slim.payload.clear();
      value = protocol::EncodeBody(slim);
    } else {
      value = protocol::EncodeBody(r);
    }
    switch (dest) {
      case kReady:
        s = wb.Put(m.cf[kReady], ReadyKey(r.priority, r.id), value);
        break;
      case kSched:
        s = wb.Put(m.cf[kSched], SchedKey(r.run_after_us, r.id), value);
        sched_changes[r.id] = r.run_after_us;
        break;
      default:
        s = wb.Put(m.cf[dest], IdKey(r.id), value);
        break;
    }
  }
  for (const JobInfo& j : batch.jobs) {
    max_id = std::max(max_id, j.id);
    s = wb.Put(m.cf[kJobs], IdKey(j.id), protocol::EncodeBody(j));
  }
  for (const IdemEntry& e : batch.idem) {
    std::string v;
    PutBE(&v, e.id);
    PutBE(&v, static_cast<uint64_t>(e.expires_us));
    s = wb.Put(m.cf[kIdem], e.key, v);
  }
  if (max_id > m.max_id) s = wb.Put(m.cf[kMeta], "max_task_id", Be64(max_id));
  (void)s;  // WriteBatch appends to memory only; Write() reports errors

  rocksdb::WriteOptions wo;
  wo.sync = m.options.durability == Durability::kFsync;
  s = m.db->Write(wo, &wb);
  if (!s.ok()) {
    m.write_error = FromRocks(s, "state store write failed");
    return m.write_error;
  }
  m.max_id = max_id;
  for (const auto& [id, at] : sched_changes) {
    if (at == 0) {
      m.sched_at.erase(id);
    } else {
      m.sched_at[id] = at;
    }
  }
  return Status::Ok();
}

StatusOr<std::optional<TaskInfo>> RocksStore::Get(uint64_t id) const {
  const Impl& m = *impl_;
  for (Family f : {kDone, kDead}) {
    ASSIGN_OR_RETURN(auto t, m.ReadTask(f, IdKey(id)));
    if (t) {
      if (PastResultTtl(*t, m.options.result_ttl, m.clock.WallNow())) {
        return std::optional<TaskInfo>();
      }
      return t;
    }
  }
  if (auto it = m.sched_at.find(id); it != m.sched_at.end()) {
    return m.ReadTask(kSched, SchedKey(it->second, id));
  }
  for (uint8_t p = 0; p <= protocol::kLowestPriority; ++p) {
    ASSIGN_OR_RETURN(auto t, m.ReadTask(kReady, ReadyKey(p, id)));
    if (t) return t;
  }
  return std::optional<TaskInfo>();
}

Status RocksStore::ForEachActive(const std::function<void(TaskInfo&&)>& fn) const {
  for (Family f : {kReady, kSched}) {
    RETURN_IF_ERROR(impl_->ScanTasks(f, "", [&](TaskInfo&& t) {
      fn(std::move(t));
      return true;
    }));
  }
  return Status::Ok();
}

Status RocksStore::ForEachDead(uint64_t after_id, const std::function<bool(TaskInfo&&)>& fn) const {
  if (after_id == UINT64_MAX) return Status::Ok();
  return impl_->ScanTasks(kDead, IdKey(after_id + 1), fn);
}

Status RocksStore::ForEachFinished(uint64_t after_id,
                                   const std::function<bool(TaskInfo&&)>& fn) const {
  if (after_id == UINT64_MAX) return Status::Ok();
  const Impl& m = *impl_;
  const std::string start = IdKey(after_id + 1);
  // A listing reads a page at a time: it should not evict what Get needs from the block cache.
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> done(m.db->NewIterator(ro, m.cf[kDone]));
  std::unique_ptr<rocksdb::Iterator> dead(m.db->NewIterator(ro, m.cf[kDead]));
  done->Seek(start);
  dead->Seek(start);
  const int64_t now = m.clock.WallNow();
  // Both families are keyed by the id: merge by key. A task is in one of them at most; were it
  // in both, the `done` record would count, as for Get.
  while (done->Valid() || dead->Valid()) {
    const int order = !done->Valid() ? 1 : !dead->Valid() ? -1 : done->key().compare(dead->key());
    if (order == 0) dead->Next();
    const bool from_done = order <= 0;
    rocksdb::Iterator& it = from_done ? *done : *dead;
    TaskInfo t;
    RETURN_IF_ERROR(m.DecodeRecord(from_done ? kDone : kDead, View(it.value()), &t));
    it.Next();
    if (PastResultTtl(t, m.options.result_ttl, now)) continue;
    if (!fn(std::move(t))) break;
  }
  RETURN_IF_ERROR(FromRocks(done->status(), "cannot scan done"));
  return FromRocks(dead->status(), "cannot scan dead");
}

StatusOr<std::optional<JobInfo>> RocksStore::GetJob(uint64_t id) const {
  const Impl& m = *impl_;
  ASSIGN_OR_RETURN(auto j, m.ReadRecord<JobInfo>(kJobs, IdKey(id)));
  if (j && PastResultTtl(*j, m.options.result_ttl, m.clock.WallNow())) {
    return std::optional<JobInfo>();
  }
  return j;
}

Status RocksStore::ForEachOpenJob(const std::function<Status(JobInfo&&)>& fn) const {
  return impl_->Scan(kJobs, "", [&](std::string_view, std::string_view v, bool*) {
    JobInfo j;
    RETURN_IF_ERROR(impl_->DecodeRecord(kJobs, v, &j));
    return IsFinished(j.state) ? Status::Ok() : fn(std::move(j));
  });
}

Status RocksStore::ForEachIdem(int64_t now_us, const std::function<void(IdemEntry&&)>& fn) const {
  return impl_->Scan(kIdem, "", [&](std::string_view k, std::string_view v, bool*) {
    if (v.size() != 16) return DataLoss("bad idempotency entry for key '" + std::string(k) + "'");
    IdemEntry e{std::string(k), GetBE(v), static_cast<int64_t>(GetBE(v.substr(8)))};
    if (e.expires_us > now_us) fn(std::move(e));
    return Status::Ok();
  });
}

uint64_t RocksStore::MaxTaskId() const { return impl_->max_id; }
uint64_t RocksStore::Epoch() const { return impl_->epoch; }

Status RocksStore::CompactNow() {
  rocksdb::CompactRangeOptions o;
  o.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (Family f : {kDone, kJobs, kIdem}) {
    RETURN_IF_ERROR(
        FromRocks(impl_->db->CompactRange(o, impl_->cf[f], nullptr, nullptr), "compaction failed"));
  }
  return Status::Ok();
}

StatusOr<size_t> RocksStore::CountKeys(std::string_view family) const {
  for (size_t f = kMeta; f < kFamilies; ++f) {
    if (family != kFamilyNames[f]) continue;
    size_t n = 0;
    RETURN_IF_ERROR(
        impl_->Scan(static_cast<Family>(f), "", [&](std::string_view, std::string_view, bool*) {
          ++n;
          return Status::Ok();
        }));
    return n;
  }
  return InvalidArgument("no column family '" + std::string(family) + "'");
}

}  // namespace yard::state
