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
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace yard::worker {

struct TaskContext {
  uint64_t id = 0;
  uint32_t attempt = 0;
  std::string_view type;
  std::string_view payload;
  // Set when the worker is shutting down hard; long handlers should check it and return.
  const std::atomic<bool>* stop = nullptr;
  bool Stopping() const { return stop && stop->load(std::memory_order_relaxed); }
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
