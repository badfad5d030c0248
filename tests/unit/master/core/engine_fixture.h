// The engine test fixture: a fake clock, an engine and helpers that play the server's part.
// Shared by engine_test.cc and scheduling_test.cc.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "master/core/engine.h"
#include "tests/fakes/fake_clock.h"
#include "tests/testing/task_spec.h"

namespace yard::core {

using protocol::DisconnectReason;
using protocol::Outcome;
using protocol::TaskInfo;
using protocol::TaskMsg;
using protocol::TaskSpec;
using protocol::TaskState;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

using testing::Spec;

// Tasks sent by one Dispatch call: per connection, in order, and how many TASKS messages.
struct Sent {
  std::map<ConnId, std::vector<TaskMsg>> tasks;
  std::map<ConnId, size_t> messages;
  size_t total() const {
    size_t n = 0;
    for (const auto& [conn, t] : tasks) n += t.size();
    return n;
  }
  std::vector<uint64_t> Ids(const ConnId& conn) const {
    std::vector<uint64_t> ids;
    auto it = tasks.find(conn);
    if (it == tasks.end()) return ids;
    for (const auto& t : it->second) ids.push_back(t.id);
    return ids;
  }
};

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() {
    config_.default_timeout_ms = 10000;
    config_.default_max_attempts = 3;
    config_.heartbeat_ms = 1000;
    config_.liveness = 3;
    // Retries go back to the queue at once unless a test asks for a back-off.
    config_.retry_backoff = 0;
    config_.retry_backoff_max = 0;
    config_.seed = 1;
    Restart();
  }

  // Builds a fresh engine from config_.
  void Restart() {
    ASSERT_TRUE(config_.Validate().ok());
    engine_ = std::make_unique<Engine>(config_);
  }

  Engine& engine() { return *engine_; }
  Now now() const { return {clock_.Now(), clock_.WallNow()}; }
  void Advance(Micros d) { clock_.Advance(d); }
  Micros DeadAfter() const { return Micros{config_.liveness} * config_.heartbeat_ms * kMillis; }

  std::vector<uint64_t> Submit(const std::vector<TaskSpec>& specs, Effects* fx_out = nullptr) {
    Effects fx;
    auto ids = engine().Submit(specs, now(), fx);
    if (ids.ok()) engine().OnCommitted(*ids);  // as the server does after its commit
    EXPECT_TRUE(ids.ok()) << ids.status().ToString();
    if (fx_out) *fx_out = std::move(fx);
    return ids.ok() ? *ids : std::vector<uint64_t>{};
  }
  uint64_t SubmitOne(const TaskSpec& spec) {
    auto ids = Submit({spec});
    return ids.empty() ? 0 : ids[0];
  }

  // Submits a job and commits its records, as the server does.
  StatusOr<protocol::JobSubmitReply> SubmitJob(const protocol::JobSpec& spec,
                                               Effects* fx_out = nullptr) {
    Effects fx;
    auto r = engine().SubmitJob(spec, now(), fx);
    engine().OnCommitted(fx.created);
    if (fx_out) *fx_out = std::move(fx);
    return r;
  }

  Effects Join(const ConnId& conn, const std::string& worker_id,
               std::vector<std::string> handlers = {"echo"}, uint32_t credit = 10,
               uint64_t incarnation = 1) {
    protocol::Hello h;
    h.worker_id = worker_id;
    h.incarnation = incarnation;
    h.handlers = std::move(handlers);
    h.slots = 2;
    h.credit = credit;
    h.hostname = "host-" + worker_id;
    h.pid = 100;
    Effects fx;
    engine().OnHello(conn, h, now(), fx);
    return fx;
  }

  Sent Dispatch() {
    Sent s;
    for (auto& [conn, batch] : engine().Dispatch(now())) {
      ++s.messages[conn];
      auto& v = s.tasks[conn];
      v.insert(v.end(), batch.tasks.begin(), batch.tasks.end());
    }
    return s;
  }

  // Dispatches and expects exactly one task, to `conn`.
  TaskMsg DispatchOne(const ConnId& conn) {
    Sent s = Dispatch();
    EXPECT_EQ(s.total(), 1u);
    EXPECT_THAT(s.tasks[conn], SizeIs(1));
    return s.tasks[conn].empty() ? TaskMsg{} : s.tasks[conn][0];
  }

  Effects Report(const ConnId& conn, uint64_t id, uint32_t attempt, Outcome outcome,
                 const std::string& text = "", uint32_t credit = 1) {
    protocol::ResultMsg r;
    r.id = id;
    r.attempt = attempt;
    r.outcome = outcome;
    if (outcome == Outcome::kOk) {
      r.output = text;
    } else {
      r.error = text;
    }
    r.duration_us = 5;
    Effects fx;
    engine().OnResults(conn, protocol::Results{credit, {r}}, now(), fx);
    return fx;
  }
  Effects Report(const ConnId& conn, const TaskMsg& t, Outcome outcome,
                 const std::string& text = "", uint32_t credit = 1) {
    return Report(conn, t.id, t.attempt, outcome, text, credit);
  }

  Effects Tick() {
    Effects fx;
    engine().Tick(now(), fx);
    return fx;
  }

  uint64_t Stat(const std::string& name) {
    const auto stats = engine().Stats();
    auto it = stats.find(name);
    return it == stats.end() ? 0 : it->second;
  }

  TaskState StateOf(uint64_t id) {
    const std::optional<TaskInfo> t = engine().Find(id);
    EXPECT_TRUE(t.has_value()) << "task " << id << " is not active";
    return t ? t->state : TaskState::kDead;
  }

  const protocol::WorkerInfo* Info(const std::string& worker_id) {
    infos_ = engine().WorkerInfos(now());
    for (const auto& w : infos_) {
      if (w.worker_id == worker_id) return &w;
    }
    return nullptr;
  }

  static const TaskInfo* Record(const Effects& fx, uint64_t id) {
    const TaskInfo* last = nullptr;
    for (const auto& r : fx.store_puts) {
      if (r.id == id) last = &r;
    }
    return last;
  }

  static std::vector<protocol::TaskRef> Acked(const Effects& fx, const ConnId& conn) {
    std::vector<protocol::TaskRef> refs;
    for (const auto& [c, ack] : fx.acks) {
      if (c == conn) refs.insert(refs.end(), ack.refs.begin(), ack.refs.end());
    }
    return refs;
  }

  yard::testing::FakeClock clock_;
  EngineConfig config_;
  std::unique_ptr<Engine> engine_;
  std::vector<protocol::WorkerInfo> infos_;
};

}  // namespace yard::core
