// Google Benchmark: the engine's cost per task for the scheduling rules of docs/jobs.md, with
// no I/O and no store. A batch of tasks goes through its whole life (submit, commit, dispatch
// to two workers, result) and items/s counts tasks. BM_Keys compares unkeyed tasks with tasks
// spread over 1, 100 and 100,000 keys (the cost of per-key ordering); BM_Job runs one job of
// N parts against N plain tasks (the cost of job bookkeeping and aggregation per part).
// BM_Dispatch times the scheduler's dispatch step alone (ready tasks into TASKS batches).
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "master/core/engine.h"

namespace {

using yard::Micros;
using yard::core::Effects;
using yard::core::Engine;
using yard::core::EngineConfig;
using yard::core::Now;
using yard::protocol::Outcome;
using yard::protocol::TaskSpec;

constexpr uint32_t kCredit = 4096;

EngineConfig Config() {
  EngineConfig c;
  c.max_active = 10'000'000;
  c.max_batch = 1024;
  c.max_job_tasks = 1'000'000;
  c.seed = 1;
  return c;
}

void Join(Engine& e, const std::string& conn, Now now, uint32_t credit = kCredit) {
  yard::protocol::Hello h;
  h.worker_id = conn;
  h.incarnation = 1;
  h.handlers = {"echo"};
  h.slots = credit;
  h.credit = credit;
  Effects fx;
  e.OnHello(conn, h, now, fx);
}

// A fresh engine with two workers of generous credit.
std::unique_ptr<Engine> EngineWithTwoWorkers(Now now) {
  auto e = std::make_unique<Engine>(Config());
  Join(*e, "w1", now);
  Join(*e, "w2", now);
  return e;
}

// Dispatches and completes tasks until none is active; returns how many ran.
size_t Drain(Engine& e, Now& now) {
  size_t ran = 0;
  while (e.active() > 0) {
    auto batches = e.Dispatch(now);
    if (batches.empty()) break;
    for (auto& [conn, tasks] : batches) {
      yard::protocol::Results results;
      results.credit = static_cast<uint32_t>(tasks.tasks.size());
      results.results.reserve(tasks.tasks.size());
      for (auto& t : tasks.tasks) {
        results.results.push_back({t.id, t.attempt, Outcome::kOk, std::move(t.payload), "", 1});
      }
      ran += results.results.size();
      Effects fx;
      e.OnResults(conn, results, now, fx);
    }
    now.mono += 1;
  }
  return ran;
}

void BM_Keys(benchmark::State& state) {
  const size_t n = 100'000;
  const auto keys = static_cast<size_t>(state.range(0));  // 0: unkeyed
  std::vector<TaskSpec> specs(n);
  for (size_t i = 0; i < n; ++i) {
    specs[i].type = "echo";
    specs[i].payload = std::string(100, 'x');
    if (keys > 0) specs[i].key = "device-" + std::to_string(i % keys);
  }
  size_t total = 0;
  for (auto _ : state) {
    state.PauseTiming();
    Now now{1'000'000, 1'700'000'000'000'000};
    const std::unique_ptr<Engine> engine = EngineWithTwoWorkers(now);
    Engine& e = *engine;
    state.ResumeTiming();
    for (size_t i = 0; i < n; i += 1000) {
      Effects fx;
      std::vector<TaskSpec> batch(specs.begin() + i, specs.begin() + i + 1000);
      auto ids = e.Submit(batch, now, fx);
      e.OnCommitted(*ids);
    }
    total += Drain(e, now);
  }
  state.SetItemsProcessed(static_cast<int64_t>(total));
  state.SetLabel(keys == 0 ? "unkeyed" : std::to_string(keys) + " keys");
}
BENCHMARK(BM_Keys)->Arg(0)->Arg(1)->Arg(100)->Arg(100'000)->Unit(benchmark::kMillisecond);

// Dispatch alone: 100,000 committed, ready tasks handed to two workers whose credit takes
// them all; submit and commit are not timed.
void BM_Dispatch(benchmark::State& state) {
  const size_t n = 100'000;
  std::vector<TaskSpec> specs(1000);
  for (auto& s : specs) {
    s.type = "echo";
    s.payload = std::string(100, 'x');
  }
  size_t total = 0;
  for (auto _ : state) {
    state.PauseTiming();
    Now now{1'000'000, 1'700'000'000'000'000};
    auto e = std::make_unique<Engine>(Config());
    Join(*e, "w1", now, n);
    Join(*e, "w2", now, n);
    for (size_t i = 0; i < n; i += specs.size()) {
      Effects fx;
      e->OnCommitted(*e->Submit(specs, now, fx));
    }
    state.ResumeTiming();
    while (true) {
      auto batches = e->Dispatch(now);
      if (batches.empty()) break;
      for (const auto& [conn, tasks] : batches) total += tasks.tasks.size();
    }
    state.PauseTiming();
    e.reset();  // not timed: freeing 100,000 tasks
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(total));
}
BENCHMARK(BM_Dispatch)->Unit(benchmark::kMillisecond);

void BM_Job(benchmark::State& state) {
  const auto parts = static_cast<size_t>(state.range(0));
  const bool as_job = state.range(1) != 0;
  std::string payload;
  for (size_t i = 0; i < parts; ++i) payload += std::to_string(i) + "\n";
  size_t total = 0;
  for (auto _ : state) {
    state.PauseTiming();
    Now now{1'000'000, 1'700'000'000'000'000};
    const std::unique_ptr<Engine> engine = EngineWithTwoWorkers(now);
    Engine& e = *engine;
    state.ResumeTiming();
    Effects fx;
    if (as_job) {
      yard::protocol::JobSpec job;
      job.task.type = "echo";
      job.task.payload = payload;
      job.split = "lines:1";
      job.aggregate = "sum";
      auto r = e.SubmitJob(job, now, fx);
      e.OnCommitted(fx.created);
    } else {
      // The same work as plain tasks: split by the client, nothing aggregated.
      std::vector<TaskSpec> specs(parts);
      for (size_t i = 0; i < parts; ++i) {
        specs[i].type = "echo";
        specs[i].payload = std::to_string(i) + "\n";
      }
      auto ids = e.Submit(specs, now, fx);
      e.OnCommitted(*ids);
    }
    total += Drain(e, now);
  }
  state.SetItemsProcessed(static_cast<int64_t>(total));
  state.SetLabel(as_job ? "one job, sum" : "plain tasks");
}
BENCHMARK(BM_Job)->Args({10'000, 0})->Args({10'000, 1})->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
