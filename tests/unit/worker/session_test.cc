// Worker Session against a scripted master: the test owns the master's ROUTER socket and says
// exactly what a real master would, at the moments that are hard to reach with a real one.
#include "worker/session.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/protocol/codec.h"
#include "common/transport/socket.h"

namespace yard::worker {
namespace {

using protocol::Command;

constexpr Micros kDeadline = 10 * kSeconds;

class ScriptedMaster {
 public:
  explicit ScriptedMaster(transport::Context& ctx) {
    static std::atomic<int> sequence{0};
    transport::SocketOptions so;
    so.router_mandatory = true;
    auto sock = transport::Socket::Create(ctx, transport::SocketType::kRouter, so);
    EXPECT_TRUE(sock.ok()) << sock.status().ToString();
    sock_ = std::move(*sock);
    endpoint_ = *sock_->Bind("inproc://scripted-" + std::to_string(getpid()) + "-" +
                             std::to_string(sequence++));
  }
  const std::string& endpoint() const { return endpoint_; }

  // The next message from the worker as (command, body), or nullopt after kDeadline.
  std::optional<std::pair<Command, std::string>> Next() {
    const Micros until = SystemClock::Get().Now() + kDeadline;
    transport::Frames f;
    while (SystemClock::Get().Now() < until) {
      auto got = sock_->Recv(&f);
      if (!got.ok() || !*got) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        continue;
      }
      Command cmd{};
      if (f.parts.size() != 3 ||
          protocol::CheckHeader(f.parts[1], &cmd) != protocol::HeaderCheck::kOk) {
        continue;
      }
      conn_ = f.parts[0];
      return std::make_pair(cmd, f.parts[2]);
    }
    return std::nullopt;
  }

  // The next message of command `want` from the worker (others are skipped), or nullopt.
  std::optional<std::string> Expect(Command want) {
    const Micros until = SystemClock::Get().Now() + kDeadline;
    while (SystemClock::Get().Now() < until) {
      auto got = Next();
      if (!got) return std::nullopt;
      if (got->first == want) return std::move(got->second);
    }
    return std::nullopt;
  }

  template <typename M>
  void Send(const M& m) {
    ASSERT_TRUE(sock_
                    ->Send({conn_, protocol::EncodeHeader(protocol::CommandOf<M>::value),
                            protocol::EncodeBody(m)})
                    .ok());
  }

