#include "common/signals.h"

#include <atomic>
#include <csignal>

namespace yard {
namespace {

struct Target {
  void (*stop)(void*);
  void* arg;
};
std::atomic<Target*> g_target{nullptr};
Target g_storage;

extern "C" void OnStopSignal(int) {
  if (Target* t = g_target.load()) t->stop(t->arg);
}

}  // namespace

void InstallStopHandler(void (*stop)(void*), void* arg) {
  g_target.store(nullptr);
  g_storage = {stop, arg};
  g_target.store(&g_storage);
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

void ClearStopHandler() { g_target.store(nullptr); }

}  // namespace yard
