#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "worker/handlers/builtin.h"
#include "worker/handlers/registry.h"

namespace yard::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class BuiltinHandlersTest : public ::testing::Test {
 protected:
  BuiltinHandlersTest() { RegisterBuiltinHandlers(registry_); }

  StatusOr<std::string> Run(std::string_view type, std::string_view payload,
                            const std::atomic<bool>* stop = nullptr) {
    const Handler* h = registry_.Find(type);
    EXPECT_NE(h, nullptr) << type;
    if (!h) return NotFound(std::string(type));
    TaskContext ctx{1, 1, type, payload, stop, 0, nullptr};
    return (*h)(ctx);
  }

  std::string RunOk(std::string_view type, std::string_view payload) {
    auto out = Run(type, payload);
    EXPECT_TRUE(out.ok()) << type << "(" << payload << "): " << out.status().ToString();
    return out.ok() ? *out : "";
  }

  nlohmann::json RunJson(std::string_view type, std::string_view payload) {
    const std::string out = RunOk(type, payload);
    nlohmann::json j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << "output is not JSON: " << out;
    return j;
  }

  StatusCode ErrorOf(std::string_view type, std::string_view payload) {
    auto out = Run(type, payload);
    EXPECT_FALSE(out.ok()) << type << "(" << payload << ") returned " << (out.ok() ? *out : "");
    return out.status().code();
  }

  HandlerRegistry registry_;
};

TEST_F(BuiltinHandlersTest, RegistersTheDocumentedTypes) {
  EXPECT_THAT(registry_.Types(), ElementsAre("cpu", "echo", "fail", "sleep", "sleep-extend",
                                             "telemetry.stats", "telemetry.threshold"));
}

TEST_F(BuiltinHandlersTest, EchoReturnsThePayload) {
  EXPECT_EQ(RunOk("echo", "hello"), "hello");
  EXPECT_EQ(RunOk("echo", ""), "");
  const std::string binary("\x00\xff\x00z", 4);
  EXPECT_EQ(RunOk("echo", binary), binary);
}

TEST_F(BuiltinHandlersTest, SleepReturnsItsPayload) {
  EXPECT_EQ(RunOk("sleep", "3"), "3");
  EXPECT_EQ(RunOk("sleep", "0"), "0");
  EXPECT_EQ(RunOk("sleep", ""), "");
  EXPECT_EQ(RunOk("sleep", "1\n"), "1\n") << "a trailing newline is allowed";
}

TEST_F(BuiltinHandlersTest, SleepRejectsBadPayloads) {
  EXPECT_EQ(ErrorOf("sleep", "soon"), StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorOf("sleep", "-5"), StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorOf("sleep", "5ms"), StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorOf("sleep", "86400001"), StatusCode::kInvalidArgument) << "over a day";
}

TEST_F(BuiltinHandlersTest, SleepStopsWhenTheWorkerStops) {
  const std::atomic<bool> stop{true};
  auto out = Run("sleep", "3600000", &stop);  // an hour, cut short at once
  EXPECT_EQ(out.status().code(), StatusCode::kCancelled);
}

// A TaskControl that records Extend calls and cancels after `cancel_after` of them (0: never).
class FakeControl final : public TaskControl {
 public:
  explicit FakeControl(size_t cancel_after = 0) : cancel_after_(cancel_after) {}
  bool Cancelled() const override { return cancelled_.load(); }
  void Extend(uint32_t lease_ms) const override {
    std::lock_guard lock(mu_);
    extends_.push_back(lease_ms);
    if (cancel_after_ != 0 && extends_.size() >= cancel_after_) cancelled_ = true;
  }
  void Cancel() { cancelled_ = true; }
  std::vector<uint32_t> extends() const {
    std::lock_guard lock(mu_);
    return extends_;
  }

 private:
  const size_t cancel_after_;
  mutable std::atomic<bool> cancelled_{false};
  mutable std::mutex mu_;
  mutable std::vector<uint32_t> extends_;
};

