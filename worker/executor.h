// Executor: a pool of threads that run handlers, apart from the I/O thread so heartbeats keep
// flowing while tasks run. Jobs go in through Submit; finished results come out through
// TakeDone, lease renewals to send through TakeRenewals, and `on_done` (called from executor
// threads, and from Cancel) wakes the I/O thread when either has something new.
// Thread-safe.
#pragma once

#include <atomic>
#include <compare>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
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

// A lease to renew with EXTEND: for a task that started after waiting long in the worker's
// queue, or because its handler called TaskContext::Extend.
struct Renewal {
  size_t link = 0;
  protocol::TaskRef ref;
  uint32_t lease_ms = 0;
};

struct Done {
  size_t link = 0;
  protocol::ResultMsg result;
};

// What Executor::Cancel did with the refs it was given.
struct CancelCounts {
  size_t skipped = 0;  // queued jobs dropped, each now a `cancelled` result in TakeDone
  size_t flagged = 0;  // running executions whose cancel flag is now set
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
  // The master on `link` cancelled `refs`: a queued job among them is dropped and reported as
  // a `cancelled` result (through TakeDone, like any other); a running one gets its cancel
  // flag set. Refs of neither kind (unknown, finished, another link's) are ignored.
  CancelCounts Cancel(size_t link, const std::vector<protocol::TaskRef>& refs);
  // Appends finished results to `out`.
  void TakeDone(std::vector<Done>* out);
  // Appends the lease renewals requested since the last call, one per execution (the latest
  // requested lease), in (link, id, attempt) order. Executions that started after waiting over
  // a quarter of their lease in the queue ask for their own lease again.
  void TakeRenewals(std::vector<Renewal>* out);
  // Jobs queued or running.
  size_t busy() const;

 private:
  struct Key {
    size_t link;
    uint64_t id;
    uint32_t attempt;
    auto operator<=>(const Key&) const = default;
  };
  // One running execution: lives on its executor thread's stack while the handler runs, and is
  // listed in `running_` (under mu_) meanwhile.
  class Execution final : public TaskControl {
   public:
    Execution(Executor& executor, Key key) : executor_(executor), key_(key) {}
    bool Cancelled() const override { return cancelled_.load(std::memory_order_relaxed); }
    void Extend(uint32_t lease_ms) const override;

   private:
    friend class Executor;
    Executor& executor_;
    const Key key_;
    std::atomic<bool> cancelled_{false};
    // The lease waiting in `renewals_` for this execution, 0 if none: lets repeated Extend
    // calls skip the lock until the I/O thread has taken the request.
    mutable std::atomic<uint32_t> pending_ms_{0};
  };

  void Loop();
  protocol::ResultMsg Run(const protocol::TaskMsg& task, const Execution& execution) const;
  // Records a renewal for `execution`; true when the I/O thread needs waking. Needs mu_.
  bool AddRenewalLocked(const Execution& execution, uint32_t lease_ms);
  void RequestRenewal(const Execution& execution, uint32_t lease_ms);

  const HandlerRegistry& registry_;
  const Clock& clock_;
  const size_t threads_;
  std::function<void()> on_done_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  std::vector<Done> done_;
  std::map<Key, uint32_t> renewals_;  // lease to ask for, by execution
  // Running executions; a multimap only so that a master's duplicate dispatch cannot confuse
  // the bookkeeping.
  std::multimap<Key, Execution*> running_;
  std::vector<std::thread> pool_;
};

}  // namespace yard::worker
