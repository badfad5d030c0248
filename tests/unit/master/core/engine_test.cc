#include "tests/unit/master/core/engine_fixture.h"

namespace yard::core {
namespace {

// ------------------------------------------------------------------ config

TEST_F(EngineTest, ConfigValidationRejectsZeroes) {
  EXPECT_TRUE(EngineConfig{}.Validate().ok());
  auto bad = [](auto mutate) {
    EngineConfig c;
    mutate(c);
    return c.Validate().code();
  };
  EXPECT_EQ(bad([](EngineConfig& c) { c.heartbeat_ms = 0; }), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](EngineConfig& c) { c.liveness = 0; }), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](EngineConfig& c) { c.max_batch = 0; }), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](EngineConfig& c) { c.default_timeout_ms = 0; }), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](EngineConfig& c) { c.default_max_attempts = 0; }), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](EngineConfig& c) { c.max_active = 0; }), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](EngineConfig& c) { c.first_task_id = 0; }), StatusCode::kInvalidArgument);
}

// ------------------------------------------------------------------ submit

TEST_F(EngineTest, SubmitAssignsIncreasingIdsAndRecordsQueuedTasks) {
  Effects fx;
  const auto ids = Submit({Spec("echo", "a"), Spec("sleep", "b", "", 0, 7, 1234)}, &fx);
  EXPECT_THAT(ids, ElementsAre(1, 2));
  ASSERT_THAT(fx.store_puts, SizeIs(2));
  const TaskInfo& a = fx.store_puts[0];
  EXPECT_EQ(a.id, 1u);
  EXPECT_EQ(a.type, "echo");
  EXPECT_EQ(a.payload, "a");
  EXPECT_EQ(a.state, TaskState::kQueued);
  EXPECT_EQ(a.attempt, 0u);
  EXPECT_EQ(a.max_attempts, config_.default_max_attempts);
  EXPECT_EQ(a.timeout_ms, config_.default_timeout_ms);
  EXPECT_EQ(a.submitted_us, clock_.WallNow());
  const TaskInfo& b = fx.store_puts[1];
  EXPECT_EQ(b.priority, 0);
  EXPECT_EQ(b.max_attempts, 7u);
  EXPECT_EQ(b.timeout_ms, 1234u);
  EXPECT_THAT(fx.acks, IsEmpty());
  EXPECT_THAT(fx.finished, IsEmpty());
  EXPECT_EQ(Stat("tasks.submitted"), 2u);
  EXPECT_EQ(StateOf(1), TaskState::kQueued);
}

// The engine keeps active tasks in a compact form: the records it rebuilds (for Find and for
// the store) must still carry every field the spec set.
TEST_F(EngineTest, RecordsOfActiveTasksCarryEverySpecField) {
  TaskSpec spec = Spec("echo", "payload", "k1", 3, 4, 2500);
  spec.requirements = {"gpu", "arm", "gpu"};
  spec.idempotency_key = "idem-1";
  spec.delay_ms = 1000;
  spec.deadline_ms = 60000;
  Effects fx;
  const uint64_t id = Submit({spec}, &fx).at(0);
  const std::optional<TaskInfo> t = engine().Find(id);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->id, id);
  EXPECT_EQ(t->type, "echo");
  EXPECT_EQ(t->state, TaskState::kQueued);
  EXPECT_EQ(t->priority, 3);
  EXPECT_EQ(t->key, "k1");
  EXPECT_EQ(t->max_attempts, 4u);
  EXPECT_EQ(t->timeout_ms, 2500u);
  EXPECT_EQ(t->payload, "payload");
  EXPECT_EQ(t->idempotency_key, "idem-1");
  EXPECT_EQ(t->requirements, (std::vector<std::string>{"arm", "gpu"}));
  EXPECT_EQ(t->submitted_us, clock_.WallNow());
  EXPECT_EQ(t->run_after_us, clock_.WallNow() + 1000 * kMillis);
  EXPECT_EQ(t->deadline_us, clock_.WallNow() + 60000 * kMillis);
  EXPECT_TRUE(t->worker.empty());
  EXPECT_TRUE(t->error.empty());
  const TaskInfo* stored = Record(fx, id);
  ASSERT_NE(stored, nullptr);
  EXPECT_EQ(stored->payload, "payload");
  EXPECT_EQ(stored->key, "k1");
  EXPECT_EQ(stored->idempotency_key, "idem-1");
  EXPECT_EQ(stored->requirements, t->requirements);
  EXPECT_EQ(stored->deadline_us, t->deadline_us);
  // A listing leaves the payload out.
  protocol::List all;
  const auto listed = engine().ListActive(all, 10);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].key, "k1");
  EXPECT_TRUE(listed[0].payload.empty());
}

TEST_F(EngineTest, SubmitStartsAtTheConfiguredFirstId) {
  config_.first_task_id = 1000;
  Restart();
  EXPECT_THAT(Submit({Spec(), Spec()}), ElementsAre(1000, 1001));
}

TEST_F(EngineTest, SubmitRejectsAnEmptyType) {
  Effects fx;
  auto r = engine().Submit({Spec("")}, now(), fx);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("task 0"));
  EXPECT_THAT(r.status().message(), HasSubstr("type"));
}

TEST_F(EngineTest, SubmitRejectsPriorityTen) {
  Effects fx;
  auto r = engine().Submit({Spec("echo", "p", "", 10)}, now(), fx);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("priority"));
  EXPECT_TRUE(engine().Submit({Spec("echo", "p", "", 9)}, now(), fx).ok());
}

TEST_F(EngineTest, SubmitRejectsPayloadOverTheLimit) {
  config_.max_payload_bytes = 16;
  Restart();
  Effects fx;
  EXPECT_TRUE(engine().Submit({Spec("echo", std::string(16, 'x'))}, now(), fx).ok());
  auto r = engine().Submit({Spec("echo", std::string(17, 'x'))}, now(), fx);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("payload"));
}

