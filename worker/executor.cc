#include "worker/executor.h"

#include <chrono>
#include <exception>

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

void Executor::TakeDone(std::vector<Done>* out) {
  std::lock_guard lock(mu_);
  if (out->empty()) {
    out->swap(done_);
  } else {
    for (auto& d : done_) out->push_back(std::move(d));
    done_.clear();
  }
}

void Executor::TakeLateStarts(std::vector<LateStart>* out) {
  std::lock_guard lock(mu_);
  for (auto& l : late_) out->push_back(l);
  late_.clear();
}

size_t Executor::busy() const {
  std::lock_guard lock(mu_);
  return queue_.size() + running_;
}

void Executor::Loop() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_.load() || !queue_.empty(); });
    if (stop_.load()) return;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    ++running_;
    // The master's lease started when it sent the task; a prefetched task may have waited
    // here most of it. Ask for a fresh lease so the lease bounds run time, not queue time.
    bool wake = false;
    const Micros waited = clock_.Now() - job.received;
    if (waited > Micros{job.task.lease_ms} * kMillis / 4) {
      wake = late_.empty();
      late_.push_back({job.link, {job.task.id, job.task.attempt}, job.task.lease_ms});
    }
    lock.unlock();
    if (wake) on_done_();
    Done done{job.link, Run(job.task)};
    lock.lock();
    --running_;
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

protocol::ResultMsg Executor::Run(const protocol::TaskMsg& task) const {
  protocol::ResultMsg r;
  r.id = task.id;
  r.attempt = task.attempt;
  const auto start = std::chrono::steady_clock::now();
  const Handler* h = registry_.Find(task.type);
  if (!h) {
    r.outcome = protocol::Outcome::kFailPermanent;
    r.error = "no handler for type '" + task.type + "' on this worker";
  } else {
    TaskContext ctx{task.id, task.attempt, task.type, task.payload, &stop_};
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
  }
  r.duration_us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                            std::chrono::steady_clock::now() - start)
                                            .count());
  return r;
}

}  // namespace yard::worker
