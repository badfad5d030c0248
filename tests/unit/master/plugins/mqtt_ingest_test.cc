#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "master/plugins/mqtt/ingest.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_master_api.h"

namespace yard::mqtt {
namespace {

using testing::FakeClock;
using testing::FakeMasterApi;

class FakePublisher final : public Publisher {
 public:
  struct Sent {
    std::string topic;
    nlohmann::json body;
    int qos;
    std::string correlation;
  };
  std::vector<Sent> sent;
  bool connected = true;
  bool Publish(const std::string& topic, const std::string& payload, int qos,
               const std::string& correlation) override {
    if (!connected) return false;
    sent.push_back({topic, nlohmann::json::parse(payload), qos, correlation});
    return true;
  }
};

class IngestTest : public ::testing::Test {
 protected:
  void Configure(std::string_view rules) {
    auto c = ParseMqttConfig(
        toml::parse("brokers = \"localhost\"\npause_above = 100\n" + std::string(rules)));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    config_ = *c;
    ingest_ = std::make_unique<Ingest>(config_, api_, out_, metrics_, clock_);
  }
  void Msg(const std::string& topic, const std::string& payload, int qos = 1) {
    Message m;
    m.topic = topic;
    m.payload = payload;
    m.qos = qos;
    ingest_->OnMessage(m);
  }
  // One loop turn: answers, then Tick.
  void Turn() {
    api_.Process();
    ingest_->Tick();
    api_.Process();
  }
  std::vector<std::string> Payloads() const {
    std::vector<std::string> out;
    for (const auto& t : api_.tasks) out.push_back(t.payload);
    return out;
  }