TEST_F(EngineTest, SubmitRejectsOverlongTypesKeysAndTimeouts) {
  Effects fx;
  EXPECT_EQ(engine().Submit({Spec(std::string(129, 't'))}, now(), fx).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(engine().Submit({Spec("echo", "", std::string(257, 'k'))}, now(), fx).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(engine()
                .Submit({Spec("echo", "", "", 5, 0, 24u * 3600 * 1000 + 1)}, now(), fx)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

TEST_F(EngineTest, RepeatedIdempotencyKeyReturnsTheFirstTask) {
  TaskSpec s = Spec();
  s.idempotency_key = "order-1";
  Effects fx;
  const std::vector<uint64_t> first = Submit({s, Spec()}, &fx);
  ASSERT_THAT(first, SizeIs(2));
  ASSERT_THAT(fx.idem_puts, SizeIs(1));
  EXPECT_EQ(fx.idem_puts[0].key, "order-1");
  EXPECT_EQ(fx.idem_puts[0].id, first[0]);
  EXPECT_EQ(fx.idem_puts[0].expires_us, clock_.WallNow() + config_.idempotency_ttl);
  EXPECT_EQ(Record(fx, first[0])->idempotency_key, "order-1");

  // Again later, and twice within one submit: no new task, the first id.
  Advance(kSeconds);
  Effects again;
  const std::vector<uint64_t> second = Submit({s, Spec(), s}, &again);
  ASSERT_THAT(second, SizeIs(3));
  EXPECT_EQ(second[0], first[0]);
  EXPECT_EQ(second[2], first[0]);
  EXPECT_NE(second[1], first[1]);
  EXPECT_THAT(again.idem_puts, IsEmpty());
  EXPECT_THAT(again.store_puts, SizeIs(1));
  EXPECT_EQ(Stat("tasks.deduplicated"), 2u);
  EXPECT_EQ(Stat("tasks.submitted"), 3u);
}

TEST_F(EngineTest, TwoNewSpecsWithOneKeyInOneSubmitMakeOneTask) {
  TaskSpec s = Spec();
  s.idempotency_key = "k";
  Effects fx;
  const auto ids = Submit({s, s}, &fx);
  ASSERT_THAT(ids, SizeIs(2));
  EXPECT_EQ(ids[0], ids[1]);
  EXPECT_THAT(fx.store_puts, SizeIs(1));
  EXPECT_THAT(fx.idem_puts, SizeIs(1));
}

TEST_F(EngineTest, IdempotencyKeyIsForgottenAfterItsTtl) {
  config_.idempotency_ttl = 10 * kSeconds;
  Restart();
  TaskSpec s = Spec();
  s.idempotency_key = "k";
  const uint64_t first = SubmitOne(s);
  Advance(10 * kSeconds - 1);
  EXPECT_EQ(SubmitOne(s), first);
  Advance(1);
  Tick();
  EXPECT_EQ(Stat("idempotency.keys"), 0u);
  EXPECT_NE(SubmitOne(s), first);
}

TEST_F(EngineTest, RestoredIdempotencyKeysStillDeduplicate) {
  engine().RestoreIdempotencyKey("late", 77, clock_.WallNow() + 5 * kSeconds);
  engine().RestoreIdempotencyKey("early", 76, clock_.WallNow() + kSeconds);
  engine().FinishRestore(now());
  TaskSpec s = Spec();
  s.idempotency_key = "late";
  EXPECT_EQ(SubmitOne(s), 77u);
  Advance(2 * kSeconds);
  s.idempotency_key = "early";
  EXPECT_NE(SubmitOne(s), 76u) << "expired while the master was down or since";
  s.idempotency_key = "late";
  EXPECT_EQ(SubmitOne(s), 77u);
}

TEST_F(EngineTest, IdempotencyKeyLengthIsBounded) {
  TaskSpec s = Spec();
  s.idempotency_key = std::string(257, 'k');
  Effects fx;
  EXPECT_EQ(engine().Submit({s}, now(), fx).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(EngineTest, SubmitIsAllOrNothing) {
  Effects fx;
  auto r = engine().Submit({Spec(), Spec(), Spec("echo", "p", "", 10)}, now(), fx);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("task 2"));
  EXPECT_THAT(fx.store_puts, IsEmpty());
  EXPECT_EQ(engine().active(), 0u);
  EXPECT_EQ(engine().queued(), 0u);
  EXPECT_FALSE(engine().Find(1));
  EXPECT_EQ(Stat("tasks.submitted"), 0u);
  // No id was used up by the refused batch.
  EXPECT_THAT(Submit({Spec()}), ElementsAre(1));
}

TEST_F(EngineTest, SubmitRefusesWhenTheQueueIsFull) {
  config_.max_active = 3;
  Restart();
  EXPECT_THAT(Submit({Spec(), Spec()}), SizeIs(2));
  Effects fx;
  auto r = engine().Submit({Spec(), Spec()}, now(), fx);
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(fx.store_puts, IsEmpty());
  EXPECT_EQ(Stat("rejected.queue_full"), 2u);
  EXPECT_EQ(engine().active(), 2u);
  EXPECT_THAT(Submit({Spec()}), SizeIs(1));  // exactly up to the limit
  EXPECT_EQ(engine().Submit({Spec()}, now(), fx).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(Stat("rejected.queue_full"), 3u);
}

TEST_F(EngineTest, DispatchedTasksCountTowardsTheQueueLimitUntilTheyFinish) {
  config_.max_active = 1;
  Restart();
  Join("c1", "w1");
  const uint64_t id = SubmitOne(Spec());
  const TaskMsg t = DispatchOne("c1");
  Effects fx;
  EXPECT_EQ(engine().Submit({Spec()}, now(), fx).status().code(), StatusCode::kResourceExhausted);
  Report("c1", t, Outcome::kOk);
  EXPECT_FALSE(engine().Find(id));
  EXPECT_TRUE(engine().Submit({Spec()}, now(), fx).ok());
}

TEST_F(EngineTest, SubmittedTaskIsDispatchedOnlyAfterItsCommit) {
  Join("c1", "w1");
  Effects fx;
  auto ids = engine().Submit({Spec("echo", "a"), Spec("echo", "b", "k"), Spec("echo", "c", "k")},
                             now(), fx);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(Dispatch().total(), 0u) << "nothing leaves before the commit";
  EXPECT_EQ(engine().Stats().at("tasks.ready"), 0u);
  engine().OnCommitted(*ids);
  const Sent s = Dispatch();
  EXPECT_THAT(s.Ids("c1"), ElementsAre((*ids)[0], (*ids)[1])) << "the key's second task waits";
}

// ------------------------------------------------------------------ workers joining

TEST_F(EngineTest, HelloIsAnsweredWithWelcome) {
  config_.max_batch = 17;
  Restart();
  const Effects fx = Join("c1", "w1", {"echo"}, 5);
  ASSERT_THAT(fx.welcomes, SizeIs(1));
  EXPECT_EQ(fx.welcomes[0].first, "c1");
  const protocol::Welcome& w = fx.welcomes[0].second;
  EXPECT_GT(w.session, 0u);
  EXPECT_EQ(w.heartbeat_ms, config_.heartbeat_ms);
  EXPECT_EQ(w.liveness, config_.liveness);
  EXPECT_EQ(w.max_batch, 17u);
  EXPECT_EQ(w.max_message_bytes, config_.max_message_bytes);
  EXPECT_THAT(fx.disconnects, IsEmpty());
  EXPECT_TRUE(engine().IsKnownWorker("c1"));
  EXPECT_EQ(Stat("workers.connected"), 1u);
  EXPECT_EQ(Stat("workers.registered"), 1u);

  const Effects second = Join("c2", "w2");
  ASSERT_THAT(second.welcomes, SizeIs(1));
  EXPECT_NE(second.welcomes[0].second.session, w.session);
}

TEST_F(EngineTest, MalformedHelloIsRefused) {
  const Effects no_id = Join("c1", "");
  ASSERT_THAT(no_id.disconnects, SizeIs(1));
  EXPECT_EQ(no_id.disconnects[0].second.reason, DisconnectReason::kProtocolError);
  EXPECT_THAT(no_id.welcomes, IsEmpty());

  const Effects no_handlers = Join("c2", "w2", {});
  ASSERT_THAT(no_handlers.disconnects, SizeIs(1));
  EXPECT_EQ(no_handlers.disconnects[0].second.reason, DisconnectReason::kProtocolError);

  const Effects empty_handler = Join("c3", "w3", {"echo", ""});
  ASSERT_THAT(empty_handler.disconnects, SizeIs(1));

  EXPECT_FALSE(engine().IsKnownWorker("c1"));
  EXPECT_FALSE(engine().IsKnownWorker("c2"));
  EXPECT_FALSE(engine().IsKnownWorker("c3"));
  EXPECT_EQ(Stat("rejected.bad_hello"), 3u);
  EXPECT_EQ(Stat("workers.connected"), 0u);
}

// ------------------------------------------------------------------ dispatch

TEST_F(EngineTest, NothingIsDispatchedWithoutWorkers) {
  SubmitOne(Spec());
  EXPECT_EQ(Dispatch().total(), 0u);
  EXPECT_EQ(StateOf(1), TaskState::kQueued);
}

TEST_F(EngineTest, DispatchFillsTheTaskMessage) {
  Join("c1", "w1");
  const uint64_t id = SubmitOne(Spec("echo", std::string("\x00\xff", 2), "", 5, 0, 2500));
  Advance(7 * kMillis);
  const TaskMsg t = DispatchOne("c1");
  EXPECT_EQ(t.id, id);
  EXPECT_EQ(t.attempt, 1u);
  EXPECT_EQ(t.type, "echo");
  EXPECT_EQ(t.payload, std::string("\x00\xff", 2));
  EXPECT_EQ(t.lease_ms, 2500u);
  const std::optional<TaskInfo> info = engine().Find(id);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->state, TaskState::kDispatched);
  EXPECT_EQ(info->attempt, 1u);
  EXPECT_EQ(info->worker, "w1");
  EXPECT_EQ(info->dispatched_us, clock_.WallNow());
}

TEST_F(EngineTest, DispatchNeverExceedsTheCreditAWorkerGranted) {
  Join("c1", "w1", {"echo"}, 2);
  Submit(std::vector<TaskSpec>(5, Spec()));
  EXPECT_EQ(Dispatch().total(), 2u);
  EXPECT_EQ(Dispatch().total(), 0u);
  engine().OnCredit("c1", 1);
  EXPECT_EQ(Dispatch().total(), 1u);
  // A result's credit opens the window again.
  const auto held = engine().WorkerInfos(now());
  ASSERT_THAT(held, SizeIs(1));
  EXPECT_EQ(held[0].credit, 0u);
  EXPECT_EQ(held[0].inflight, 3u);
  Report("c1", 1, 1, Outcome::kOk, "", 2);
  EXPECT_EQ(Dispatch().total(), 2u);
  EXPECT_EQ(Dispatch().total(), 0u);
}

// Property: whatever mix of submits, results and credit arrives, no worker ever receives more
// tasks than the credit it has granted in total, no task is out twice at once, and every task
// ends exactly once.
TEST_F(EngineTest, DispatchNeverExceedsCreditUnderRandomTraffic) {
  config_.max_batch = 3;
  config_.default_max_attempts = 4;
  Restart();
  std::mt19937 rng(12345);
  auto pick = [&](uint32_t lo, uint32_t hi) {
    return std::uniform_int_distribution<uint32_t>(lo, hi)(rng);
  };
  const std::vector<ConnId> conns = {"c1", "c2", "c3"};
  std::map<ConnId, uint64_t> granted, received;
  std::map<ConnId, std::vector<TaskMsg>> holding;
  std::set<uint64_t> out;  // tasks currently at some worker
  std::set<uint64_t> submitted;
  std::multiset<uint64_t> finished;
  auto absorb = [&](const Effects& fx) {
    for (uint64_t id : fx.finished) finished.insert(id);
  };
  for (const auto& c : conns) {
    const uint32_t credit = pick(0, 4);
    granted[c] += credit;
    Join(c, "w-" + c, {"echo"}, credit);
  }
  auto dispatch_and_check = [&] {
    Sent s = Dispatch();
    for (auto& [conn, tasks] : s.tasks) {
      received[conn] += tasks.size();
      ASSERT_LE(received[conn], granted[conn]) << conn << " got more tasks than it granted";
      for (const auto& t : tasks) {
        ASSERT_TRUE(out.insert(t.id).second) << "task " << t.id << " is out twice";
        holding[conn].push_back(t);
      }
    }
    for (const auto& [conn, n] : s.messages) {
      ASSERT_LE(s.tasks[conn].size(), n * config_.max_batch);
    }
  };
  for (int step = 0; step < 3000; ++step) {
    switch (pick(0, 4)) {
      case 0: {  // submit
        std::vector<TaskSpec> specs(pick(1, 6), Spec());
        for (uint64_t id : Submit(specs)) submitted.insert(id);
        break;
      }
      case 1:
      case 2:
        dispatch_and_check();
        break;
      case 3: {  // a worker reports some of what it holds
        const ConnId& c = conns[pick(0, 2)];
        auto& held = holding[c];
        if (held.empty()) break;
        std::shuffle(held.begin(), held.end(), rng);
        const size_t n = pick(1, static_cast<uint32_t>(held.size()));
        protocol::Results results;
        results.credit = pick(0, static_cast<uint32_t>(n) + 1);
        granted[c] += results.credit;
        for (size_t i = 0; i < n; ++i) {
          const TaskMsg& t = held[held.size() - 1 - i];
          const uint32_t roll = pick(0, 9);
          const Outcome o = roll < 6   ? Outcome::kOk
                            : roll < 8 ? Outcome::kFailRetry
                            : roll < 9 ? Outcome::kReleased
                                       : Outcome::kFailPermanent;
          results.results.push_back({t.id, t.attempt, o, "out", o == Outcome::kOk ? "" : "e", 1});
          out.erase(t.id);
        }
        held.resize(held.size() - n);
        Effects fx;
        engine().OnResults(c, results, now(), fx);
        absorb(fx);
        EXPECT_THAT(Acked(fx, c), SizeIs(n));
        break;
      }
      case 4: {  // extra credit
        const ConnId& c = conns[pick(0, 2)];
        const uint32_t credit = pick(0, 3);
        granted[c] += credit;
        engine().OnCredit(c, credit);
        break;
      }
    }
    if (HasFatalFailure()) return;
  }
  // Drain: plenty of credit, every result ok.
  for (int round = 0; round < 1000 && finished.size() < submitted.size(); ++round) {
    for (const auto& c : conns) {
      granted[c] += 5;
      engine().OnCredit(c, 5);
    }
    dispatch_and_check();
    if (HasFatalFailure()) return;
    for (const auto& c : conns) {
      protocol::Results results;
      for (const auto& t : holding[c]) {
        results.results.push_back({t.id, t.attempt, Outcome::kOk, "", "", 1});
        out.erase(t.id);
      }
      holding[c].clear();
      Effects fx;
      engine().OnResults(c, results, now(), fx);
      absorb(fx);
    }
  }
  EXPECT_EQ(finished.size(), submitted.size());
  EXPECT_EQ(std::set<uint64_t>(finished.begin(), finished.end()), submitted);
  EXPECT_EQ(engine().active(), 0u);
  EXPECT_EQ(Stat("tasks.queued"), 0u);
  EXPECT_EQ(Stat("tasks.running"), 0u);
  EXPECT_GT(Stat("tasks.succeeded"), 0u);
  EXPECT_GT(Stat("tasks.retried"), 0u);
}

TEST_F(EngineTest, TasksGoOnlyToWorkersThatRegisteredTheirType) {
  Join("c-echo", "w-echo", {"echo"});
  Join("c-sleep", "w-sleep", {"sleep", "cpu"});
  const uint64_t e1 = SubmitOne(Spec("echo"));
  const uint64_t s1 = SubmitOne(Spec("sleep"));
  const uint64_t c1 = SubmitOne(Spec("cpu"));
  const uint64_t unknown = SubmitOne(Spec("resize"));
  const uint64_t e2 = SubmitOne(Spec("echo"));
  const Sent s = Dispatch();
  EXPECT_THAT(s.Ids("c-echo"), ElementsAre(e1, e2));
  EXPECT_THAT(s.Ids("c-sleep"), ElementsAre(s1, c1));
  EXPECT_EQ(StateOf(unknown), TaskState::kQueued);
  EXPECT_EQ(Stat("tasks.ready"), 1u);
  // It stays queued however often dispatch runs, until a worker for it joins.
  EXPECT_EQ(Dispatch().total(), 0u);
  Join("c-resize", "w-resize", {"resize"});
  EXPECT_THAT(Dispatch().Ids("c-resize"), ElementsAre(unknown));
}

TEST_F(EngineTest, HigherPriorityRunsFirst) {
  Join("c1", "w1", {"echo"}, 0);
  const uint64_t low = SubmitOne(Spec("echo", "low", "", 9));
  const uint64_t mid = SubmitOne(Spec("echo", "mid", "", 5));
  const uint64_t high = SubmitOne(Spec("echo", "high", "", 0));
  std::vector<uint64_t> order;
  for (int i = 0; i < 3; ++i) {
    engine().OnCredit("c1", 1);
    order.push_back(DispatchOne("c1").id);
  }
  EXPECT_THAT(order, ElementsAre(high, mid, low));
}

TEST_F(EngineTest, PriorityOrdersAcrossTypes) {
  Join("c1", "w1", {"echo", "sleep"}, 0);
  const uint64_t echo_low = SubmitOne(Spec("echo", "", "", 7));
  const uint64_t sleep_high = SubmitOne(Spec("sleep", "", "", 1));
  engine().OnCredit("c1", 1);
  EXPECT_EQ(DispatchOne("c1").id, sleep_high);
  engine().OnCredit("c1", 1);
  EXPECT_EQ(DispatchOne("c1").id, echo_low);
}

TEST_F(EngineTest, SamePriorityIsFirstInFirstOut) {
  Join("c1", "w1", {"echo"}, 0);
  const auto ids = Submit(std::vector<TaskSpec>(6, Spec()));
  std::vector<uint64_t> order;
  for (int i = 0; i < 3; ++i) {
    engine().OnCredit("c1", 2);
    for (uint64_t id : Dispatch().Ids("c1")) order.push_back(id);
  }
  EXPECT_EQ(order, ids);
}

TEST_F(EngineTest, BatchesRespectMaxBatch) {
  config_.max_batch = 3;
  Restart();
  Join("c1", "w1", {"echo"}, 100);
  const auto ids = Submit(std::vector<TaskSpec>(8, Spec()));
  const auto batches = engine().Dispatch(now());
  ASSERT_THAT(batches, SizeIs(3));
  std::vector<uint64_t> all;
  for (const auto& [conn, tasks] : batches) {
    EXPECT_EQ(conn, "c1");
    EXPECT_LE(tasks.tasks.size(), 3u);
    for (const auto& t : tasks.tasks) all.push_back(t.id);
  }
  EXPECT_EQ(batches[0].second.tasks.size(), 3u);
  EXPECT_EQ(batches[2].second.tasks.size(), 2u);
  EXPECT_EQ(all, ids);
  EXPECT_EQ(Stat("tasks.dispatches"), 8u);
}

TEST_F(EngineTest, BatchesRespectMaxBatchBytes) {
  config_.max_batch = 100;
  config_.max_batch_bytes = 10;
  Restart();
  Join("c1", "w1", {"echo"}, 100);
  const auto ids =
      Submit({Spec("echo", "aaaa"), Spec("echo", "bbbb"), Spec("echo", "cccc"),
              Spec("echo", "dddd"), Spec("echo", std::string(25, 'e')), Spec("echo", "f")});
  const auto batches = engine().Dispatch(now());
  std::vector<size_t> sizes;
  std::vector<uint64_t> all;
  for (const auto& [conn, tasks] : batches) {
    sizes.push_back(tasks.tasks.size());
    for (const auto& t : tasks.tasks) all.push_back(t.id);
  }
  // 4+4 fit in 10 bytes; a 25-byte payload travels alone rather than not at all.
  EXPECT_THAT(sizes, ElementsAre(2, 2, 1, 1));
  EXPECT_EQ(all, ids);
}

TEST_F(EngineTest, SpreadsReadyTasksOverWorkers) {
  Join("c1", "w1", {"echo"}, 100);
  Join("c2", "w2", {"echo"}, 100);
  Submit(std::vector<TaskSpec>(10, Spec()));
  const Sent s = Dispatch();
  EXPECT_EQ(s.total(), 10u);
  EXPECT_THAT(s.Ids("c1"), SizeIs(5));
  EXPECT_THAT(s.Ids("c2"), SizeIs(5));
}

// ------------------------------------------------------------------ keys

TEST_F(EngineTest, TasksWithOneKeyRunOneAtATimeInSubmitOrder) {
  Join("c1", "w1", {"echo"}, 10);
  const auto ids = Submit({Spec("echo", "1", "k"), Spec("echo", "2", "k"), Spec("echo", "3", "k")});
  EXPECT_EQ(Stat("tasks.queued"), 3u);
  EXPECT_EQ(Stat("tasks.ready"), 1u);
  std::vector<uint64_t> order;
  for (int i = 0; i < 3; ++i) {
    const Sent s = Dispatch();
    ASSERT_EQ(s.total(), 1u) << "round " << i;
    const TaskMsg t = s.tasks.at("c1")[0];
    order.push_back(t.id);
    EXPECT_EQ(Dispatch().total(), 0u) << "the next of the key waits for this one";
    Report("c1", t, Outcome::kOk);
  }
  EXPECT_EQ(order, ids);
}

TEST_F(EngineTest, KeyHeadStaysHeadThroughARetry) {
  Join("c1", "w1", {"echo"}, 10);
  const auto ids = Submit({Spec("echo", "a", "k"), Spec("echo", "b", "k")});
  const TaskMsg first = DispatchOne("c1");
  EXPECT_EQ(first.id, ids[0]);
  Report("c1", first, Outcome::kFailRetry, "flaky");
  const TaskMsg again = DispatchOne("c1");
  EXPECT_EQ(again.id, ids[0]) << "the second task of the key must not overtake the first";
  EXPECT_EQ(again.attempt, 2u);
  Report("c1", again, Outcome::kReleased);
  const TaskMsg third = DispatchOne("c1");
  EXPECT_EQ(third.id, ids[0]);
  Report("c1", third, Outcome::kOk);
  EXPECT_EQ(DispatchOne("c1").id, ids[1]);
}

TEST_F(EngineTest, KeyLineMovesOnWhenTheHeadFails) {
  Join("c1", "w1", {"echo"}, 10);
  const auto ids = Submit({Spec("echo", "a", "k"), Spec("echo", "b", "k")});
  Report("c1", DispatchOne("c1"), Outcome::kFailPermanent, "bad input");
  EXPECT_EQ(DispatchOne("c1").id, ids[1]);
}

TEST_F(EngineTest, DifferentKeysRunInParallel) {
  Join("c1", "w1", {"echo"}, 10);
  const auto ids = Submit({Spec("echo", "", "k1"), Spec("echo", "", "k2"), Spec("echo", "", ""),
                           Spec("echo", "", "k1")});
  const Sent s = Dispatch();
  EXPECT_THAT(s.Ids("c1"), ElementsAre(ids[0], ids[1], ids[2]));
  EXPECT_EQ(StateOf(ids[3]), TaskState::kQueued);
}

// ------------------------------------------------------------------ results

TEST_F(EngineTest, OkResultSucceedsAndIsAcknowledgedAfterItsRecord) {
  Join("c1", "w1", {"echo"}, 1);
  const uint64_t id = SubmitOne(Spec("echo", "in"));
  const TaskMsg t = DispatchOne("c1");
  Advance(3 * kMillis);
  const Effects fx = Report("c1", t, Outcome::kOk, std::string("o\x00t", 3), 4);
  EXPECT_FALSE(engine().Find(id)) << "finished tasks leave the engine";
  const TaskInfo* rec = Record(fx, id);
  ASSERT_NE(rec, nullptr) << "the terminal record must be committed";
  EXPECT_EQ(rec->state, TaskState::kSucceeded);
  EXPECT_EQ(rec->result, std::string("o\x00t", 3));
  EXPECT_EQ(rec->error, "");
  EXPECT_EQ(rec->attempt, 1u);
  EXPECT_EQ(rec->worker, "w1");
  EXPECT_EQ(rec->finished_us, clock_.WallNow());
  EXPECT_THAT(Acked(fx, "c1"), ElementsAre(protocol::TaskRef{id, 1}));
  EXPECT_THAT(fx.finished, ElementsAre(id));
  EXPECT_EQ(Stat("tasks.succeeded"), 1u);
  EXPECT_EQ(Stat("results.received"), 1u);
  const auto* w = Info("w1");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->credit, 4u);
  EXPECT_EQ(w->inflight, 0u);
  EXPECT_EQ(w->completed, 1u);
}

TEST_F(EngineTest, FailRetryRequeuesUntilMaxAttemptsThenFails) {
  Join("c1", "w1", {"echo"}, 10);
  const uint64_t id = SubmitOne(Spec("echo", "p", "", 5, 3));
  for (uint32_t attempt = 1; attempt <= 2; ++attempt) {
    const TaskMsg t = DispatchOne("c1");
    EXPECT_EQ(t.attempt, attempt);
    const Effects fx = Report("c1", t, Outcome::kFailRetry, "boom " + std::to_string(attempt));
    EXPECT_EQ(StateOf(id), TaskState::kQueued);
    EXPECT_EQ(engine().Find(id)->failures, attempt);
    EXPECT_EQ(engine().Find(id)->error, "boom " + std::to_string(attempt));
    const TaskInfo* rec = Record(fx, id);
    ASSERT_NE(rec, nullptr) << "a counted failure is committed";
    EXPECT_EQ(rec->failures, attempt);
    EXPECT_THAT(Acked(fx, "c1"), SizeIs(1));
    EXPECT_THAT(fx.finished, IsEmpty());
  }
  EXPECT_EQ(Stat("tasks.retried"), 2u);
  const TaskMsg last = DispatchOne("c1");
  EXPECT_EQ(last.attempt, 3u);
  const Effects fx = Report("c1", last, Outcome::kFailRetry, "boom 3");
  EXPECT_FALSE(engine().Find(id));
  const TaskInfo* rec = Record(fx, id);
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(rec->state, TaskState::kDead);
  EXPECT_EQ(rec->failures, 3u);
  EXPECT_EQ(rec->worker, "w1");
  EXPECT_EQ(rec->payload, "p") << "a dead letter keeps its payload, to run again";
  EXPECT_THAT(rec->error, HasSubstr("gave up after 3"));
  EXPECT_THAT(rec->error, HasSubstr("boom 3"));
  EXPECT_THAT(fx.finished, ElementsAre(id));
  EXPECT_EQ(Stat("tasks.dead"), 1u);
  EXPECT_EQ(Dispatch().total(), 0u);
  EXPECT_EQ(Info("w1")->failed, 3u);
}

TEST_F(EngineTest, RetriesBackOffExponentiallyWithJitter) {
  config_.retry_backoff = kSeconds;
  config_.retry_backoff_max = 4 * kSeconds;
  Restart();
  Join("c1", "w1", {"echo"}, 10);
  const uint64_t id = SubmitOne(Spec("echo", "p", "", 5, 6));
  // Failure n waits base * 2^(n-1), capped at 4 s, jittered into its upper half.
  const std::vector<std::pair<Micros, Micros>> windows = {{500 * kMillis, kSeconds},
                                                          {kSeconds, 2 * kSeconds},
                                                          {2 * kSeconds, 4 * kSeconds},
                                                          {2 * kSeconds, 4 * kSeconds},
                                                          {2 * kSeconds, 4 * kSeconds}};
  for (size_t n = 0; n < windows.size(); ++n) {
    const TaskMsg t = DispatchOne("c1");
    const Effects fx = Report("c1", t, Outcome::kFailRetry, "boom");
    const TaskInfo* rec = Record(fx, id);
    ASSERT_NE(rec, nullptr);
    const Micros wait = rec->run_after_us - clock_.WallNow();
    EXPECT_GE(wait, windows[n].first) << "failure " << n + 1;
    EXPECT_LE(wait, windows[n].second) << "failure " << n + 1;
    EXPECT_EQ(Stat("tasks.scheduled"), 1u);
    ASSERT_TRUE(engine().NextDeadline().has_value());
    EXPECT_LE(*engine().NextDeadline(), clock_.Now() + wait);
    Advance(wait - 1);
    Tick();
    EXPECT_EQ(Dispatch().total(), 0u) << "dispatched before its back-off ended";
    Advance(1);
    engine().Touch("c1", now());
    Tick();
    EXPECT_EQ(Stat("tasks.scheduled"), 0u);
  }
  const Effects fx = Report("c1", DispatchOne("c1"), Outcome::kFailRetry, "boom");
  EXPECT_EQ(Record(fx, id)->state, TaskState::kDead);
}

TEST_F(EngineTest, JitterSpreadsTheRetriesOfABurst) {
  config_.retry_backoff = 10 * kSeconds;
  config_.retry_backoff_max = 10 * kSeconds;
  Restart();
  Join("c1", "w1", {"echo"}, 100);
  std::vector<TaskSpec> specs(50, Spec());
  Submit(specs);
  std::set<int64_t> run_after;
  Sent sent = Dispatch();
  for (const auto& t : sent.tasks["c1"]) {
    const Effects fx = Report("c1", t, Outcome::kFailRetry, "boom");
    run_after.insert(Record(fx, t.id)->run_after_us);
  }
  EXPECT_GT(run_after.size(), 45u);
  EXPECT_GE(*run_after.begin(), clock_.WallNow() + 5 * kSeconds);
  EXPECT_LE(*run_after.rbegin(), clock_.WallNow() + 10 * kSeconds);
}

TEST_F(EngineTest, CancelDuringBackOffEndsTheTask) {
  config_.retry_backoff = kSeconds;
  config_.retry_backoff_max = kSeconds;
  Restart();
  Join("c1", "w1", {"echo"}, 10);
  const uint64_t id = SubmitOne(Spec());
  Report("c1", DispatchOne("c1"), Outcome::kFailRetry, "boom");
  Effects fx;
  ASSERT_TRUE(engine().Cancel(id, now(), fx).ok());
  EXPECT_EQ(Stat("tasks.scheduled"), 0u);
  EXPECT_EQ(Stat("tasks.queued"), 0u);
  Advance(2 * kSeconds);
  engine().Touch("c1", now());
  Tick();
  EXPECT_EQ(Dispatch().total(), 0u);
}

TEST_F(EngineTest, KeyedTaskInBackOffHoldsItsLine) {
  config_.retry_backoff = kSeconds;
  config_.retry_backoff_max = kSeconds;
  Restart();
  Join("c1", "w1", {"echo"}, 10);
  const uint64_t a = SubmitOne(Spec("echo", "a", "k"));
  const uint64_t b = SubmitOne(Spec("echo", "b", "k"));
  const TaskMsg first = DispatchOne("c1");
  ASSERT_EQ(first.id, a);
  Report("c1", first, Outcome::kFailRetry, "boom");
  EXPECT_EQ(Dispatch().total(), 0u) << "b must wait for a's retry";
  Advance(kSeconds);
  engine().Touch("c1", now());
  Tick();
  EXPECT_EQ(DispatchOne("c1").id, a);
  (void)b;
}

TEST_F(EngineTest, ReadmitRunsADeadLetterAgainWithFreshAttempts) {
  Join("c1", "w1", {"echo"}, 10);
  const uint64_t id = SubmitOne(Spec("echo", "p", "", 5, 1));
  const Effects died = Report("c1", DispatchOne("c1"), Outcome::kFailRetry, "boom");
  TaskInfo dead = *Record(died, id);
  ASSERT_EQ(dead.state, TaskState::kDead);

  Effects fx;
  ASSERT_TRUE(engine().Readmit({dead}, now(), fx).ok());
  EXPECT_THAT(fx.dead_removed, ElementsAre(id));
  const TaskInfo* rec = Record(fx, id);
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(rec->state, TaskState::kQueued);
  EXPECT_EQ(rec->failures, 0u);
  EXPECT_EQ(rec->error, "");
  EXPECT_EQ(rec->payload, "p");
  EXPECT_EQ(Dispatch().total(), 0u) << "not before its record is committed";
  engine().OnCommitted({id});
  const TaskMsg again = DispatchOne("c1");
  EXPECT_EQ(again.id, id);
  EXPECT_EQ(again.attempt, 2u) << "(id, attempt) stays unique across the requeue";
  EXPECT_EQ(again.payload, "p");
  const Effects done = Report("c1", again, Outcome::kOk, "out");
  EXPECT_EQ(Record(done, id)->state, TaskState::kSucceeded);
  EXPECT_EQ(Stat("tasks.requeued"), 1u);
}

TEST_F(EngineTest, ReadmitRefusesTasksThatAreNotDeadOrAreActive) {
  const uint64_t id = SubmitOne(Spec());
  TaskInfo active = *engine().Find(id);
  Effects fx;
  EXPECT_EQ(engine().Readmit({active}, now(), fx).code(), StatusCode::kFailedPrecondition);
  active.state = TaskState::kDead;
  EXPECT_EQ(engine().Readmit({active}, now(), fx).code(), StatusCode::kFailedPrecondition);
  TaskInfo done = active;
  done.id = 999;
  done.state = TaskState::kSucceeded;
  EXPECT_EQ(engine().Readmit({done}, now(), fx).code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(fx.store_puts, IsEmpty());
}

TEST_F(EngineTest, RestoreRebuildsQueuesKeyLinesAndBackOffs) {
  auto rec = [&](uint64_t id, std::string key, uint8_t priority, int64_t run_after) {
    TaskInfo t;
    t.id = id;
    t.type = "echo";
    t.state = TaskState::kQueued;
    t.priority = priority;
    t.key = std::move(key);
    t.attempt = 1;
    t.max_attempts = 3;
    t.timeout_ms = 10000;
    t.payload = "p" + std::to_string(id);
    t.run_after_us = run_after;
    return t;
  };
  const int64_t wall = clock_.WallNow();
  // Any order in; key lines follow ids.
  for (auto& r : {rec(30, "k", 5, 0), rec(12, "", 1, wall + 5 * kSeconds), rec(20, "k", 0, 0),
                  rec(10, "", 9, 0)}) {
    engine().Restore(TaskInfo(r), now());
  }
  engine().FinishRestore(now());
  EXPECT_EQ(Stat("tasks.active"), 4u);
  EXPECT_EQ(Stat("tasks.queued"), 4u);
  EXPECT_EQ(Stat("tasks.scheduled"), 1u);
  engine().HoldDispatchUntil(clock_.Now() + DeadAfter());
  Join("c1", "w1", {"echo"}, 10);
  EXPECT_EQ(Dispatch().total(), 0u) << "held for one liveness period";
  ASSERT_TRUE(engine().NextDeadline().has_value());
  EXPECT_LE(*engine().NextDeadline(), clock_.Now() + DeadAfter());
  Advance(DeadAfter());
  engine().Touch("c1", now());
  Tick();
  Sent s = Dispatch();
  // 20 heads key k (30 waits behind it); 12 waits out its back-off.
  EXPECT_THAT(s.Ids("c1"), ElementsAre(20, 10));
  EXPECT_EQ(s.tasks["c1"][0].attempt, 2u);
  EXPECT_EQ(s.tasks["c1"][0].payload, "p20");
  Advance(2 * kSeconds);
  engine().Touch("c1", now());
  Tick();
  EXPECT_THAT(Dispatch().Ids("c1"), ElementsAre(12));
  // New ids continue above the restored ones.
  EXPECT_GT(SubmitOne(Spec()), 30u);
}

TEST_F(EngineTest, SessionIdsCarryTheEpoch) {
  config_.epoch = 7;
  Restart();
  const Effects fx = Join("c1", "w1");
  ASSERT_THAT(fx.welcomes, SizeIs(1));
  EXPECT_EQ(fx.welcomes[0].second.session >> 32, 7u);
}

TEST_F(EngineTest, FailPermanentFailsAtOnce) {
  Join("c1", "w1", {"echo"}, 10);
  const uint64_t id = SubmitOne(Spec("echo", "p", "", 5, 5));
  const Effects fx = Report("c1", DispatchOne("c1"), Outcome::kFailPermanent, "bad payload");
  EXPECT_FALSE(engine().Find(id));
  const TaskInfo* rec = Record(fx, id);
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(rec->state, TaskState::kFailed);
  EXPECT_EQ(rec->error, "bad payload");
  EXPECT_EQ(rec->attempt, 1u);
  EXPECT_THAT(fx.finished, ElementsAre(id));
  EXPECT_THAT(Acked(fx, "c1"), SizeIs(1));
  EXPECT_EQ(Stat("tasks.retried"), 0u);
}

TEST_F(EngineTest, ReleasedRequeuesWithoutCountingAFailure) {
  Join("c1", "w1", {"echo"}, 10);
  const uint64_t id = SubmitOne(Spec("echo", "p", "", 5, 1));  // one failure would end it
  for (uint32_t attempt = 1; attempt <= 3; ++attempt) {
    const TaskMsg t = DispatchOne("c1");
    EXPECT_EQ(t.attempt, attempt);
    const Effects fx = Report("c1", t, Outcome::kReleased, "worker draining");
    EXPECT_EQ(StateOf(id), TaskState::kQueued);
    EXPECT_EQ(engine().Find(id)->failures, 0u);
    EXPECT_THAT(Acked(fx, "c1"), SizeIs(1));
  }
  EXPECT_EQ(Stat("tasks.released"), 3u);
  EXPECT_EQ(Stat("tasks.retried"), 0u);
  EXPECT_EQ(Info("w1")->failed, 0u);
  Report("c1", DispatchOne("c1"), Outcome::kOk);
  EXPECT_FALSE(engine().Find(id));
}

TEST_F(EngineTest, DuplicateResultIsCountedAndStillAcknowledged) {
  Join("c1", "w1", {"echo"}, 10);
  const uint64_t id = SubmitOne(Spec());
  const TaskMsg t = DispatchOne("c1");
  Report("c1", t, Outcome::kOk, "first");
  const Effects fx = Report("c1", t, Outcome::kOk, "second");
  EXPECT_EQ(Stat("results.duplicate"), 1u);
  EXPECT_THAT(Acked(fx, "c1"), ElementsAre(protocol::TaskRef{id, 1}));
  EXPECT_THAT(fx.store_puts, IsEmpty()) << "a duplicate changes nothing";
  EXPECT_THAT(fx.finished, IsEmpty());
  EXPECT_EQ(Stat("tasks.succeeded"), 1u);
}

TEST_F(EngineTest, ResultsFromUnknownConnectionsAreIgnored) {
  SubmitOne(Spec());
  const Effects fx = Report("stranger", 1, 1, Outcome::kOk);
  EXPECT_THAT(fx.acks, IsEmpty());
  EXPECT_EQ(StateOf(1), TaskState::kQueued);
}

TEST_F(EngineTest, LateOkResultFromAnExpiredAttemptCompletesTheTask) {
  Join("c1", "w1", {"echo"}, 1);
  const uint64_t id = SubmitOne(Spec("echo", "p", "", 5, 0, 1000));
  const TaskMsg first = DispatchOne("c1");
  Advance(1000 * kMillis + 1);
  Tick();
  EXPECT_EQ(StateOf(id), TaskState::kQueued);
  Join("c2", "w2", {"echo"}, 1);
  const TaskMsg second = DispatchOne("c2");
  EXPECT_EQ(second.attempt, 2u);

  const Effects fx = Report("c1", first, Outcome::kOk, "done late");
  EXPECT_EQ(Stat("results.late_accepted"), 1u);
  EXPECT_FALSE(engine().Find(id));
  const TaskInfo* rec = Record(fx, id);
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(rec->state, TaskState::kSucceeded);
  EXPECT_EQ(rec->result, "done late");
  EXPECT_THAT(Acked(fx, "c1"), ElementsAre(protocol::TaskRef{id, 1}));
  EXPECT_EQ(Info("w2")->inflight, 0u) << "the second attempt no longer holds a slot";

  const Effects dup = Report("c2", second, Outcome::kOk, "done again");
  EXPECT_EQ(Stat("results.duplicate"), 1u);
  EXPECT_THAT(Acked(dup, "c2"), SizeIs(1));
}

TEST_F(EngineTest, StaleFailureIsIgnored) {
  Join("c1", "w1", {"echo"}, 1);
  const uint64_t id = SubmitOne(Spec("echo", "p", "", 5, 5, 1000));
  const TaskMsg first = DispatchOne("c1");
  Advance(1000 * kMillis + 1);
  Tick();
  Join("c2", "w2", {"echo"}, 1);
  const TaskMsg second = DispatchOne("c2");

  for (Outcome o : {Outcome::kFailRetry, Outcome::kFailPermanent, Outcome::kReleased}) {
    const Effects fx = Report("c1", first, o, "old news");
    EXPECT_THAT(Acked(fx, "c1"), SizeIs(1));
    EXPECT_THAT(fx.store_puts, IsEmpty());
  }
  EXPECT_EQ(Stat("results.stale"), 3u);
  const std::optional<TaskInfo> t = engine().Find(id);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->state, TaskState::kDispatched);
  EXPECT_EQ(t->attempt, 2u);
  EXPECT_EQ(t->failures, 1u);
  EXPECT_EQ(t->worker, "w2");
  // A failure naming the right attempt from the wrong worker is stale too.
  Report("c1", second, Outcome::kFailRetry, "not yours");
  EXPECT_EQ(Stat("results.stale"), 4u);
  EXPECT_EQ(StateOf(id), TaskState::kDispatched);
}

// ------------------------------------------------------------------ leases

TEST_F(EngineTest, LeaseExpiryRequeuesAndTheTaskGoesToAnotherWorker) {
  Join("c1", "w1", {"echo"}, 1);
  const uint64_t id = SubmitOne(Spec("echo", "p", "", 5, 3, 2000));
  DispatchOne("c1");
  Advance(2000 * kMillis - 1);
  Tick();
  EXPECT_EQ(StateOf(id), TaskState::kDispatched) << "not yet";
  Advance(1);
  engine().Touch("c1", now());  // the worker is alive, only the task is late
  const Effects fx = Tick();
  EXPECT_EQ(StateOf(id), TaskState::kQueued);
  EXPECT_EQ(engine().Find(id)->failures, 1u);
  EXPECT_THAT(engine().Find(id)->error, HasSubstr("lease"));
  EXPECT_THAT(engine().Find(id)->error, HasSubstr("w1"));
  EXPECT_EQ(engine().Find(id)->worker, "w1") << "the last attempt's worker, while it waits";
  EXPECT_EQ(Stat("leases.expired"), 1u);
  ASSERT_NE(Record(fx, id), nullptr);
  EXPECT_EQ(Record(fx, id)->worker, "w1");
  EXPECT_EQ(Info("w1")->inflight, 0u);

  Join("c2", "w2", {"echo"}, 1);
  const TaskMsg t = DispatchOne("c2");
  EXPECT_EQ(t.id, id);
  EXPECT_EQ(t.attempt, 2u);
  EXPECT_EQ(engine().Find(id)->worker, "w2");
}

TEST_F(EngineTest, LeaseExpiriesEndTheTaskAfterMaxAttempts) {
  Join("c1", "w1", {"echo"}, 10);
  const uint64_t id = SubmitOne(Spec("echo", "p", "", 5, 2, 100));
  DispatchOne("c1");
  Advance(100 * kMillis);
  engine().Touch("c1", now());
  Tick();
  DispatchOne("c1");
  Advance(100 * kMillis);
  engine().Touch("c1", now());
  const Effects fx = Tick();
  EXPECT_FALSE(engine().Find(id));
  const TaskInfo* rec = Record(fx, id);
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(rec->state, TaskState::kDead);
  EXPECT_THAT(rec->error, HasSubstr("gave up after 2"));
  EXPECT_THAT(fx.finished, ElementsAre(id));
}

TEST_F(EngineTest, ExtendPushesTheLeaseOut) {
  Join("c1", "w1", {"echo"}, 10);
  const uint64_t id = SubmitOne(Spec("echo", "p", "", 5, 3, 1000));
  const TaskMsg t = DispatchOne("c1");
  Advance(800 * kMillis);
  engine().OnExtend("c1", protocol::Extend{{{id, 1}}, 1000}, now());
  EXPECT_EQ(Stat("leases.extended"), 1u);
  Advance(800 * kMillis);  // past the first lease, within the extended one
  engine().Touch("c1", now());
  Tick();
  EXPECT_EQ(StateOf(id), TaskState::kDispatched);
  EXPECT_EQ(Stat("leases.expired"), 0u);
  Advance(200 * kMillis);
  engine().Touch("c1", now());
  Tick();
  EXPECT_EQ(StateOf(id), TaskState::kQueued);
  EXPECT_EQ(Stat("leases.expired"), 1u);
  (void)t;
}

TEST_F(EngineTest, ExtendIgnoresOtherAttemptsAndOtherWorkers) {
  Join("c1", "w1", {"echo"}, 10);
  Join("c2", "w2", {"sleep"}, 10);
  const uint64_t id = SubmitOne(Spec("echo", "p", "", 5, 3, 1000));
  DispatchOne("c1");
  engine().OnExtend("c1", protocol::Extend{{{id, 2}}, 60000}, now());
  engine().OnExtend("c2", protocol::Extend{{{id, 1}}, 60000}, now());
  engine().OnExtend("c1", protocol::Extend{{{999, 1}}, 60000}, now());
  EXPECT_EQ(Stat("leases.extended"), 0u);
  Advance(1000 * kMillis);
  engine().Touch("c1", now());
  engine().Touch("c2", now());
  Tick();
  EXPECT_EQ(StateOf(id), TaskState::kQueued);
}

// ------------------------------------------------------------------ liveness

TEST_F(EngineTest, WorkerThatMissedHeartbeatsIsRemovedAndItsTasksRequeued) {
  Join("c1", "w1", {"echo"}, 10);
  const auto ids = Submit({Spec(), Spec()});
  EXPECT_EQ(Dispatch().total(), 2u);
  Advance(DeadAfter());
  EXPECT_THAT(Tick().disconnects, IsEmpty()) << "exactly liveness * heartbeat is still alive";
  EXPECT_TRUE(engine().IsKnownWorker("c1"));
  Advance(1);
  const Effects fx = Tick();
  ASSERT_THAT(fx.disconnects, SizeIs(1));
  EXPECT_EQ(fx.disconnects[0].first, "c1");
  EXPECT_EQ(fx.disconnects[0].second.reason, DisconnectReason::kHeartbeatTimeout);
  EXPECT_FALSE(engine().IsKnownWorker("c1"));
  EXPECT_EQ(Stat("workers.lost"), 1u);
  EXPECT_EQ(Stat("workers.connected"), 0u);
  for (uint64_t id : ids) {
    EXPECT_EQ(StateOf(id), TaskState::kQueued);
    EXPECT_EQ(engine().Find(id)->failures, 1u);
    EXPECT_THAT(engine().Find(id)->error, HasSubstr("w1"));
    EXPECT_NE(Record(fx, id), nullptr);
  }
  EXPECT_EQ(Stat("tasks.queued"), 2u);
  EXPECT_EQ(Stat("tasks.running"), 0u);
  // Its late messages are no longer accepted.
  EXPECT_THAT(Report("c1", ids[0], 1, Outcome::kOk).acks, IsEmpty());
}

TEST_F(EngineTest, TouchKeepsAWorkerAlive) {
  Join("c1", "w1");
  for (int i = 0; i < 10; ++i) {
    Advance(DeadAfter() - kMillis);
    engine().Touch("c1", now());
    EXPECT_THAT(Tick().disconnects, IsEmpty());
  }
  EXPECT_TRUE(engine().IsKnownWorker("c1"));
  EXPECT_EQ(Stat("workers.lost"), 0u);
}

TEST_F(EngineTest, DuplicateWorkerIdIsRefusedWhileTheFirstIsAlive) {
  Join("c1", "w1", {"echo"}, 10, /*incarnation=*/1);
  const uint64_t id = SubmitOne(Spec());
  DispatchOne("c1");
  const Effects fx = Join("c2", "w1", {"echo"}, 10, /*incarnation=*/2);
  ASSERT_THAT(fx.disconnects, SizeIs(1));
  EXPECT_EQ(fx.disconnects[0].first, "c2");
  EXPECT_EQ(fx.disconnects[0].second.reason, DisconnectReason::kDuplicateWorker);
  EXPECT_THAT(fx.welcomes, IsEmpty());
  EXPECT_FALSE(engine().IsKnownWorker("c2"));
  EXPECT_TRUE(engine().IsKnownWorker("c1"));
  EXPECT_EQ(Stat("rejected.duplicate_worker"), 1u);
  EXPECT_EQ(StateOf(id), TaskState::kDispatched);
}

TEST_F(EngineTest, SameIncarnationOnANewConnectionTakesOverItsTasks) {
  Join("c1", "w1", {"echo"}, 10, 7);
  const auto ids = Submit({Spec(), Spec()});
  EXPECT_EQ(Dispatch().total(), 2u);
  const Effects fx = Join("c2", "w1", {"echo"}, 8, 7);
  ASSERT_THAT(fx.welcomes, SizeIs(1));
  EXPECT_THAT(fx.disconnects, IsEmpty());
  EXPECT_FALSE(engine().IsKnownWorker("c1"));
  EXPECT_TRUE(engine().IsKnownWorker("c2"));
  EXPECT_EQ(Stat("workers.connected"), 1u);
  for (uint64_t id : ids) {
    EXPECT_EQ(StateOf(id), TaskState::kDispatched) << "reconnecting is not a failure";
    EXPECT_EQ(engine().Find(id)->failures, 0u);
  }
  EXPECT_EQ(Info("w1")->inflight, 2u);
  // Results arrive on the new connection and count as current.
  Report("c2", ids[0], 1, Outcome::kOk);
  Report("c2", ids[1], 1, Outcome::kFailRetry, "retry me");
  EXPECT_EQ(Stat("results.late_accepted"), 0u);
  EXPECT_EQ(Stat("results.stale"), 0u);
  EXPECT_FALSE(engine().Find(ids[0]));
  EXPECT_EQ(StateOf(ids[1]), TaskState::kQueued);
}

TEST_F(EngineTest, HelloAgainOnTheSameConnectionKeepsItsTasks) {
  Join("c1", "w1", {"echo"}, 10, 7);
  const uint64_t id = SubmitOne(Spec());
  DispatchOne("c1");
  const Effects fx = Join("c1", "w1", {"echo"}, 10, 7);
  EXPECT_THAT(fx.welcomes, SizeIs(1));
  EXPECT_EQ(StateOf(id), TaskState::kDispatched);
  EXPECT_EQ(Info("w1")->inflight, 1u);
  Report("c1", id, 1, Outcome::kOk);
  EXPECT_FALSE(engine().Find(id));
  EXPECT_EQ(Stat("results.late_accepted"), 0u);
}

TEST_F(EngineTest, NewIncarnationReplacesAWorkerThatDied) {
  Join("c1", "w1", {"echo"}, 10, 1);
  const uint64_t id = SubmitOne(Spec());
  DispatchOne("c1");
  Advance(DeadAfter() + 1);  // silent, but no Tick has noticed yet
  const Effects fx = Join("c2", "w1", {"echo"}, 10, 2);
  ASSERT_THAT(fx.welcomes, SizeIs(1));
  EXPECT_EQ(fx.welcomes[0].first, "c2");
  EXPECT_FALSE(engine().IsKnownWorker("c1"));
  EXPECT_TRUE(engine().IsKnownWorker("c2"));
  EXPECT_EQ(StateOf(id), TaskState::kQueued);
  EXPECT_EQ(engine().Find(id)->failures, 1u);
  EXPECT_THAT(engine().Find(id)->error, HasSubstr("restarted"));
  EXPECT_EQ(DispatchOne("c2").attempt, 2u);
}

TEST_F(EngineTest, DisconnectRequeuesWithoutAFailure) {
  Join("c1", "w1", {"echo"}, 10);
  const uint64_t id = SubmitOne(Spec("echo", "p", "", 5, 1));
  DispatchOne("c1");
  Effects fx;
  engine().OnDisconnect("c1", now(), fx);
  EXPECT_FALSE(engine().IsKnownWorker("c1"));
  EXPECT_EQ(StateOf(id), TaskState::kQueued);
  EXPECT_EQ(engine().Find(id)->failures, 0u);
  EXPECT_EQ(Stat("workers.disconnected"), 1u);
  EXPECT_EQ(Stat("workers.connected"), 0u);
  // Unknown connections are ignored.
  engine().OnDisconnect("nobody", now(), fx);
  EXPECT_EQ(Stat("workers.disconnected"), 1u);
  Join("c2", "w2");
  EXPECT_EQ(DispatchOne("c2").attempt, 2u);
}

// ------------------------------------------------------------------ cancel

TEST_F(EngineTest, CancelOfAQueuedTaskEndsIt) {
  const uint64_t id = SubmitOne(Spec());
  Effects fx;
  auto st = engine().Cancel(id, now(), fx);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(*st, TaskState::kCancelled);
  EXPECT_FALSE(engine().Find(id));
  const TaskInfo* rec = Record(fx, id);
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(rec->state, TaskState::kCancelled);
  EXPECT_THAT(fx.finished, ElementsAre(id));
  EXPECT_EQ(Stat("tasks.cancelled"), 1u);
  EXPECT_EQ(Stat("tasks.queued"), 0u);
  EXPECT_EQ(Stat("tasks.ready"), 0u);
  Join("c1", "w1");
  EXPECT_EQ(Dispatch().total(), 0u) << "a cancelled task is never dispatched";
}

TEST_F(EngineTest, CancelOfADispatchedTaskIgnoresItsLaterResult) {
  Join("c1", "w1", {"echo"}, 10);
  const uint64_t id = SubmitOne(Spec());
  const TaskMsg t = DispatchOne("c1");
  Effects fx;
  ASSERT_TRUE(engine().Cancel(id, now(), fx).ok());
  EXPECT_EQ(Record(fx, id)->state, TaskState::kCancelled);
  EXPECT_EQ(Info("w1")->inflight, 0u);
  EXPECT_EQ(Stat("tasks.running"), 0u);
  const Effects late = Report("c1", t, Outcome::kOk, "too late");
  EXPECT_EQ(Stat("results.duplicate"), 1u);
  EXPECT_THAT(Acked(late, "c1"), SizeIs(1));
  EXPECT_THAT(late.store_puts, IsEmpty());
  EXPECT_EQ(Stat("tasks.succeeded"), 0u);
}

TEST_F(EngineTest, CancelOfAnUnknownTaskIsNotFound) {
  Effects fx;
  EXPECT_EQ(engine().Cancel(42, now(), fx).status().code(), StatusCode::kNotFound);
  const uint64_t id = SubmitOne(Spec());
  ASSERT_TRUE(engine().Cancel(id, now(), fx).ok());
  EXPECT_EQ(engine().Cancel(id, now(), fx).status().code(), StatusCode::kNotFound);
}

TEST_F(EngineTest, CancellingAKeyHeadLetsTheNextTaskOfTheKeyRun) {
  Join("c1", "w1", {"echo"}, 10);
  const auto ids = Submit({Spec("echo", "a", "k"), Spec("echo", "b", "k"), Spec("echo", "c", "k")});
  EXPECT_EQ(DispatchOne("c1").id, ids[0]);
  Effects fx;
  ASSERT_TRUE(engine().Cancel(ids[0], now(), fx).ok());
  EXPECT_EQ(DispatchOne("c1").id, ids[1]);
}

TEST_F(EngineTest, CancellingAWaitingKeyedTaskSkipsIt) {
  Join("c1", "w1", {"echo"}, 10);
  const auto ids = Submit({Spec("echo", "a", "k"), Spec("echo", "b", "k"), Spec("echo", "c", "k")});
  const TaskMsg head = DispatchOne("c1");
  Effects fx;
  ASSERT_TRUE(engine().Cancel(ids[1], now(), fx).ok());
  EXPECT_EQ(Dispatch().total(), 0u) << "the head still runs";
  Report("c1", head, Outcome::kOk);
  EXPECT_EQ(DispatchOne("c1").id, ids[2]);
  EXPECT_EQ(Stat("tasks.queued"), 0u);
}

TEST_F(EngineTest, CancellingAQueuedKeyHeadLetsTheNextRun) {
  const auto ids = Submit({Spec("echo", "a", "k"), Spec("echo", "b", "k")});
  Effects fx;
  ASSERT_TRUE(engine().Cancel(ids[0], now(), fx).ok());
  Join("c1", "w1");
  EXPECT_EQ(DispatchOne("c1").id, ids[1]);
}

// ------------------------------------------------------------------ time and introspection

TEST_F(EngineTest, NextDeadlineIsTheEarliestLeaseOrLivenessDeadline) {
  EXPECT_FALSE(engine().NextDeadline().has_value());
  SubmitOne(Spec("echo", "p", "", 5, 0, 500));
  EXPECT_FALSE(engine().NextDeadline().has_value()) << "queued tasks have no deadline";
  const Micros joined = clock_.Now();
  Join("c1", "w1");
  ASSERT_TRUE(engine().NextDeadline().has_value());
  EXPECT_EQ(*engine().NextDeadline(), joined + DeadAfter() + 1);
  Advance(10 * kMillis);
  const Micros dispatched = clock_.Now();
  DispatchOne("c1");
  EXPECT_EQ(*engine().NextDeadline(), dispatched + 500 * kMillis);
  // Ticking at the deadline does the work that was due.
  Advance(500 * kMillis);
  engine().Touch("c1", now());
  Tick();
  EXPECT_EQ(Stat("leases.expired"), 1u);
  EXPECT_EQ(*engine().NextDeadline(), clock_.Now() + DeadAfter() + 1);
}

TEST_F(EngineTest, WorkerInfosDescribeEachWorker) {
  const Micros wall = clock_.WallNow();
  Join("c1", "w1", {"echo", "sleep"}, 5);
  SubmitOne(Spec());
  SubmitOne(Spec());
  const Sent s = Dispatch();
  Report("c1", s.tasks.at("c1")[0], Outcome::kOk, "", 0);
  Report("c1", s.tasks.at("c1")[1], Outcome::kFailPermanent, "no", 0);
  Advance(1500 * kMillis);
  const auto infos = engine().WorkerInfos(now());
  ASSERT_THAT(infos, SizeIs(1));
  const protocol::WorkerInfo& w = infos[0];
  EXPECT_EQ(w.worker_id, "w1");
  EXPECT_EQ(w.hostname, "host-w1");
  EXPECT_EQ(w.pid, 100u);
  EXPECT_THAT(w.handlers, ElementsAre("echo", "sleep"));
  EXPECT_EQ(w.slots, 2u);
  EXPECT_EQ(w.credit, 3u);
  EXPECT_EQ(w.inflight, 0u);
  EXPECT_EQ(w.completed, 1u);
  EXPECT_EQ(w.failed, 1u);
  EXPECT_EQ(w.connected_us, wall);
  EXPECT_EQ(w.last_seen_ms, 1500u);
  EXPECT_THAT(engine().WorkerConns(), ElementsAre("c1"));
}

TEST_F(EngineTest, StatsGaugesFollowTheTasks) {
  auto gauges = [&] {
    return std::vector<uint64_t>{Stat("tasks.queued"), Stat("tasks.ready"), Stat("tasks.running"),
                                 Stat("tasks.active"), Stat("workers.connected")};
  };
  EXPECT_THAT(gauges(), ElementsAre(0, 0, 0, 0, 0));
  Submit({Spec("echo", "", "k"), Spec("echo", "", "k"), Spec(), Spec("resize")});
  EXPECT_THAT(gauges(), ElementsAre(4, 3, 0, 4, 0));  // the second keyed task is not ready
  Join("c1", "w1", {"echo"}, 10);
  const Sent s = Dispatch();
  EXPECT_EQ(s.total(), 2u);
  EXPECT_THAT(gauges(), ElementsAre(2, 1, 2, 4, 1));
  for (const auto& t : s.tasks.at("c1")) Report("c1", t, Outcome::kOk);
  EXPECT_THAT(gauges(), ElementsAre(2, 2, 0, 2, 1));  // the keyed follower became ready
  Report("c1", DispatchOne("c1"), Outcome::kOk);
  EXPECT_THAT(gauges(), ElementsAre(1, 1, 0, 1, 1));
  Effects fx;
  ASSERT_TRUE(engine().Cancel(4, now(), fx).ok());
  EXPECT_THAT(gauges(), ElementsAre(0, 0, 0, 0, 1));
  EXPECT_EQ(engine().queued(), 0u);
  EXPECT_EQ(engine().active(), 0u);
  EXPECT_EQ(Stat("tasks.succeeded"), 3u);
  EXPECT_EQ(Stat("tasks.cancelled"), 1u);
}

TEST_F(EngineTest, StatsBreakTasksDownByPriorityTypeAndLatency) {
  // The stats whose name starts with `prefix`, without it.
  auto with_prefix = [&](const std::string& prefix) {
    std::map<std::string, uint64_t> out;
    for (const auto& [name, value] : engine().Stats()) {
      if (name.starts_with(prefix)) out[name.substr(prefix.size())] = value;
    }
    return out;
  };
  using M = std::map<std::string, uint64_t>;
  // Before any task: an empty histogram (every bound, inf, sum and count) and no breakdowns.
  auto latency = with_prefix("task_latency_us.");
  EXPECT_EQ(latency.size(), Engine::kLatencyBoundsUs.size() + 3);
  for (uint64_t b : Engine::kLatencyBoundsUs) EXPECT_EQ(latency.at("le." + std::to_string(b)), 0u);
  EXPECT_EQ(latency.at("le.inf"), 0u);
  EXPECT_EQ(latency.at("sum"), 0u);
  EXPECT_EQ(latency.at("count"), 0u);
  EXPECT_THAT(with_prefix("tasks.queued_by_priority."), IsEmpty());
  EXPECT_THAT(with_prefix("tasks.active_by_type."), IsEmpty());

  const auto ids = Submit({Spec("echo", "a", "", 1), Spec("echo", "b", "", 1),
                           Spec("resize", "c", "", 7), Spec("echo", "d", "", 1)});
  ASSERT_THAT(ids, SizeIs(4));
  EXPECT_EQ(with_prefix("tasks.queued_by_priority."), (M{{"1", 3}, {"7", 1}}));
  EXPECT_EQ(with_prefix("tasks.active_by_type."), (M{{"echo", 3}, {"resize", 1}}));
  EXPECT_THAT(with_prefix("tasks.ended_by_type."), IsEmpty());

  // Dispatched tasks leave their priority's queue but stay active.
  Join("c1", "w1", {"echo", "resize"}, 3);
  const Sent s = Dispatch();
  ASSERT_EQ(s.total(), 3u);
  std::map<uint64_t, TaskMsg> sent;
  for (const auto& t : s.tasks.at("c1")) sent[t.id] = t;
  ASSERT_TRUE(sent.count(ids[0]) && sent.count(ids[1]) && sent.count(ids[3]));
  EXPECT_EQ(with_prefix("tasks.queued_by_priority."), (M{{"7", 1}}));
  EXPECT_EQ(with_prefix("tasks.active_by_type."), (M{{"echo", 3}, {"resize", 1}}));

  // A retry goes back to its priority's queue and is not an end.
  Report("c1", sent[ids[3]], Outcome::kFailRetry, "again", 0);
  EXPECT_EQ(with_prefix("tasks.queued_by_priority."), (M{{"1", 1}, {"7", 1}}));
  EXPECT_THAT(with_prefix("tasks.ended_by_type."), IsEmpty());
  EXPECT_EQ(Stat("task_latency_us.count"), 0u);

  // Ends 1.5 ms, 30 ms and 2 s after the submit; then one after two minutes (past every bound).
  Advance(1500);
  Report("c1", sent[ids[0]], Outcome::kOk, "ok", 0);
  Advance(28500);
  Report("c1", sent[ids[1]], Outcome::kFailPermanent, "bad", 0);
  Advance(1970000);
  Effects fx;
  ASSERT_TRUE(engine().Cancel(ids[2], now(), fx).ok());
  Advance(118 * kSeconds);
  ASSERT_TRUE(engine().Cancel(ids[3], now(), fx).ok());

  EXPECT_THAT(with_prefix("tasks.queued_by_priority."), IsEmpty());
  EXPECT_EQ(with_prefix("tasks.active_by_type."), (M{{"echo", 0}, {"resize", 0}}));
  EXPECT_EQ(with_prefix("tasks.ended_by_type."), (M{{"echo.succeeded", 1},
                                                    {"echo.failed", 1},
                                                    {"echo.cancelled", 1},
                                                    {"resize.cancelled", 1}}));
  latency = with_prefix("task_latency_us.");
  EXPECT_EQ(latency.size(), Engine::kLatencyBoundsUs.size() + 3);
  // Cumulative: within B us of the submit.
  const std::map<uint64_t, uint64_t> within = {
      {250, 0},     {500, 0},     {1000, 0},     {2500, 1},    {5000, 1},   {10000, 1},
      {25000, 1},   {50000, 2},   {100000, 2},   {250000, 2},  {500000, 2}, {1000000, 2},
      {2500000, 3}, {5000000, 3}, {10000000, 3}, {60000000, 3}};
  ASSERT_EQ(within.size(), Engine::kLatencyBoundsUs.size());
  for (const auto& [bound, n] : within) {
    EXPECT_EQ(latency.at("le." + std::to_string(bound)), n) << "le." << bound;
  }
  EXPECT_EQ(latency.at("le.inf"), 4u);
  EXPECT_EQ(latency.at("count"), 4u);
  EXPECT_EQ(latency.at("sum"), 1500u + 30000u + 2000000u + 120000000u);
}

TEST_F(EngineTest, StatsTrackAtMost256TypesAndFoldTheRestIntoOther) {
  ASSERT_EQ(Engine::kMaxTrackedTypes, 256u);
  std::vector<TaskSpec> specs;
  for (size_t i = 0; i < Engine::kMaxTrackedTypes; ++i)
    specs.push_back(Spec("t" + std::to_string(i)));
  ASSERT_THAT(Submit(specs), SizeIs(Engine::kMaxTrackedTypes));
  // Two types past the cap, and a tracked type again.
  const auto late = Submit({Spec("late-a"), Spec("late-b"), Spec("late-b"), Spec("t7")});
  ASSERT_THAT(late, SizeIs(4));

  auto stats = engine().Stats();
  size_t types = 0;
  for (const auto& [name, value] : stats)
    types += name.starts_with("tasks.active_by_type.") ? 1 : 0;
  EXPECT_EQ(types, Engine::kMaxTrackedTypes + 1);  // 256 types and "_other"
  EXPECT_EQ(stats.at("tasks.active_by_type.t0"), 1u);
  EXPECT_EQ(stats.at("tasks.active_by_type.t255"), 1u);
  EXPECT_EQ(stats.at("tasks.active_by_type.t7"), 2u);
  EXPECT_EQ(stats.at("tasks.active_by_type._other"), 3u);
  EXPECT_FALSE(stats.contains("tasks.active_by_type.late-a"));
  EXPECT_FALSE(stats.contains("tasks.active_by_type.late-b"));

  // Their ends are counted under "_other" too; tracked types keep their names.
  Effects fx;
  ASSERT_TRUE(engine().Cancel(late[0], now(), fx).ok());
  ASSERT_TRUE(engine().Cancel(late[3], now(), fx).ok());
  stats = engine().Stats();
  EXPECT_EQ(stats.at("tasks.active_by_type._other"), 2u);
  EXPECT_EQ(stats.at("tasks.ended_by_type._other.cancelled"), 1u);
  EXPECT_EQ(stats.at("tasks.active_by_type.t7"), 1u);
  EXPECT_EQ(stats.at("tasks.ended_by_type.t7.cancelled"), 1u);
  EXPECT_FALSE(stats.contains("tasks.ended_by_type.late-a.cancelled"));
  // Still no new slot once every task of a type has ended.
  EXPECT_THAT(Submit({Spec("late-c")}), SizeIs(1));
  EXPECT_EQ(Stat("tasks.active_by_type._other"), 3u);
  EXPECT_EQ(Stat("tasks.active_by_type.late-c"), 0u);
}

TEST_F(EngineTest, CountAddsToNamedCounters) {
  engine().Count("rejected.malformed_body");
  engine().Count("rejected.malformed_body", 4);
  EXPECT_EQ(Stat("rejected.malformed_body"), 5u);
}

}  // namespace
}  // namespace yard::core
