// Worker Session against a scripted master: the test owns the master's ROUTER socket and says
// exactly what a real master would, at the moments that are hard to reach with a real one.
#include "worker/session.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <thread>

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

  // The next message of command `want` from the worker (others are skipped), or nullopt.
  std::optional<std::string> Expect(Command want) {
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
      if (cmd == want) return f.parts[2];
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

}  // namespace
}  // namespace yard::worker
