// yard-master: flags -> Server -> run -> exit code.
#include <spdlog/spdlog.h>

#include <iostream>

#include "common/logging.h"
#include "common/signals.h"
#include "common/transport/socket.h"
#include "master/server/options.h"
#include "master/server/server.h"
#include "master/state/memory_store.h"
#include "master/state/rocks_store.h"

namespace {

// The store the options ask for: RocksDB under --data-dir, or memory with --memory.
yard::StatusOr<std::unique_ptr<yard::state::StateStore>> OpenStore(
    const yard::server::MasterOptions& o) {
  const yard::Clock& clock = yard::SystemClock::Get();
  if (o.memory) {
    spdlog::warn("--memory: task state lives in this process only and is lost when it stops");
    return std::unique_ptr<yard::state::StateStore>(std::make_unique<yard::state::MemoryStore>(
        yard::state::MemoryStoreOptions{o.max_finished, o.result_ttl}, clock));
  }
  yard::state::RocksStoreOptions ro;
  ro.dir = o.data_dir;
  ASSIGN_OR_RETURN(ro.durability, yard::state::ParseDurability(o.durability));
  ro.sync_interval_ms = o.sync_interval_ms;
  ro.result_ttl = o.result_ttl;
  if (ro.durability == yard::state::Durability::kNone) {
    spdlog::warn("--durability none: a power loss can lose acknowledged tasks (benchmarks only)");
  }
  ASSIGN_OR_RETURN(auto store, yard::state::RocksStore::Open(ro, clock));
  spdlog::info("task state in {} (durability {}, epoch {})", o.data_dir, o.durability,
               store->Epoch());
  return std::unique_ptr<yard::state::StateStore>(std::move(store));
}

}  // namespace

int main(int argc, char** argv) {
  yard::server::MasterOptions options;
  if (auto code = yard::server::ParseMasterOptions(argc, argv, &options)) return *code;
  if (auto st = yard::SetupLogging("yard-master", options.log_level, options.log_json); !st.ok()) {
    std::cerr << "yard-master: " << st.message() << "\n";
    return 2;
  }
  yard::transport::Context ctx;
  auto store = OpenStore(options);
  if (!store.ok()) {
    spdlog::error("cannot open the task state: {}", store.status().ToString());
    return 1;
  }
  auto server = yard::server::Server::Create(options, ctx, **store, yard::SystemClock::Get());
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().ToString());
    return server.status().code() == yard::StatusCode::kInvalidArgument ? 2 : 1;
  }
  yard::InstallStopHandlerFor(**server);

  yard::Status st = (*server)->Run();
  yard::ClearStopHandler();
  if (!st.ok()) {
    spdlog::error("stopped with an error: {}", st.ToString());
    return 1;
  }
  return 0;
}
