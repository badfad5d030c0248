// Google Benchmark: the cost of the wire codec per task, in the batch sizes the master uses.
#include <benchmark/benchmark.h>

#include "common/protocol/codec.h"

namespace {

using yard::protocol::ResultMsg;
using yard::protocol::Results;
using yard::protocol::TaskMsg;
using yard::protocol::Tasks;

Tasks MakeTasks(int64_t n, size_t payload) {
  Tasks t;
  for (int64_t i = 0; i < n; ++i) {
    t.tasks.push_back({static_cast<uint64_t>(i + 1), 1, "echo", std::string(payload, 'x'), 30000});
  }
  return t;
}

void BM_EncodeTasks(benchmark::State& state) {
  const Tasks t = MakeTasks(state.range(0), 100);
  for (auto _ : state) benchmark::DoNotOptimize(yard::protocol::EncodeBody(t));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_EncodeTasks)->Arg(1)->Arg(64)->Arg(256);

void BM_DecodeTasks(benchmark::State& state) {
  const std::string body = yard::protocol::EncodeBody(MakeTasks(state.range(0), 100));
  Tasks out;
  for (auto _ : state) {
    auto st = yard::protocol::DecodeBody(body, &out);
    benchmark::DoNotOptimize(st);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_DecodeTasks)->Arg(1)->Arg(64)->Arg(256);

void BM_DecodeResults(benchmark::State& state) {
  Results r;
  r.credit = static_cast<uint32_t>(state.range(0));
  for (int64_t i = 0; i < state.range(0); ++i) {
    r.results.push_back({static_cast<uint64_t>(i + 1), 1, yard::protocol::Outcome::kOk,
                         std::string(100, 'x'), "", 12});
  }
  const std::string body = yard::protocol::EncodeBody(r);
  Results out;
  for (auto _ : state) {
    auto st = yard::protocol::DecodeBody(body, &out);
    benchmark::DoNotOptimize(st);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_DecodeResults)->Arg(1)->Arg(64)->Arg(256);

}  // namespace

BENCHMARK_MAIN();