class ControlledHandlersTest : public BuiltinHandlersTest {
 protected:
  // Runs `type` on its own thread with `control` and a lease. Without `stop`, the fixture's
  // abort flag stands in for it, so that a handler that misses its cancel still ends.
  std::future<StatusOr<std::string>> Start(std::string_view type, std::string_view payload,
                                           const TaskControl& control, uint32_t lease_ms,
                                           const std::atomic<bool>* stop = nullptr) {
    const Handler* h = registry_.Find(type);
    EXPECT_NE(h, nullptr) << type;
    if (!h) return std::async(std::launch::deferred, [] { return StatusOr<std::string>(""); });
    if (!stop) stop = &abort_;
    return std::async(std::launch::async, [=, &control] {
      return (*h)(TaskContext{7, 2, type, payload, stop, lease_ms, &control});
    });
  }

  // The handler's return, or nullopt (and a failure) if it has not returned within 30 s.
  std::optional<StatusOr<std::string>> Finish(std::future<StatusOr<std::string>>& run) {
    if (run.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      ADD_FAILURE() << "the handler did not return";
      abort_ = true;
      run.wait();
      return std::nullopt;
    }
    return run.get();
  }

  std::optional<StatusOr<std::string>> RunWith(std::string_view type, std::string_view payload,
                                               const TaskControl& control, uint32_t lease_ms,
                                               const std::atomic<bool>* stop = nullptr) {
    auto run = Start(type, payload, control, lease_ms, stop);
    return Finish(run);
  }

  std::atomic<bool> abort_{false};
};

TEST_F(ControlledHandlersTest, SleepReturnsAPermanentErrorWhenCancelled) {
  FakeControl control;
  control.Cancel();
  auto out = RunWith("sleep", "3600000", control, 1000);  // an hour, cut short at once
  ASSERT_TRUE(out);
  ASSERT_FALSE(out->ok());
  EXPECT_TRUE(IsPermanentFailure(out->status().code())) << out->status().ToString();
  EXPECT_EQ(out->status().message(), "cancelled");
}

TEST_F(ControlledHandlersTest, SleepWakesUpWhenCancelledWhileSleeping) {
  FakeControl control;
  auto run = Start("sleep", "3600000", control, 1000);
  EXPECT_EQ(run.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout)
      << "an hour's sleep ended by itself";
  control.Cancel();
  auto out = Finish(run);
  ASSERT_TRUE(out) << "an hour's sleep did not notice the cancel";
  ASSERT_FALSE(out->ok());
  EXPECT_EQ(out->status().message(), "cancelled");
}

TEST_F(ControlledHandlersTest, SleepStoppingIsRetryableAndNotCancelled) {
  FakeControl control;
  const std::atomic<bool> stop{true};
  auto out = RunWith("sleep", "3600000", control, 1000, &stop);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->status().code(), StatusCode::kCancelled) << "the task may run elsewhere";
  EXPECT_FALSE(IsPermanentFailure(out->status().code()));
}

TEST_F(ControlledHandlersTest, SleepDoesNotRenewItsLease) {
  FakeControl control;
  auto out = RunWith("sleep", "30", control, 3);
  ASSERT_TRUE(out);
  ASSERT_TRUE(out->ok()) << out->status().ToString();
  EXPECT_THAT(control.extends(), ::testing::IsEmpty());
}

TEST_F(ControlledHandlersTest, SleepExtendRenewsItsOwnLeaseUntilCancelled) {
  // An hour's sleep that can only end through the cancel that its third Extend triggers.
  FakeControl control(/*cancel_after=*/3);
  auto out = RunWith("sleep-extend", "3600000", control, 30);
  ASSERT_TRUE(out);
  ASSERT_FALSE(out->ok());
  EXPECT_EQ(out->status().message(), "cancelled");
  EXPECT_THAT(control.extends(), ElementsAre(30u, 30u, 30u)) << "each asks for the task's lease";
}

TEST_F(ControlledHandlersTest, SleepExtendReturnsItsPayload) {
  FakeControl control;
  auto out = RunWith("sleep-extend", "5", control, 60000);
  ASSERT_TRUE(out);
  EXPECT_EQ(**out, "5");
  EXPECT_EQ(RunOk("sleep-extend", "3"), "3") << "without a lease it just sleeps";
  EXPECT_EQ(ErrorOf("sleep-extend", "soon"), StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorOf("sleep-extend", "86400001"), StatusCode::kInvalidArgument);
}

