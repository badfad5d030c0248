// yard-master: flags -> roles (core server, plugins) -> run -> exit code.
//
// Stop order on SIGTERM: the plugins stop first (they stop reading and make what they hold
// durable through the core, which still serves), then the core drains and exits.
#include <spdlog/spdlog.h>

#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "common/logging.h"
#include "common/metrics.h"
#include "common/signals.h"
#include "common/transport/socket.h"
#include "master/api/client_api.h"
#include "master/plugins/plugin.h"
#include "master/server/options.h"
#include "master/server/ready_file.h"
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

// SIGTERM/SIGINT land here (async-signal-safe); a thread waits for it.
class StopSignal {
 public:
  void Stop() {
    stopped_ = true;
    wake_.Notify();
  }
  void Wait() {
    yard::transport::Poller poller;
    poller.AddFd(wake_.fd());
    while (!stopped_) {
      (void)poller.Poll(-1);
      wake_.Drain();
    }
  }

 private:
  std::atomic<bool> stopped_{false};
  yard::transport::Notifier wake_;
};

using PluginList = std::vector<std::unique_ptr<yard::plugins::Plugin>>;

void StopPlugins(PluginList& plugins) {
  for (auto it = plugins.rbegin(); it != plugins.rend(); ++it) (*it)->Stop();
}

yard::Status StartPlugins(PluginList& plugins) {
  for (auto& p : plugins) RETURN_IF_ERROR(p->Start());
  return yard::Status::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  yard::plugins::PluginRegistry registry;
  yard::plugins::RegisterBuiltinPlugins(registry);
  yard::server::MasterOptions options;
  if (auto code = yard::server::ParseMasterOptions(argc, argv, registry.Names(), &options)) {
    return *code;
  }
  if (options.list_plugins) {
    for (const auto* f : registry.All()) std::cout << f->name() << "\t" << f->description() << "\n";
    return 0;
  }
  if (auto st = yard::SetupLogging("yard-master", options.log_level, options.log_json); !st.ok()) {
    std::cerr << "yard-master: " << st.message() << "\n";
    return 2;
  }
  const yard::Clock& clock = yard::SystemClock::Get();
  yard::transport::Context ctx;
  yard::Metrics plugin_metrics;

  // Plugins are built (their whole config checked) before anything opens or binds.
  std::string core_endpoint = options.remote_core;
  yard::plugins::PluginHost host;
  host.make_api = [&]() -> yard::StatusOr<std::unique_ptr<yard::api::MasterApi>> {
    ASSIGN_OR_RETURN(auto api, yard::api::ClientMasterApi::Create(ctx, {core_endpoint}, clock));
    return std::unique_ptr<yard::api::MasterApi>(std::move(api));
  };
  host.metrics = &plugin_metrics;
  host.clock = &clock;
  // What the plugins announce (their bound addresses) goes into the ready file.
  std::mutex announced_mu;
  std::map<std::string, std::string> announced;
  host.announce = [&](const std::string& key, const std::string& value) {
    std::lock_guard lock(announced_mu);
    announced[key] = value;
  };
  PluginList plugins;
  for (const auto& [name, section] : options.plugin_sections) {
    if (section["enabled"].value_or(true) == false) continue;
    auto p = registry.Find(name)->Create(section, host);
    if (!p.ok()) {
      std::cerr << "yard-master: " << p.status().message() << "\n";
      return 2;
    }
    plugins.push_back(std::move(*p));
  }

  StopSignal stop;
  yard::InstallStopHandlerFor(stop);
  if (!options.remote_core.empty()) {
    if (plugins.empty()) {
      std::cerr
          << "yard-master: --remote-core runs plugin roles only: switch one on (--mqtt, --web)\n";
      return 2;
    }
    spdlog::info("no core in this process: plugin roles against the core at {}",
                 options.remote_core);
    if (auto st = StartPlugins(plugins); !st.ok()) {
      spdlog::error("cannot start a plugin: {}", st.ToString());
      StopPlugins(plugins);
      return 1;
    }
    if (!options.ready_file.empty()) {
      std::lock_guard lock(announced_mu);
      if (auto st = yard::server::WriteReadyFile(options.ready_file, announced); !st.ok()) {
        spdlog::error("{}", st.ToString());
        StopPlugins(plugins);
        return 1;
      }
    }
    stop.Wait();
    StopPlugins(plugins);
    yard::ClearStopHandler();
    return 0;
  }

  auto store = OpenStore(options);
  if (!store.ok()) {
    spdlog::error("cannot open the task state: {}", store.status().ToString());
    return 1;
  }
  auto server = yard::server::Server::Create(options, ctx, **store, clock);
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().ToString());
    return server.status().code() == yard::StatusCode::kInvalidArgument ? 2 : 1;
  }
  core_endpoint = (*server)->inproc_client_endpoint();
  (*server)->SetExtraStats(&plugin_metrics);

  // The plugins stop before the core, which serves their last submits meanwhile.
  std::thread stopper([&] {
    stop.Wait();
    StopPlugins(plugins);
    (*server)->Stop();
  });
  yard::Status st = StartPlugins(plugins);
  if (st.ok()) {
    {
      std::lock_guard lock(announced_mu);
      (*server)->SetReadyFields(announced);
    }
    st = (*server)->Run();
  } else {
    st = st.WithContext("starting a plugin");
  }
  stop.Stop();  // when Run ended on its own (error), the plugins still stop
  stopper.join();
  yard::ClearStopHandler();
  if (!st.ok()) {
    spdlog::error("stopped with an error: {}", st.ToString());
    return 1;
  }
  return 0;
}
