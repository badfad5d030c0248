// Google Benchmark: the state store's group commit and recovery scan. A task's life in the
// store is one commit when it is submitted and one when it finishes; BM_Commit times both per
// batch of N tasks (items = tasks). Run on an idle machine: see docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "master/state/memory_store.h"
#include "master/state/rocks_store.h"

namespace {

using yard::protocol::TaskInfo;
using yard::protocol::TaskState;
using yard::state::Batch;
using yard::state::Durability;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/yard-store-bench-XXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string path() const { return path_ + "/data"; }

 private:
  std::string path_;
};

TaskInfo Queued(uint64_t id) {
  TaskInfo t;
  t.id = id;
  t.type = "echo";
  t.priority = 5;
  t.max_attempts = 3;
  t.timeout_ms = 30000;
  t.payload = std::string(100, 'x');
  t.submitted_us = 1'700'000'000'000'000;
  return t;
}

std::unique_ptr<yard::state::StateStore> OpenRocks(const TempDir& dir, Durability d) {
  yard::state::RocksStoreOptions o;
  o.dir = dir.path();
  o.durability = d;
  auto s = yard::state::RocksStore::Open(o, yard::SystemClock::Get());
  if (!s.ok()) return nullptr;
  return std::move(*s);
}

// Submit batch then finish batch of state.range(0) tasks, per iteration.
void RunCommits(benchmark::State& state, yard::state::StateStore& store) {
  const auto n = static_cast<uint64_t>(state.range(0));
  uint64_t next = 1;
  Batch submit, finish;
  for (auto _ : state) {
    submit.clear();
    finish.clear();
    for (uint64_t i = 0; i < n; ++i) {
      TaskInfo t = Queued(next + i);
      submit.records.push_back(t);
      t.state = TaskState::kSucceeded;
      t.attempt = 1;
      t.result = "ok";
      t.finished_us = t.submitted_us + 1000;
      finish.records.push_back(std::move(t));
    }
    next += n;
    if (!store.Commit(submit).ok() || !store.Commit(finish).ok()) {
      state.SkipWithError("commit failed");
      return;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
}

void BM_RocksCommit(benchmark::State& state, Durability d) {
  TempDir dir;
  auto store = OpenRocks(dir, d);
  if (!store) return state.SkipWithError("cannot open the store");
  RunCommits(state, *store);
}
BENCHMARK_CAPTURE(BM_RocksCommit, fsync, Durability::kFsync)->Arg(64)->Arg(256)->UseRealTime();
BENCHMARK_CAPTURE(BM_RocksCommit, interval, Durability::kInterval)
    ->Arg(64)
    ->Arg(256)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_RocksCommit, none, Durability::kNone)->Arg(64)->Arg(256)->UseRealTime();

void BM_MemoryCommit(benchmark::State& state) {
  yard::state::MemoryStore store;
  RunCommits(state, store);
}
BENCHMARK(BM_MemoryCommit)->Arg(64)->Arg(256);

// The store a recovery scan reads: n queued tasks, written once per process (Google
// Benchmark may call a benchmark function more than once) and reopened so the scan reads
// them back from files and the replayed log, as a restart does.
struct RecoveryStore {
  TempDir dir;  // declared first: removed after the store is closed
  std::unique_ptr<yard::state::StateStore> store;
};
// Closed and removed by main before static destructors run: RocksDB's own statics may be gone
// by then.
std::map<uint64_t, std::unique_ptr<RecoveryStore>>& RecoveryStores() {
  static auto* stores = new std::map<uint64_t, std::unique_ptr<RecoveryStore>>;
  return *stores;
}
yard::state::StateStore* RecoveryStoreOf(uint64_t n) {
  auto& r = RecoveryStores()[n];
  if (r) return r->store.get();
  r = std::make_unique<RecoveryStore>();
  r->store = OpenRocks(r->dir, Durability::kNone);
  if (!r->store) return nullptr;
  for (uint64_t from = 1; from <= n; from += 10000) {
    Batch b;
    for (uint64_t id = from; id < from + 10000 && id <= n; ++id) b.records.push_back(Queued(id));
    if (!r->store->Commit(b).ok()) return nullptr;
  }
  r->store.reset();
  r->store = OpenRocks(r->dir, Durability::kNone);
  return r->store.get();
}

// Recovery: ForEachActive over state.range(0) queued tasks (what a restart reads back).
void BM_RecoveryScan(benchmark::State& state) {
  const auto n = static_cast<uint64_t>(state.range(0));
  yard::state::StateStore* store = RecoveryStoreOf(n);
  if (!store) return state.SkipWithError("cannot set up the store");
  for (auto _ : state) {
    uint64_t seen = 0;
    if (!store->ForEachActive([&](TaskInfo&&) { ++seen; }).ok() || seen != n) {
      return state.SkipWithError("scan failed");
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_RecoveryScan)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  RecoveryStores().clear();
  return 0;
}