TEST_F(ControlledHandlersTest, CpuStopsWhenCancelled) {
  FakeControl control;
  control.Cancel();
  auto out = RunWith("cpu", "10000000000", control, 1000);
  ASSERT_TRUE(out);
  ASSERT_FALSE(out->ok());
  EXPECT_EQ(out->status().message(), "cancelled");
}

TEST_F(BuiltinHandlersTest, CpuIsDeterministic) {
  EXPECT_EQ(RunOk("cpu", "0"), "18087837650825916257");
  EXPECT_EQ(RunOk("cpu", "1"), "973819730272012410");
  EXPECT_EQ(RunOk("cpu", "1000"), "14777236588817839069");
  EXPECT_EQ(RunOk("cpu", "12345"), "9649837574457810328");
  EXPECT_EQ(RunOk("cpu", ""), RunOk("cpu", "1000")) << "the default is 1000 iterations";
  EXPECT_EQ(RunOk("cpu", "12345"), RunOk("cpu", "12345"));
}

TEST_F(BuiltinHandlersTest, CpuRejectsBadPayloads) {
  EXPECT_EQ(ErrorOf("cpu", "many"), StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorOf("cpu", "10000000001"), StatusCode::kInvalidArgument);
}

TEST_F(BuiltinHandlersTest, FailAsksForARetryUnlessPermanent) {
  auto retry = Run("fail", "");
  ASSERT_FALSE(retry.ok());
  EXPECT_FALSE(IsPermanentFailure(retry.status().code())) << retry.status().ToString();
  auto again = Run("fail", "anything");
  EXPECT_FALSE(IsPermanentFailure(again.status().code()));
  auto permanent = Run("fail", "permanent");
  ASSERT_FALSE(permanent.ok());
  EXPECT_TRUE(IsPermanentFailure(permanent.status().code())) << permanent.status().ToString();
  EXPECT_THAT(permanent.status().message(), HasSubstr("permanent"));
}

TEST_F(BuiltinHandlersTest, TelemetryStatsSummarisesNumbers) {
  const nlohmann::json j = RunJson("telemetry.stats", "[3, 1, 2, 4, 5, 6, 7, 8, 9, 10]");
  EXPECT_EQ(j["count"], 10);
  EXPECT_DOUBLE_EQ(j["min"].get<double>(), 1);
  EXPECT_DOUBLE_EQ(j["max"].get<double>(), 10);
  EXPECT_DOUBLE_EQ(j["mean"].get<double>(), 5.5);
  // Nearest rank: p50 = the 5th of 10, p95 = the 10th of 10.
  EXPECT_DOUBLE_EQ(j["p50"].get<double>(), 5);
  EXPECT_DOUBLE_EQ(j["p95"].get<double>(), 10);
}

TEST_F(BuiltinHandlersTest, TelemetryStatsPercentilesAreNearestRank) {
  std::string twenty = "[";
  for (int i = 20; i >= 1; --i) twenty += std::to_string(i) + (i > 1 ? "," : "]");
  const nlohmann::json j = RunJson("telemetry.stats", twenty);
  EXPECT_DOUBLE_EQ(j["p50"].get<double>(), 10);  // rank ceil(0.50 * 20) = 10
  EXPECT_DOUBLE_EQ(j["p95"].get<double>(), 19);  // rank ceil(0.95 * 20) = 19
  EXPECT_DOUBLE_EQ(j["mean"].get<double>(), 10.5);

  const nlohmann::json three = RunJson("telemetry.stats", "[30, 10, 20]");
  EXPECT_DOUBLE_EQ(three["p50"].get<double>(), 20);  // rank ceil(1.5) = 2
  EXPECT_DOUBLE_EQ(three["p95"].get<double>(), 30);  // rank ceil(2.85) = 3

  const nlohmann::json one = RunJson("telemetry.stats", "[-2.5]");
  EXPECT_EQ(one["count"], 1);
  for (const char* field : {"min", "max", "mean", "p50", "p95"}) {
    EXPECT_DOUBLE_EQ(one[field].get<double>(), -2.5) << field;
  }
}

