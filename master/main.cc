// yard-master: flags -> Server -> run -> exit code.
#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>

#include "common/logging.h"
#include "common/transport/socket.h"
#include "master/server/options.h"
#include "master/server/server.h"
#include "master/state/memory_store.h"

namespace {
yard::server::Server* g_server = nullptr;
extern "C" void OnSignal(int) {
  if (g_server) g_server->Stop();
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
  yard::state::MemoryStore store(options.max_finished);
  auto server = yard::server::Server::Create(options, ctx, store, yard::SystemClock::Get());
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().ToString());
    return server.status().code() == yard::StatusCode::kInvalidArgument ? 2 : 1;
  }
  g_server = server->get();
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  yard::Status st = (*server)->Run();
  g_server = nullptr;
  if (!st.ok()) {
    spdlog::error("stopped with an error: {}", st.ToString());
    return 1;
  }
  return 0;
}
