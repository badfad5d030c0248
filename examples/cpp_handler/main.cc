// A worker with its own C++ handler: the built-ins plus "example.reverse".
// Writing a handler is one function; adding it is one registration line (see main below).
#include <algorithm>

#include "common/logging.h"
#include "common/signals.h"
#include "worker/handlers/builtin.h"
#include "worker/session.h"

namespace {

// Output: the payload reversed. An empty payload is a permanent failure (kInvalidArgument).
yard::StatusOr<std::string> Reverse(const yard::worker::TaskContext& ctx) {
  if (ctx.payload.empty()) return yard::InvalidArgument("example.reverse: empty payload");
  std::string out(ctx.payload);
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s tcp://MASTER:7071\n", argv[0]);
    return 2;
  }
  yard::worker::HandlerRegistry registry;
  yard::worker::RegisterBuiltinHandlers(registry);
  if (auto st = registry.Register("example.reverse", Reverse); !st.ok()) return 1;  // the line

  if (!yard::SetupLogging("example-worker", "info", false).ok()) return 1;
  yard::worker::WorkerOptions options;
  options.connect = {argv[1]};
  yard::transport::Context ctx;
  yard::worker::Session session(options, ctx, registry, yard::SystemClock::Get());
  yard::InstallStopHandlerFor(session);
  const bool ok = session.Run().ok();
  yard::ClearStopHandler();
  return ok ? 0 : 1;
}