TEST_F(BuiltinHandlersTest, TelemetryStatsOfNothingIsACountOfZero) {
  const nlohmann::json j = RunJson("telemetry.stats", "[]");
  EXPECT_EQ(j, nlohmann::json({{"count", 0}}));
}

TEST_F(BuiltinHandlersTest, TelemetryStatsReadsObjectsWithValue) {
  const nlohmann::json j = RunJson(
      "telemetry.stats", R"([{"value": 4, "sensor": "a"}, 2, {"value": 6.5, "unit": "C"}])");
  EXPECT_EQ(j["count"], 3);
  EXPECT_DOUBLE_EQ(j["min"].get<double>(), 2);
  EXPECT_DOUBLE_EQ(j["max"].get<double>(), 6.5);
  EXPECT_DOUBLE_EQ(j["mean"].get<double>(), 12.5 / 3);
}

TEST_F(BuiltinHandlersTest, TelemetryStatsRejectsBadPayloads) {
  for (const char* payload : {"", "not json", "[1, 2", "{\"values\": [1]}", "42", "[1, \"2\"]",
                              "[{\"val\": 1}]", "[{\"value\": \"1\"}]", "[null]", "[[1]]"}) {
    auto out = Run("telemetry.stats", payload);
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument) << payload;
    EXPECT_TRUE(IsPermanentFailure(out.status().code())) << "bad input is not worth a retry";
  }
}

TEST_F(BuiltinHandlersTest, TelemetryThresholdListsReadingsAboveTheLimit) {
  const nlohmann::json j =
      RunJson("telemetry.threshold", R"({"limit": 5, "readings": [1, 7, 5, {"value": 9}, 5.01]})");
  EXPECT_EQ(j["count"], 5);
  EXPECT_DOUBLE_EQ(j["limit"].get<double>(), 5);
  ASSERT_TRUE(j["alerts"].is_array());
  ASSERT_EQ(j["alerts"].size(), 3u) << j.dump();
  EXPECT_EQ(j["alerts"][0]["index"], 1);
  EXPECT_DOUBLE_EQ(j["alerts"][0]["value"].get<double>(), 7);
  EXPECT_EQ(j["alerts"][1]["index"], 3);
  EXPECT_DOUBLE_EQ(j["alerts"][1]["value"].get<double>(), 9);
  EXPECT_EQ(j["alerts"][2]["index"], 4);

  const nlohmann::json quiet = RunJson("telemetry.threshold", R"({"limit": 100, "readings": []})");
  EXPECT_EQ(quiet["count"], 0);
  EXPECT_TRUE(quiet["alerts"].is_array());
  EXPECT_TRUE(quiet["alerts"].empty());
}

TEST_F(BuiltinHandlersTest, TelemetryThresholdRejectsBadPayloads) {
  for (const char* payload :
       {"", "nope", "[1, 2]", R"({"readings": [1]})", R"({"limit": "5", "readings": [1]})",
        R"({"limit": 5})", R"({"limit": 5, "readings": 7})", R"({"limit": 5, "readings": ["x"]})",
        R"({"limit": 5, "readings": [{"v": 1}]})"}) {
    auto out = Run("telemetry.threshold", payload);
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument) << payload;
  }
}

// ---------------------------------------------------------------- registry

StatusOr<std::string> Constant(const TaskContext&) { return std::string("c"); }

TEST(HandlerRegistry, RegisterAndFind) {
  HandlerRegistry r;
  EXPECT_TRUE(r.Register("a", Constant).ok());
  EXPECT_TRUE(r.Register("b.c", [](const TaskContext& ctx) -> StatusOr<std::string> {
                 return std::string(ctx.type);
               }).ok());
  const Handler* a = r.Find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(*(*a)(TaskContext{}), "c");
  const Handler* bc = r.Find("b.c");
  ASSERT_NE(bc, nullptr);
  EXPECT_EQ(*(*bc)(TaskContext{1, 1, "b.c", "", nullptr, 0, nullptr}), "b.c");
  EXPECT_EQ(r.Find("missing"), nullptr);
  EXPECT_EQ(r.Find(""), nullptr);
  EXPECT_EQ(r.Find("A"), nullptr) << "types are case-sensitive";
  EXPECT_THAT(r.Types(), ElementsAre("a", "b.c"));
}

