// yard-master: flags -> Server -> run -> exit code.
#include <spdlog/spdlog.h>

#include <iostream>

#include "common/logging.h"
#include "common/signals.h"
#include "common/transport/socket.h"
#include "master/server/options.h"
#include "master/server/server.h"
#include "master/state/memory_store.h"

int main(int argc, char** argv) {
  yard::server::MasterOptions options;
  if (auto code = yard::server::ParseMasterOptions(argc, argv, &options)) return *code;
  if (auto st = yard::SetupLogging("yard-master", options.log_level, options.log_json); !st.ok()) {
    std::cerr << "yard-master: " << st.message() << "\n";
    return 2;
  }
  yard::transport::Context ctx;
  yard::state::MemoryStore store(options.max_finished);
  auto server = yard::server::Server::Create(options, ctx, store, yard::SystemClock::Get());
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