  FakeClock clock_;
  FakeMasterApi api_;
  FakePublisher out_;
  Metrics metrics_;
  MqttConfig config_;
  std::unique_ptr<Ingest> ingest_;
};

constexpr const char* kPlain = R"(
  [[rules]]
  topic = "telemetry/#"
  type = "t"
)";

TEST_F(IngestTest, TelemetryBecomesTasksKeyedByDeviceInOrder) {
  Configure(kPlain);
  Msg("yard/devices/d1/telemetry", R"({"v":1})");
  Msg("yard/devices/d2/telemetry/temp", R"({"v":2})");
  Msg("yard/devices/d1/telemetry", R"({"v":3})");
  EXPECT_EQ(ingest_->buffered(), 3u);
  Turn();
  ASSERT_EQ(api_.tasks.size(), 3u);
  EXPECT_EQ(api_.submit_calls, 1u);  // one SUBMIT for the turn
  EXPECT_EQ(Payloads(), (std::vector<std::string>{R"({"v":1})", R"({"v":2})", R"({"v":3})"}));
  EXPECT_EQ(api_.tasks[0].key, "d1");
  EXPECT_EQ(api_.tasks[1].key, "d2");
  EXPECT_EQ(api_.tasks[0].type, "t");
  EXPECT_EQ(ingest_->buffered(), 0u);
  EXPECT_EQ(metrics_.Get("mqtt.messages_committed"), 3u);
}

TEST_F(IngestTest, OneSubmitInFlightAndWhatArrivesMeanwhileGoesNext) {
  Configure(kPlain);
  api_.answer_submits = false;
  Msg("yard/devices/d1/telemetry", "1");
  Turn();
  Msg("yard/devices/d1/telemetry", "2");
  Msg("yard/devices/d1/telemetry", "3");
  Turn();
  EXPECT_EQ(api_.submit_calls, 1u);  // the second waits for the first's commit
  api_.answer_submits = true;
  api_.Release();
  Turn();
  EXPECT_EQ(api_.submit_calls, 2u);
  EXPECT_EQ(Payloads(), (std::vector<std::string>{"1", "2", "3"}));
}

TEST_F(IngestTest, BatchesByCountAndByTime) {
  Configure(R"(
    [[rules]]
    topic = "telemetry"
    type = "telemetry.stats"
    batch_count = 3
    batch_window = "500ms"
  )");
  for (int i = 1; i <= 7; ++i) Msg("yard/devices/d1/telemetry", std::to_string(i));
  Msg("yard/devices/d2/telemetry", "{\"value\":9}");
  Turn();
  EXPECT_EQ(Payloads(), (std::vector<std::string>{"[1,2,3]", "[4,5,6]"}));
  EXPECT_EQ(ingest_->buffered(), 2u);  // 7 and d2's reading wait for their window
  clock_.Advance(499 * kMillis);
  Turn();
  EXPECT_EQ(api_.tasks.size(), 2u);
  clock_.Advance(1 * kMillis);
  Turn();
  ASSERT_EQ(api_.tasks.size(), 4u);
  EXPECT_EQ(api_.tasks[2].payload, "[7]");
  EXPECT_EQ(api_.tasks[3].payload, "[{\"value\":9}]");
  EXPECT_EQ(api_.tasks[3].key, "d2");
  EXPECT_EQ(metrics_.Get("mqtt.batches"), 4u);
  EXPECT_EQ(ingest_->buffered(), 0u);
}

TEST_F(IngestTest, ABatchNeverOutgrowsThePayloadLimit) {
  Configure(R"(
    max_payload_bytes = 20
    [[rules]]
    topic = "telemetry"
    type = "t"
    batch_count = 100
  )");
  for (int i = 0; i < 5; ++i) Msg("yard/devices/d1/telemetry", "123456");
  ingest_->FlushAll();
  Turn();
  for (const auto& p : Payloads()) EXPECT_LE(p.size(), 20u) << p;
  EXPECT_EQ(Payloads().front(), "[123456,123456]");
}

TEST_F(IngestTest, RefusedSubmitIsRetriedFirstAndKeepsOrder) {
  Configure(kPlain);
  api_.refusals.push_back(Unavailable("store failing"));
  Msg("yard/devices/d1/telemetry", "1");
  Msg("yard/devices/d1/telemetry", "2");
  Turn();
  EXPECT_TRUE(api_.tasks.empty());
  EXPECT_FALSE(ingest_->WantRead());      // no reading during the back-off
  Msg("yard/devices/d1/telemetry", "3");  // already read before the refusal came
  clock_.Advance(100 * kMillis);
  Turn();
  EXPECT_EQ(Payloads(), (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_EQ(metrics_.Get("mqtt.submit_retries"), 1u);
  EXPECT_TRUE(ingest_->WantRead());
}

TEST_F(IngestTest, AnInvalidTaskIsFoundAndRejectedAlone) {
  Configure(kPlain);
  api_.refusals = {InvalidArgument("bad"), Status::Ok(), InvalidArgument("task 2 is bad"),
                   Status::Ok()};
  for (const char* p : {"1", "2", "3"}) Msg("yard/devices/d1/telemetry", p);
  for (int i = 0; i < 5; ++i) Turn();
  EXPECT_EQ(Payloads(), (std::vector<std::string>{"1", "3"}));
  EXPECT_EQ(metrics_.Get("mqtt.rejected.invalid_task"), 1u);
  EXPECT_EQ(ingest_->buffered(), 0u);
}

TEST_F(IngestTest, QueueFullPausesUntilItFallsBelowTheLowWaterMark) {
  Configure(kPlain);
  api_.refusals.push_back(ResourceExhausted("queue full"));
  api_.active = 100;
  Msg("yard/devices/d1/telemetry", "1");
  Turn();
  EXPECT_TRUE(ingest_->paused());
  EXPECT_FALSE(ingest_->WantRead());
  api_.active = 60;  // below pause_above, above resume_below (50)
  clock_.Advance(200 * kMillis);
  Turn();
  EXPECT_TRUE(ingest_->paused());
  EXPECT_EQ(api_.tasks.size(), 1u);  // the refused task went in on retry
  api_.active = 50;
  clock_.Advance(200 * kMillis);
  Turn();
  EXPECT_FALSE(ingest_->paused());
  EXPECT_TRUE(ingest_->WantRead());
  EXPECT_EQ(metrics_.Get("mqtt.pauses"), 1u);
  EXPECT_EQ(metrics_.Get("mqtt.paused_ms"), 400u);
}

TEST_F(IngestTest, StatsAbovePauseAbovePauseReading) {
  Configure(kPlain);
  api_.active = 150;
  Turn();
  EXPECT_TRUE(ingest_->paused());
  EXPECT_FALSE(ingest_->WantRead());
  api_.active = 10;
  clock_.Advance(100 * kMillis);
  Turn();
  EXPECT_TRUE(ingest_->WantRead());
}

TEST_F(IngestTest, ReadingStopsAtMaxBuffered) {
  Configure(std::string("max_buffered = 2\n") + kPlain);
  api_.answer_submits = false;
  Msg("yard/devices/d1/telemetry", "1");
  EXPECT_TRUE(ingest_->WantRead());
  Msg("yard/devices/d1/telemetry", "2");
  EXPECT_FALSE(ingest_->WantRead());
  Turn();
  api_.Release();
  Turn();
  EXPECT_TRUE(ingest_->WantRead());
}

TEST_F(IngestTest, QosZeroIsShedAboveItsThreshold) {
  Configure(std::string("shed_qos0_above = 10\n") + kPlain);
  api_.active = 20;
  Turn();  // learns the depth
  Msg("yard/devices/d1/telemetry", "0", 0);
  Msg("yard/devices/d1/telemetry", "1", 1);
  Turn();
  EXPECT_EQ(Payloads(), std::vector<std::string>{"1"});
  EXPECT_EQ(metrics_.Get("mqtt.dropped.shed_qos0"), 1u);
}

TEST_F(IngestTest, RequestIsAnsweredWhenItsTaskEnds) {
  Configure("");  // default rules: requests/echo
  Msg("yard/devices/d7/requests/echo", R"({"request_id":"r-1","payload":"hello"})");
  Msg("yard/devices/d7/requests/echo", R"({"request_id":42,"payload":{"a":1}})");
  Turn();
  ASSERT_EQ(api_.tasks.size(), 2u);
  EXPECT_EQ(api_.tasks[0].type, "echo");
  EXPECT_EQ(api_.tasks[0].payload, "hello");
  EXPECT_EQ(api_.tasks[1].payload, R"({"a":1})");
  EXPECT_EQ(ingest_->awaiting_reply(), 2u);
  api_.FinishTask(1, protocol::TaskState::kSucceeded, "hello");
  api_.FinishTask(2, protocol::TaskState::kDead, "", "handler crashed");
  Turn();
  ASSERT_EQ(out_.sent.size(), 2u);
  EXPECT_EQ(out_.sent[0].topic, "yard/devices/d7/responses/r-1");
  EXPECT_EQ(out_.sent[0].body["state"], "succeeded");
  EXPECT_EQ(out_.sent[0].body["result"], "hello");
  EXPECT_EQ(out_.sent[0].body["task_id"], 1);
  EXPECT_EQ(out_.sent[0].qos, 1);
  EXPECT_EQ(out_.sent[1].topic, "yard/devices/d7/responses/42");
  EXPECT_EQ(out_.sent[1].body["state"], "dead");
  EXPECT_EQ(out_.sent[1].body["error"], "handler crashed");
  EXPECT_EQ(ingest_->awaiting_reply(), 0u);
}

TEST_F(IngestTest, Mqtt5CorrelationDataAndResponseTopic) {
  Configure(R"(
    [[rules]]
    topic = "requests/raw"
    type = "echo"
    format = "raw"
  )");
  Message m;
  m.topic = "yard/devices/d1/requests/raw";
  m.payload = "\x01\x02 binary";
  m.correlation = "corr-9";
  m.response_topic = "app/replies/9";
  ingest_->OnMessage(m);
  Turn();
  ASSERT_EQ(api_.tasks.size(), 1u);
  EXPECT_EQ(api_.tasks[0].payload, m.payload);
  api_.FinishTask(1, protocol::TaskState::kSucceeded, "{\"ok\":true}");
  Turn();
  ASSERT_EQ(out_.sent.size(), 1u);
  EXPECT_EQ(out_.sent[0].topic, "app/replies/9");
  EXPECT_EQ(out_.sent[0].correlation, "corr-9");
  EXPECT_EQ(out_.sent[0].body["request_id"], "corr-9");
  EXPECT_EQ(out_.sent[0].body["result"]["ok"], true);
}

TEST_F(IngestTest, SplitRuleMakesAJobAndRepliesWithItsResult) {
  Configure(R"(
    [[rules]]
    topic = "requests/sum"
    type = "echo"
    split = "json-array:2"
    aggregate = "sum"
  )");
  Msg("yard/devices/d1/requests/sum", R"({"request_id":"s1","payload":[1,2,3]})");
  Turn();
  ASSERT_EQ(api_.jobs.size(), 1u);
  EXPECT_EQ(api_.jobs[0].split, "json-array:2");
  EXPECT_EQ(api_.jobs[0].aggregate, "sum");
  EXPECT_EQ(api_.jobs[0].task.payload, "[1,2,3]");
  api_.FinishJob(1'000'000, protocol::JobState::kSucceeded, "6");
  Turn();
  ASSERT_EQ(out_.sent.size(), 1u);
  EXPECT_EQ(out_.sent[0].body["state"], "succeeded");
  EXPECT_EQ(out_.sent[0].body["result"], 6);
  EXPECT_EQ(out_.sent[0].body["job_id"], 1'000'000);
}

TEST_F(IngestTest, BadInputIsCountedAndAnsweredWhereItCanBe) {
  Configure(std::string("max_payload_bytes = 64\n") + R"(
    [[rules]]
    topic = "telemetry/#"
    type = "t"
    [[rules]]
    topic = "requests/echo"
    type = "echo"
  )");
  Msg("yard/devices/d1/telemetry", "{not json");
  Msg("yard/devices/d1/telemetry", std::string(65, '1'));
  Msg("yard/devices/d 1/telemetry", "1");
  Msg("yard/devices/d1/status", "1");
  Msg("other/topic", "1");
  Msg("yard/devices/d1/requests/launch", R"({"request_id":"r9"})");
  Msg("yard/devices/d1/requests/echo", R"({"payload":"no id"})");
  Msg("yard/devices/d1/requests/echo", R"({"request_id":"a/b"})");
  Msg("yard/devices/d1/requests/echo", R"(["request_id"])");
  Msg("yard/devices/d1/requests/echo", "{broken");
  Turn();
  EXPECT_TRUE(api_.tasks.empty());
  EXPECT_EQ(metrics_.Get("mqtt.rejected.bad_json"), 2u);
  EXPECT_EQ(metrics_.Get("mqtt.rejected.too_large"), 1u);
  EXPECT_EQ(metrics_.Get("mqtt.rejected.bad_device_id"), 1u);
  EXPECT_EQ(metrics_.Get("mqtt.rejected.unknown_topic"), 2u);
  EXPECT_EQ(metrics_.Get("mqtt.rejected.unknown_request_type"), 1u);
  EXPECT_EQ(metrics_.Get("mqtt.rejected.missing_request_id"), 2u);  // no id, not an object
  EXPECT_EQ(metrics_.Get("mqtt.rejected.bad_request_id"), 1u);
  EXPECT_EQ(metrics_.Get("mqtt.received"), 10u);
  // Only the unknown request type had an id to answer.
  ASSERT_EQ(out_.sent.size(), 1u);
  EXPECT_EQ(out_.sent[0].topic, "yard/devices/d1/responses/r9");
  EXPECT_EQ(out_.sent[0].body["state"], "rejected");
  EXPECT_EQ(out_.sent[0].body["error"]["code"], "unknown_request_type");
  EXPECT_EQ(ingest_->buffered(), 0u);
}

}  // namespace
}  // namespace yard::mqtt