TEST(HandlerRegistry, RefusesDuplicates) {
  HandlerRegistry r;
  ASSERT_TRUE(r.Register("a", Constant).ok());
  const Status st = r.Register("a", Constant);
  EXPECT_EQ(st.code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(st.message(), HasSubstr("'a'"));
  EXPECT_THAT(r.Types(), ElementsAre("a"));
}

TEST(HandlerRegistry, RefusesEmptyAndOverlongTypes) {
  HandlerRegistry r;
  EXPECT_EQ(r.Register("", Constant).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.Register(std::string(129, 't'), Constant).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(r.Register(std::string(128, 't'), Constant).ok());
}

TEST(HandlerRegistry, RestrictKeepsOnlyTheNamedTypes) {
  HandlerRegistry r;
  RegisterBuiltinHandlers(r);
  ASSERT_TRUE(r.Restrict({"echo", "sleep"}).ok());
  EXPECT_THAT(r.Types(), ElementsAre("echo", "sleep"));
  EXPECT_EQ(r.Find("cpu"), nullptr);
  ASSERT_NE(r.Find("echo"), nullptr);
  EXPECT_EQ(*(*r.Find("echo"))(TaskContext{1, 1, "echo", "still works", nullptr, 0, nullptr}),
            "still works");
}

TEST(HandlerRegistry, RestrictToAnUnknownTypeFailsAndChangesNothing) {
  HandlerRegistry r;
  RegisterBuiltinHandlers(r);
  const Status st = r.Restrict({"echo", "resize"});
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr("resize"));
  EXPECT_THAT(r.Types(), ::testing::SizeIs(7));
}

TEST(HandlerRegistry, PermanentFailuresAreTheDocumentedCodes) {
  const std::vector<StatusCode> permanent = {
      StatusCode::kInvalidArgument, StatusCode::kFailedPrecondition, StatusCode::kNotFound,
      StatusCode::kPermissionDenied, StatusCode::kUnimplemented};
  for (int c = 0; c <= static_cast<int>(StatusCode::kDataLoss); ++c) {
    const auto code = static_cast<StatusCode>(c);
    const bool expected = std::find(permanent.begin(), permanent.end(), code) != permanent.end();
    EXPECT_EQ(IsPermanentFailure(code), expected) << StatusCodeName(code);
  }
}

TEST(TaskContext, WithoutAControlItIsNeverCancelledAndExtendIsHarmless) {
  const TaskContext ctx{1, 1, "t", "", nullptr, 1000, nullptr};
  EXPECT_FALSE(ctx.Cancelled());
  ctx.Extend(1000);
  EXPECT_FALSE(TaskContext{}.Cancelled());
}

TEST(TaskContext, CancelledAndStoppingAreSeparate) {
  std::atomic<bool> stop{true};
  FakeControl control;
  const TaskContext ctx{1, 1, "t", "", &stop, 1000, &control};
  EXPECT_TRUE(ctx.Stopping());
  EXPECT_FALSE(ctx.Cancelled()) << "stopping is not a cancel";
  stop = false;
  control.Cancel();
  EXPECT_TRUE(ctx.Cancelled());
  EXPECT_FALSE(ctx.Stopping());
  ctx.Extend(2500);
  EXPECT_THAT(control.extends(), ElementsAre(2500u));
}

TEST(TaskContext, StoppingReflectsTheFlag) {
  std::atomic<bool> stop{false};
  TaskContext ctx{1, 1, "t", "", &stop, 0, nullptr};
  EXPECT_FALSE(ctx.Stopping());
  stop = true;
  EXPECT_TRUE(ctx.Stopping());
  EXPECT_FALSE(TaskContext{}.Stopping()) << "no flag: never stopping";
}

}  // namespace
}  // namespace yard::worker
