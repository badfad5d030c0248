// Handlers: what a worker runs. A handler is one function from a task's payload to its output
// bytes; registering it is one line:
//
//   registry.Register("image.resize", [](const TaskContext& ctx) -> StatusOr<std::string> {
//     ...
//     return output;
//   });
//
// The returned Status decides what the master does on failure: kInvalidArgument,
// kFailedPrecondition, kNotFound, kPermissionDenied and kUnimplemented are permanent (the task
// fails at once); every other code asks for a retry (until the task's max_attempts).
// Handlers run on executor threads, several at once: they must be thread-safe.
//
// A long handler looks at ctx.Cancelled() (the master cancelled this execution) and
// ctx.Stopping() (the worker is shutting down) and returns early, and calls
// ctx.Extend(ctx.lease_ms) well within each lease so that the master does not take the task
// back while it still runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace yard::worker {

// The executor's side of one running execution, reached through TaskContext. Thread-safe:
// the handler's thread calls it while the worker's I/O thread cancels or renews.
class TaskControl {
 public:
  virtual ~TaskControl() = default;
  // True once the master has cancelled this execution.
  virtual bool Cancelled() const = 0;
  // Asks the master for a new lease of `lease_ms`, counted from when it gets the request.
  // Calls made before the worker sends the request are coalesced into one.
  virtual void Extend(uint32_t lease_ms) const = 0;
};

struct TaskContext {
  uint64_t id = 0;
  uint32_t attempt = 0;
  std::string_view type;
  std::string_view payload;
  // Set when the worker is shutting down hard; long handlers should check it and return.
  const std::atomic<bool>* stop = nullptr;
  // The lease the master gave this execution (0: unknown, e.g. a handler called directly).
  uint32_t lease_ms = 0;
  // Cancel flag and lease renewal; nullptr outside an executor (never cancelled, Extend does
  // nothing). Owned by the executor, alive while the handler runs.
  const TaskControl* control = nullptr;

  bool Stopping() const { return stop && stop->load(std::memory_order_relaxed); }
  // The master cancelled this execution: return soon. An error returned now is reported as
  // `cancelled`; a success is still reported as `ok` (and ignored by the master).
  bool Cancelled() const { return control && control->Cancelled(); }
  // Renews this execution's lease (see TaskControl::Extend). Cheap: call it as often as
  // convenient, e.g. every third of the lease.
  void Extend(uint32_t new_lease_ms) const {
    if (control) control->Extend(new_lease_ms);
  }
};

using Handler = std::function<StatusOr<std::string>(const TaskContext&)>;

// True when a handler's error should not be retried.
bool IsPermanentFailure(StatusCode code);

class HandlerRegistry {
 public:
  // kAlreadyExists if `type` is taken, kInvalidArgument if it is empty or over 128 bytes.
  Status Register(std::string type, Handler handler);
  // nullptr if no handler has that type.
  const Handler* Find(std::string_view type) const;
  std::vector<std::string> Types() const;
  // Keeps only `types`; kNotFound names the first type that is not registered.
  Status Restrict(const std::vector<std::string>& types);

 private:
  std::map<std::string, Handler, std::less<>> handlers_;
};

}  // namespace yard::worker
