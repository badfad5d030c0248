#include "worker/executor.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <utility>

namespace yard::worker {

Executor::Executor(const HandlerRegistry& registry, const Clock& clock, size_t threads,
                   std::function<void()> on_done)
    : registry_(registry), clock_(clock), threads_(threads), on_done_(std::move(on_done)) {}

Executor::~Executor() { Stop(); }

void Executor::Start() {
  for (size_t i = 0; i < threads_; ++i) pool_.emplace_back([this] { Loop(); });
}

void Executor::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_.store(true);
  }
  cv_.notify_all();
  for (auto& t : pool_) t.join();
  pool_.clear();
}

void Executor::Submit(std::vector<Job> jobs) {
  {
    std::lock_guard lock(mu_);
    for (auto& j : jobs) queue_.push_back(std::move(j));
  }
  if (jobs.size() == 1) {
    cv_.notify_one();
  } else {
    cv_.notify_all();
  }
}

std::vector<Job> Executor::TakeQueued() {
  std::lock_guard lock(mu_);
  std::vector<Job> out(std::make_move_iterator(queue_.begin()),
                       std::make_move_iterator(queue_.end()));
  queue_.clear();
  return out;
}

CancelCounts Executor::Cancel(size_t link, const std::vector<protocol::TaskRef>& refs) {
  CancelCounts counts;
  if (refs.empty()) return counts;
  std::vector<Key> keys;
  keys.reserve(refs.size());
  for (const auto& r : refs) keys.push_back({link, r.id, r.attempt});
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  auto wanted = [&](const Job& j) {
    return j.link == link &&
           std::binary_search(keys.begin(), keys.end(), Key{link, j.task.id, j.task.attempt});
  };
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    for (const Key& k : keys) {
      auto [first, last] = running_.equal_range(k);
      for (auto it = first; it != last; ++it) {
        it->second->cancelled_.store(true, std::memory_order_relaxed);
        ++counts.flagged;
      }
    }
    if (std::any_of(queue_.begin(), queue_.end(), wanted)) {
      const bool first_done = done_.empty();
      std::deque<Job> kept;
      for (auto& j : queue_) {
        if (!wanted(j)) {
          kept.push_back(std::move(j));
          continue;
        }
        protocol::ResultMsg r;
        r.id = j.task.id;
        r.attempt = j.task.attempt;
        r.outcome = protocol::Outcome::kCancelled;
        r.error = "cancelled before start";
        done_.push_back({j.link, std::move(r)});
        ++counts.skipped;
      }
      queue_.swap(kept);
      wake = first_done;
    }
  }
  if (wake) on_done_();
  return counts;
}

void Executor::TakeDone(std::vector<Done>* out) {
  std::lock_guard lock(mu_);
  if (out->empty()) {
    out->swap(done_);
  } else {
    for (auto& d : done_) out->push_back(std::move(d));
    done_.clear();
  }
}

void Executor::TakeRenewals(std::vector<Renewal>* out) {
  std::lock_guard lock(mu_);
  for (const auto& [key, lease_ms] : renewals_) {
    out->push_back({key.link, {key.id, key.attempt}, lease_ms});
    auto [first, last] = running_.equal_range(key);
    for (auto it = first; it != last; ++it) it->second->pending_ms_.store(0);
  }
  renewals_.clear();
}

size_t Executor::busy() const {
  std::lock_guard lock(mu_);
  return queue_.size() + running_.size();
}

bool Executor::AddRenewalLocked(const Execution& execution, uint32_t lease_ms) {
  const bool first = renewals_.empty();
  renewals_[execution.key_] = lease_ms;
  execution.pending_ms_.store(lease_ms);
  return first;
}

void Executor::RequestRenewal(const Execution& execution, uint32_t lease_ms) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    wake = AddRenewalLocked(execution, lease_ms);
  }
  if (wake) on_done_();
}

void Executor::Execution::Extend(uint32_t lease_ms) const {
  // A lease of 0 would expire the task at once: never what a handler means.
  if (lease_ms == 0) return;
  // The same lease is already waiting to be sent: this call is covered by that EXTEND.
  if (pending_ms_.load() == lease_ms) return;
  executor_.RequestRenewal(*this, lease_ms);
}

void Executor::Loop() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_.load() || !queue_.empty(); });
    if (stop_.load()) return;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    Execution execution(*this, {job.link, job.task.id, job.task.attempt});
    const auto entry = running_.emplace(execution.key_, &execution);
    // The master's lease started when it sent the task; a prefetched task may have waited
    // here most of it. Ask for a fresh lease so the lease bounds run time, not queue time.
    bool wake = false;
    const Micros waited = clock_.Now() - job.received;
    if (waited > Micros{job.task.lease_ms} * kMillis / 4) {
      wake = AddRenewalLocked(execution, job.task.lease_ms);
    }
    lock.unlock();
    if (wake) on_done_();
    Done done{job.link, Run(job.task, execution)};
    lock.lock();
    running_.erase(entry);
    const bool first = done_.empty();
    done_.push_back(std::move(done));
    // One wake-up per burst: the I/O thread takes everything that finished meanwhile.
    if (first) {
      lock.unlock();
      on_done_();
      lock.lock();
    }
  }
}

protocol::ResultMsg Executor::Run(const protocol::TaskMsg& task, const Execution& execution) const {
  protocol::ResultMsg r;
  r.id = task.id;
  r.attempt = task.attempt;
  const auto start = std::chrono::steady_clock::now();
  const Handler* h = registry_.Find(task.type);
  if (!h) {
    r.outcome = protocol::Outcome::kFailPermanent;
    r.error = "no handler for type '" + task.type + "' on this worker";
  } else {
    const TaskContext ctx{task.id, task.attempt,  task.type, task.payload,
                          &stop_,  task.lease_ms, &execution};
    try {
      StatusOr<std::string> out = (*h)(ctx);
      if (out.ok()) {
        r.outcome = protocol::Outcome::kOk;
        r.output = std::move(*out);
      } else {
        r.outcome = IsPermanentFailure(out.status().code()) ? protocol::Outcome::kFailPermanent
                                                            : protocol::Outcome::kFailRetry;
        r.error = out.status().ToString();
      }
    } catch (const std::exception& e) {
      r.outcome = protocol::Outcome::kFailRetry;
      r.error = std::string("handler threw: ") + e.what();
    } catch (...) {
      r.outcome = protocol::Outcome::kFailRetry;
      r.error = "handler threw a non-standard exception";
    }
    // A handler that gave up after CANCEL_TASKS did not fail: the master ended the task.
    if (r.outcome != protocol::Outcome::kOk && execution.Cancelled()) {
      r.outcome = protocol::Outcome::kCancelled;
    }
  }
  r.duration_us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                            std::chrono::steady_clock::now() - start)
                                            .count());
  return r;
}

}  // namespace yard::worker