 private:
  std::unique_ptr<transport::Socket> sock_;
  std::string endpoint_;
  std::string conn_;
};

// Tasks that finish while the worker is between HELLO and WELCOME (its master restarted) give
// their credit back with the resent results: the master's view of the window never shrinks.
TEST(SessionTest, CreditOfTasksFinishedWhileRejoiningIsGivenBack) {
  transport::Context ctx;
  ScriptedMaster master(ctx);
  std::atomic<bool> release{false};
  HandlerRegistry registry;
  ASSERT_TRUE(registry
                  .Register("block",
                            [&](const TaskContext&) -> StatusOr<std::string> {
                              while (!release.load()) {
                                std::this_thread::sleep_for(std::chrono::milliseconds(1));
                              }
                              return std::string("done");
                            })
                  .ok());
  WorkerOptions options;
  options.connect = {master.endpoint()};
  options.id = "w";
  options.threads = 2;
  options.credit = 4;
  Session session(options, ctx, registry, SystemClock::Get());
  Status result = Internal("running");
  std::thread thread([&] { result = session.Run(); });

  auto hello_body = master.Expect(Command::kHello);
  ASSERT_TRUE(hello_body);
  protocol::Hello hello;
  ASSERT_TRUE(protocol::DecodeBody(*hello_body, &hello).ok());
  EXPECT_EQ(hello.credit, 4u);
  master.Send(protocol::Welcome{1, 1000, 3, 1u << 20, 64});
  protocol::Tasks tasks;
  for (uint64_t id = 1; id <= 2; ++id) tasks.tasks.push_back({id, 1, "block", "", 30000});
  master.Send(tasks);

  // The "restarted" master does not know the session: the worker says HELLO again while both
  // tasks still run, so that HELLO offers only the two free slots.
  master.Send(protocol::Heartbeat{});
  master.Send(protocol::Disconnect{protocol::DisconnectReason::kUnknownSession, "who?"});
  hello_body = master.Expect(Command::kHello);
  ASSERT_TRUE(hello_body);
  ASSERT_TRUE(protocol::DecodeBody(*hello_body, &hello).ok());
  EXPECT_EQ(hello.credit, 2u);

  // Both finish before the WELCOME: their results wait, and so does their credit.
  release = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  master.Send(protocol::Welcome{2, 1000, 3, 1u << 20, 64});
  auto results_body = master.Expect(Command::kResults);
  ASSERT_TRUE(results_body);
  protocol::Results results;
  ASSERT_TRUE(protocol::DecodeBody(*results_body, &results).ok());
  EXPECT_EQ(results.results.size(), 2u);
  EXPECT_EQ(hello.credit + results.credit, 4u) << "credit leaked across the rejoin";

  session.Stop();
  master.Send(protocol::Ack{{{1, 1}, {2, 1}}});
  thread.join();
  EXPECT_TRUE(result.ok()) << result.ToString();
}

// Waits (polling, up to kDeadline) until `done` is true.
template <typename F>
bool WaitFor(F done) {
  const Micros until = SystemClock::Get().Now() + kDeadline;
  while (!done()) {
    if (SystemClock::Get().Now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// A worker joined to a scripted master, with handlers the tests drive:
//   block    signals `started`, runs until `release` or a cancel, then "released" or an error
//   extend   asks for its lease twice and for a longer one, then runs like block
//   echo     output = payload
class SessionCancelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto must = [](Status st) { ASSERT_TRUE(st.ok()) << st.ToString(); };
    auto block = [this](const TaskContext& ctx) -> StatusOr<std::string> {
      ++started_;
      const Micros until = SystemClock::Get().Now() + kDeadline;
      while (!release_.load()) {
        if (ctx.Cancelled()) return Unavailable("block: cancelled");
        if (ctx.Stopping()) return Unavailable("block: stopping");
        if (SystemClock::Get().Now() >= until) return DeadlineExceeded("block: never released");
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      return std::string("released");
    };
    must(registry_.Register("block", block));
    must(registry_.Register("extend", [block](const TaskContext& ctx) {
      ctx.Extend(ctx.lease_ms);
      ctx.Extend(ctx.lease_ms);
      ctx.Extend(ctx.lease_ms + 1000);
      return block(ctx);
    }));
    must(registry_.Register("echo", [](const TaskContext& ctx) -> StatusOr<std::string> {
      return std::string(ctx.payload);
    }));
  }

  // Starts the worker (`threads` executor threads, credit 4) and joins it to the master.
  void Join(uint32_t threads) {
    WorkerOptions options;
    options.connect = {master_.endpoint()};
    options.id = "w";
    options.threads = threads;
    options.credit = 4;
    session_ = std::make_unique<Session>(options, ctx_, registry_, SystemClock::Get());
    thread_ = std::thread([this] { result_ = session_->Run(); });
    ASSERT_TRUE(master_.Expect(Command::kHello));
    master_.Send(protocol::Welcome{1, 1000, 3, 1u << 20, 64});
  }

  // Stops the worker, acknowledging what it still sends until it says goodbye.
  void TearDown() override {
    if (!session_) return;
    release_ = true;
    session_->Stop();
    while (auto got = master_.Next()) {
      if (got->first == Command::kDisconnect) break;
      if (got->first != Command::kResults) continue;
      protocol::Results r;
      ASSERT_TRUE(protocol::DecodeBody(got->second, &r).ok());
      protocol::Ack ack;
      for (const auto& res : r.results) ack.refs.push_back({res.id, res.attempt});
      master_.Send(ack);
    }
    thread_.join();
    EXPECT_TRUE(result_.ok()) << result_.ToString();
  }

  // The next RESULTS, decoded.
  std::optional<protocol::Results> NextResults() {
    auto body = master_.Expect(Command::kResults);
    if (!body) return std::nullopt;
    protocol::Results r;
    if (Status st = protocol::DecodeBody(*body, &r); !st.ok()) {
      ADD_FAILURE() << st.ToString();
      return std::nullopt;
    }
    return r;
  }

  transport::Context ctx_;
  ScriptedMaster master_{ctx_};
  HandlerRegistry registry_;
  std::atomic<int> started_{0};
  std::atomic<bool> release_{false};
  std::unique_ptr<Session> session_;
  Status result_ = Internal("running");
  std::thread thread_;
};

TEST_F(SessionCancelTest, CancelOfAQueuedTaskReportsItCancelledWithItsCredit) {
  ASSERT_NO_FATAL_FAILURE(Join(1));
  protocol::Tasks tasks;
  tasks.tasks.push_back({1, 1, "block", "", 30000});
  tasks.tasks.push_back({2, 1, "block", "", 30000});  // queued behind 1: one thread
  master_.Send(tasks);
  ASSERT_TRUE(WaitFor([&] { return started_.load() == 1; }));
  // (2, 1) is queued; (1, 9) and (77, 1) are unknown to the worker and ignored.
  master_.Send(protocol::CancelTasks{{{1, 9}, {2, 1}, {77, 1}}});
  auto results = NextResults();
  ASSERT_TRUE(results);
  ASSERT_EQ(results->results.size(), 1u);
  EXPECT_EQ(results->credit, 1u) << "the skipped task's slot comes back";
  const protocol::ResultMsg& r = results->results[0];
  EXPECT_EQ(r.id, 2u);
  EXPECT_EQ(r.attempt, 1u);
  EXPECT_EQ(r.outcome, protocol::Outcome::kCancelled);
  EXPECT_EQ(r.error, "cancelled before start");
  master_.Send(protocol::Ack{{{2, 1}}});

  // Task 1 was not touched, and the session still works after 0x80.
  EXPECT_EQ(started_.load(), 1);
  release_ = true;
  results = NextResults();
  ASSERT_TRUE(results);
  ASSERT_EQ(results->results.size(), 1u);
  EXPECT_EQ(results->results[0].id, 1u);
  EXPECT_EQ(results->results[0].outcome, protocol::Outcome::kOk);
  EXPECT_EQ(results->results[0].output, "released");
  master_.Send(protocol::Ack{{{1, 1}}});
}

TEST_F(SessionCancelTest, CancelOfARunningTaskStopsItsHandler) {
  ASSERT_NO_FATAL_FAILURE(Join(2));
  master_.Send(protocol::Tasks{{{1, 3, "block", "", 30000}}});
  ASSERT_TRUE(WaitFor([&] { return started_.load() == 1; }));
  master_.Send(protocol::CancelTasks{{{1, 2}}});  // an older attempt: ignored
  master_.Send(protocol::CancelTasks{{{1, 3}}});
  auto results = NextResults();
  ASSERT_TRUE(results) << "the cancelled handler did not return";
  ASSERT_EQ(results->results.size(), 1u);
  EXPECT_EQ(results->credit, 1u);
  EXPECT_EQ(results->results[0].id, 1u);
  EXPECT_EQ(results->results[0].attempt, 3u);
  EXPECT_EQ(results->results[0].outcome, protocol::Outcome::kCancelled);
  EXPECT_NE(results->results[0].error.find("block: cancelled"), std::string::npos)
      << results->results[0].error;
  master_.Send(protocol::Ack{{{1, 3}}});
}

TEST_F(SessionCancelTest, UnknownCancelsAreIgnoredAndTheWorkerKeepsWorking) {
  ASSERT_NO_FATAL_FAILURE(Join(1));
  master_.Send(protocol::CancelTasks{{{5, 1}, {6, 2}}});
  master_.Send(protocol::CancelTasks{});
  master_.Send(protocol::Tasks{{{8, 1, "echo", "after the cancels", 30000}}});
  auto results = NextResults();
  ASSERT_TRUE(results) << "a CANCEL_TASKS broke the session";
  ASSERT_EQ(results->results.size(), 1u);
  EXPECT_EQ(results->results[0].id, 8u);
  EXPECT_EQ(results->results[0].outcome, protocol::Outcome::kOk);
  EXPECT_EQ(results->results[0].output, "after the cancels");
  master_.Send(protocol::Ack{{{8, 1}}});
}

TEST_F(SessionCancelTest, HandlerExtendSendsExtendForItsExecution) {
  ASSERT_NO_FATAL_FAILURE(Join(1));
  master_.Send(protocol::Tasks{{{4, 2, "extend", "", 20000}}});
  // The three calls are coalesced into as few EXTENDs as the worker's timing allows (one, with
  // the latest lease, if it looked after the last call); the last lease asked for arrives.
  protocol::Extend e;
  for (int n = 0; n < 3 && e.lease_ms != 21000u; ++n) {
    auto body = master_.Expect(Command::kExtend);
    ASSERT_TRUE(body) << "no EXTEND for the lease of 21000 ms";
    ASSERT_TRUE(protocol::DecodeBody(*body, &e).ok());
    ASSERT_EQ(e.refs.size(), 1u);
    EXPECT_EQ(e.refs[0], (protocol::TaskRef{4, 2}));
    EXPECT_TRUE(e.lease_ms == 20000u || e.lease_ms == 21000u) << e.lease_ms;
  }
  EXPECT_EQ(e.lease_ms, 21000u);
  release_ = true;
  auto results = NextResults();
  ASSERT_TRUE(results);
  ASSERT_EQ(results->results.size(), 1u);
  EXPECT_EQ(results->results[0].outcome, protocol::Outcome::kOk);
  master_.Send(protocol::Ack{{{4, 2}}});
}

TEST(WorkerTags, AcceptsTheDocumentedForm) {
  EXPECT_TRUE(ValidateTags({}).ok());
  EXPECT_TRUE(ValidateTags({"gpu", "region.eu-west_1", std::string(kMaxTagBytes, 'a')}).ok());
  EXPECT_TRUE(ValidateTags(std::vector<std::string>(kMaxTags, "t")).ok());
}

TEST(WorkerTags, RejectsBadTagsWithAClearMessage) {
  auto message = [](std::vector<std::string> tags) {
    const Status st = ValidateTags(tags);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << ::testing::PrintToString(tags);
    return st.message();
  };
  EXPECT_NE(message({"ok", ""}).find("empty"), std::string::npos);
  EXPECT_NE(message({std::string(kMaxTagBytes + 1, 'a')}).find("65 bytes"), std::string::npos);
  EXPECT_NE(message({"a b"}).find("0x20 at offset 1"), std::string::npos);
  EXPECT_NE(message({"caf\xc3\xa9"}).find("0xc3"), std::string::npos);
  EXPECT_NE(message({"x/y"}).find("0x2f"), std::string::npos);
  EXPECT_NE(message(std::vector<std::string>(kMaxTags + 1, "t")).find("at most 32"),
            std::string::npos);
}

TEST(WorkerTags, ASessionWithBadTagsDoesNotStart) {
  transport::Context ctx;
  HandlerRegistry registry;
  WorkerOptions options;
  options.connect = {"inproc://nobody"};
  options.tags = {"bad tag"};
  Session session(options, ctx, registry, SystemClock::Get());
  const Status st = session.Run();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace yard::worker
