// Executor: a pool of threads that run handlers, apart from the I/O thread so heartbeats keep
// flowing while tasks run. Jobs go in through Submit; finished results come out through
// TakeDone, and `on_done` (called from executor threads) wakes the I/O thread.
// Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/protocol/messages.h"
#include "worker/handlers/registry.h"

namespace yard::worker {

struct Job {
  size_t link = 0;  // which master connection the task came from
  protocol::TaskMsg task;
  Micros received = 0;  // monotonic time the worker got it
};

// A task that started after waiting long in the worker's queue: its lease should be renewed.
struct LateStart {
  size_t link = 0;
  protocol::TaskRef ref;
  uint32_t lease_ms = 0;
};

struct Done {
  size_t link = 0;
  protocol::ResultMsg result;
};

class Executor {
 public:
  // `registry` and `clock` must outlive the executor.
  Executor(const HandlerRegistry& registry, const Clock& clock, size_t threads,
           std::function<void()> on_done);
  ~Executor();

  void Start();
  // Sets the stop flag handlers see, lets running handlers return, joins the threads.
  void Stop();

  void Submit(std::vector<Job> jobs);
  // Removes and returns jobs that have not started.
  std::vector<Job> TakeQueued();
  // Appends finished results to `out`.
  void TakeDone(std::vector<Done>* out);
  // Appends tasks that started after waiting over a quarter of their lease in the queue.
  void TakeLateStarts(std::vector<LateStart>* out);
  // Jobs queued or running.
  size_t busy() const;

 private:
  void Loop();
  protocol::ResultMsg Run(const protocol::TaskMsg& task) const;

  const HandlerRegistry& registry_;
  const Clock& clock_;
  const size_t threads_;
  std::function<void()> on_done_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  std::vector<Done> done_;
  std::vector<LateStart> late_;
  size_t running_ = 0;
  std::vector<std::thread> pool_;
};

}  // namespace yard::worker
