// Orderly-stop signals for every binary: SIGTERM and SIGINT call one async-signal-safe stop
// function (a component's Stop(), which sets a flag and writes an eventfd); SIGPIPE is ignored.
#pragma once

namespace yard {

// Installs the handlers. `stop(arg)` runs inside the signal handler, so it must be
// async-signal-safe. Call ClearStopHandler() before `arg` is destroyed.
void InstallStopHandler(void (*stop)(void*), void* arg);
void ClearStopHandler();

// Convenience for any object with an async-signal-safe Stop().
template <typename T>
void InstallStopHandlerFor(T& target) {
  InstallStopHandler([](void* p) { static_cast<T*>(p)->Stop(); }, &target);
}

}  // namespace yard
