// yard-worker: connects to one or more masters and runs tasks with the built-in handlers.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "common/duration.h"
#include "common/logging.h"
#include "common/signals.h"
#include "worker/handlers/builtin.h"
#include "worker/session.h"

int main(int argc, char** argv) {
  yard::worker::WorkerOptions o;
  std::vector<std::string> only;
  std::string drain = "30s", log_level = "info";
  bool log_json = false, list = false;
  CLI::App app{"yard-worker: runs Yard tasks for one or more masters."};
  app.add_option("--connect", o.connect,
                 "master worker endpoint, e.g. tcp://127.0.0.1:7071 (repeat for several masters)");
  app.add_option("--threads", o.threads, "tasks run at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--id", o.id, "worker id (default: <hostname>-<pid>)");
  app.add_option("--credit", o.credit,
                 "tasks prefetched per master (default: 128 per thread; for long tasks use about "
                 "the thread count)")
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("--handlers", only, "run only these task types (default: all built-ins)")
      ->delimiter(',');
  app.add_option("--tag", o.tags,
                 "tag announced to the master, which runs a task only on workers with all of "
                 "its requirements (repeatable; at most 32 tags, each 1..64 bytes of "
                 "A-Z a-z 0-9 . _ -)");
  app.add_option("--drain-timeout", drain,
                 "on SIGTERM, how long running tasks may take before the worker leaves")
      ->capture_default_str();
  app.add_flag("--list-handlers", list, "print the built-in task types and exit");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str();
  app.add_flag("--log-json", log_json, "log one JSON object per line");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  yard::worker::HandlerRegistry registry;
  yard::worker::RegisterBuiltinHandlers(registry);
  if (list) {
    for (const auto& t : registry.Types()) std::cout << t << "\n";
    return 0;
  }
  if (o.connect.empty()) {
    std::cerr << "yard-worker: --connect is required (e.g. --connect tcp://127.0.0.1:7071)\n";
    return 2;
  }
  if (!only.empty()) {
    if (auto st = registry.Restrict(only); !st.ok()) {
      std::cerr << "yard-worker: --handlers: " << st.message() << "\n";
      return 2;
    }
  }
  if (auto st = yard::worker::ValidateTags(o.tags); !st.ok()) {
    std::cerr << "yard-worker: --tag: " << st.message() << "\n";
    return 2;
  }
  auto d = yard::ParseDuration(drain);
  if (!d.ok()) {
    std::cerr << "yard-worker: --drain-timeout: " << d.status().message() << "\n";
    return 2;
  }
  o.drain_timeout = *d;
  if (auto st = yard::SetupLogging("yard-worker", log_level, log_json); !st.ok()) {
    std::cerr << "yard-worker: " << st.message() << "\n";
    return 2;
  }

  yard::transport::Context ctx;
  yard::worker::Session session(o, ctx, registry, yard::SystemClock::Get());
  yard::InstallStopHandlerFor(session);
  yard::Status st = session.Run();
  yard::ClearStopHandler();
  if (!st.ok()) {
    spdlog::error("{}", st.ToString());
    return 1;
  }
  return 0;
}
