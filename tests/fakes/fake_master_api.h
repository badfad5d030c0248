// FakeMasterApi: an in-memory MasterApi for plugin unit tests. Calls are recorded; their
// callbacks run in Process(), as with the real one. Submits succeed with consecutive ids
// unless the test queues a refusal; tasks and jobs end when the test says so.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <vector>

#include "master/api/master_api.h"

namespace yard::testing {

class FakeMasterApi final : public api::MasterApi {
 public:
  // Everything submitted, in order.
  std::vector<protocol::TaskSpec> tasks;  // tasks[i] has id i + 1
  std::vector<protocol::JobSpec> jobs;    // jobs[i] has id 1'000'000 + i
  size_t submit_calls = 0;
  size_t stats_calls = 0;
  // The next submits' outcomes (front first); OK when empty.
  std::deque<Status> refusals;
  // What Stats reports as tasks.active.
  uint64_t active = 0;
  // When false, submits stay unanswered until Release() (an in-flight SUBMIT).
  bool answer_submits = true;

  void Submit(std::vector<protocol::TaskSpec> specs,
              api::Callback<std::vector<uint64_t>> done) override {
    ++submit_calls;
    Status refusal = NextRefusal();
    if (!refusal.ok()) return Later([done, refusal] { done(refusal); }, true);
    std::vector<uint64_t> ids;
    for (auto& s : specs) {
      tasks.push_back(std::move(s));
      ids.push_back(tasks.size());
    }
    Later([done, ids] { done(ids); }, true);
  }
  void SubmitJob(protocol::JobSpec job, api::Callback<protocol::JobSubmitReply> done) override {
    ++submit_calls;
    Status refusal = NextRefusal();
    if (!refusal.ok()) return Later([done, refusal] { done(refusal); }, true);
    jobs.push_back(std::move(job));
    const uint64_t id = 1'000'000 + jobs.size() - 1;
    Later([done, id] { done(protocol::JobSubmitReply{0, id, 1, id + 1}); }, true);
  }
  void Get(uint64_t, bool, api::Callback<std::optional<protocol::TaskInfo>> done) override {
    Later([done] { done(std::optional<protocol::TaskInfo>()); }, false);
  }
  void GetJob(uint64_t, bool, api::Callback<protocol::JobInfo> done) override {
    Later([done] { done(NotFound("no job")); }, false);
  }
  void List(protocol::List, api::Callback<protocol::ListReply> done) override {
    Later([done] { done(protocol::ListReply{}); }, false);
  }
  void Cancel(uint64_t, api::Callback<protocol::TaskState> done) override {
    Later([done] { done(protocol::TaskState::kCancelled); }, false);
  }
  void CancelJob(uint64_t, api::Callback<protocol::JobInfo> done) override {
    Later([done] { done(NotFound("no job")); }, false);
  }
  void WatchTask(uint64_t id, Micros, api::Callback<protocol::TaskInfo> done) override {
    task_watches_[id].push_back(std::move(done));
  }
  void WatchJob(uint64_t id, Micros, api::Callback<protocol::JobInfo> done) override {
    job_watches_[id].push_back(std::move(done));
  }
  void Stats(api::Callback<std::map<std::string, uint64_t>> done) override {
    ++stats_calls;
    Later([this, done] { done(std::map<std::string, uint64_t>{{"tasks.active", active}}); }, false);
  }
  void Workers(api::Callback<std::vector<protocol::WorkerInfo>> done) override {
    Later([done] { done(std::vector<protocol::WorkerInfo>{}); }, false);
  }
  void DeadList(uint64_t, uint32_t, api::Callback<protocol::DeadListReply> done) override {
    Later([done] { done(protocol::DeadListReply{}); }, false);
  }
  void DeadRequeue(std::vector<uint64_t>, bool, api::Callback<protocol::DeadReply> done) override {
    Later([done] { done(protocol::DeadReply{}); }, false);
  }
  void DeadPurge(std::vector<uint64_t>, bool, api::Callback<protocol::DeadReply> done) override {
    Later([done] { done(protocol::DeadReply{}); }, false);
  }
  size_t AddTo(transport::Poller& poller) override { return poller.AddFd(-1); }
  void Process() override {
    auto ready = std::move(ready_);
    ready_.clear();
    for (auto& f : ready) f();
  }
  size_t Outstanding() const override {
    return ready_.size() + held_.size() + task_watches_.size() + job_watches_.size();
  }

  // Answers the submits held while answer_submits was false.
  void Release() {
    for (auto& f : held_) ready_.push_back(std::move(f));
    held_.clear();
  }
  // Ends a watched task or job: its watchers' callbacks run in the next Process().
  void FinishTask(uint64_t id, protocol::TaskState state, std::string result,
                  std::string error = "") {
    protocol::TaskInfo t;
    t.id = id;
    t.state = state;
    t.result = std::move(result);
    t.error = std::move(error);
    for (auto& cb : task_watches_[id]) ready_.push_back([cb, t] { cb(t); });
    task_watches_.erase(id);
  }
  void FinishJob(uint64_t id, protocol::JobState state, std::string result) {
    protocol::JobInfo j;
    j.id = id;
    j.state = state;
    j.result = std::move(result);
    for (auto& cb : job_watches_[id]) ready_.push_back([cb, j] { cb(j); });
    job_watches_.erase(id);
  }
  bool watching_task(uint64_t id) const { return task_watches_.count(id) > 0; }

 private:
  Status NextRefusal() {
    if (refusals.empty()) return Status::Ok();
    Status st = refusals.front();
    refusals.pop_front();
    return st;
  }
  void Later(std::function<void()> f, bool is_submit) {
    if (is_submit && !answer_submits) {
      held_.push_back(std::move(f));
    } else {
      ready_.push_back(std::move(f));
    }
  }
  std::vector<std::function<void()>> ready_, held_;
  std::map<uint64_t, std::vector<api::Callback<protocol::TaskInfo>>> task_watches_;
  std::map<uint64_t, std::vector<api::Callback<protocol::JobInfo>>> job_watches_;
};

}  // namespace yard::testing
