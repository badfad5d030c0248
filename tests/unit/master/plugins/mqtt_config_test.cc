#include <gtest/gtest.h>

#include "master/plugins/mqtt/config.h"

namespace yard::mqtt {
namespace {

StatusOr<MqttConfig> Parse(std::string_view text) { return ParseMqttConfig(toml::parse(text)); }

void ExpectError(std::string_view text, const std::string& fragment) {
  auto c = Parse(text);
  ASSERT_FALSE(c.ok()) << text;
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find(fragment), std::string::npos) << c.status().message();
}

TEST(MqttConfig, BrokersAreRequiredAndParsed) {
  ExpectError("", "mqtt.brokers: required");
  auto c = Parse(R"(brokers = ["tcp://a:1884", "b", "mqtt://c:1"]
                   tls_ca_file = "/ca.pem")");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->brokers.size(), 3u);
  EXPECT_EQ(c->brokers[0].host, "a");
  EXPECT_EQ(c->brokers[0].port, 1884);
  EXPECT_EQ(c->brokers[1].port, 1883);
  EXPECT_EQ(c->brokers[2].ToString(), "tcp://c:1");
  ExpectError(R"(brokers = "mqtts://secure")", "mqtt.tls_ca_file: required");
  ExpectError(R"(brokers = "http://x")", "mqtt.brokers: broker 'http://x': scheme");
  ExpectError(R"(brokers = "x:99999")", "bad port");
  ExpectError(R"(brokers = "tcp://:1883")", "no host");
}

TEST(MqttConfig, DefaultsRouteTelemetryAndTwoRequestTypes) {
  auto c = Parse(R"(brokers = "localhost")");
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->rules.size(), 3u);
  EXPECT_EQ(c->rules[0].topic, "telemetry/#");
  EXPECT_EQ(c->rules[0].type, "telemetry.stats");
  EXPECT_EQ(c->rules[0].batch_count, 100u);
  EXPECT_EQ(c->rules[0].batch_window, kSeconds);
  EXPECT_TRUE(c->rules[1].request);
  EXPECT_EQ(c->rules[1].type, "echo");
  EXPECT_EQ(c->protocol, 311);
  EXPECT_EQ(c->resume_below, c->pause_above / 2);
  EXPECT_EQ(c->qos, 1);
}

TEST(MqttConfig, RulesAreCheckedWithTheirPath) {
  auto c = Parse(R"(
    brokers = "localhost"
    [[rules]]
    topic = "telemetry/temp"
    type = "telemetry.threshold"
    batch_count = 10
    key = "stream"
    [[rules]]
    topic = "requests/sum"
    split = "json-array:10"
    aggregate = "sum"
    policy = "continue"
    priority = 2
    timeout = "5s"
    require = ["gpu"]
  )");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->rules.size(), 2u);
  EXPECT_EQ(c->rules[0].key, KeyBy::kStream);
  EXPECT_EQ(c->rules[0].batch_window, kSeconds);  // batching without a window gets 1 s
  EXPECT_EQ(c->rules[1].type, "sum");             // a request rule's type defaults to its level
  EXPECT_EQ(c->rules[1].policy, protocol::JobPolicy::kContinue);
  EXPECT_EQ(c->rules[1].timeout_ms, 5000u);
  EXPECT_EQ(c->rules[1].require, std::vector<std::string>{"gpu"});

  const std::string head = "brokers = \"localhost\"\n[[rules]]\n";
  ExpectError(head + "topic = \"telemetry\"\ntype = \"t\"\ntypo = 1",
              "mqtt.rules[0].typo: unknown key");
  ExpectError(head + "type = \"t\"", "mqtt.rules[0].topic: required");
  ExpectError(head + "topic = \"status/x\"\ntype = \"t\"", "mqtt.rules[0].topic: must start with");
  ExpectError(head + "topic = \"telemetry/#/x\"\ntype = \"t\"", "# must be the last level");
  ExpectError(head + "topic = \"telemetry/a+\"\ntype = \"t\"", "whole level");
  ExpectError(head + "topic = \"requests/+\"", "requests/TYPE");
  ExpectError(head + "topic = \"telemetry\"", "mqtt.rules[0].type: required");
  ExpectError(head + "topic = \"telemetry\"\ntype = \"t\"\nbatch_count = 0",
              "mqtt.rules[0].batch_count");
  ExpectError(head + "topic = \"requests/a\"\nbatch_count = 5", "not batched");
  ExpectError(head + "topic = \"telemetry\"\ntype = \"t\"\nformat = \"xml\"", "json or raw");
  ExpectError(head + "topic = \"telemetry\"\ntype = \"t\"\npriority = 10",
              "mqtt.rules[0].priority");
  ExpectError(head + "topic = \"telemetry\"\ntype = \"t\"\nbatch_window = \"soon\"",
              "mqtt.rules[0].batch_window");
  ExpectError("brokers = \"localhost\"\nrules = 3", "mqtt.rules: expected [[mqtt.rules]]");
}

TEST(MqttConfig, DurationsAreTextOrSeconds) {
  auto c = Parse("brokers = \"h\"\nstats_interval = 2\nreply_timeout = \"250ms\"");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->stats_interval, 2 * kSeconds);
  EXPECT_EQ(c->reply_timeout, 250 * kMillis);
}

TEST(MqttConfig, TopLevelKeysAreChecked) {
  ExpectError("brokers = \"h\"\nbrokerz = 1", "mqtt.brokerz: unknown key");
  ExpectError("brokers = \"h\"\nprefix = \"a/+/b\"", "mqtt.prefix");
  ExpectError("brokers = \"h\"\nprotocol = 4", "mqtt.protocol");
  ExpectError("brokers = \"h\"\nqos = 2", "mqtt.qos");
  ExpectError("brokers = \"h\"\npause_above = 10\nresume_below = 10", "mqtt.resume_below");
  ExpectError("brokers = \"h\"\ntls_cert_file = \"c.pem\"", "go together");
  ExpectError("brokers = \"h\"\nreconnect_min = \"5s\"\nreconnect_max = \"1s\"", "reconnect");
}

TEST(MqttTopics, FilterMatching) {
  EXPECT_TRUE(TopicMatches("telemetry/#", "telemetry"));
  EXPECT_TRUE(TopicMatches("telemetry/#", "telemetry/temp/a"));
  EXPECT_TRUE(TopicMatches("telemetry/+", "telemetry/temp"));
  EXPECT_FALSE(TopicMatches("telemetry/+", "telemetry"));
  EXPECT_FALSE(TopicMatches("telemetry/+", "telemetry/a/b"));
  EXPECT_TRUE(TopicMatches("telemetry", "telemetry"));
  EXPECT_FALSE(TopicMatches("telemetry", "telemetry/x"));
  EXPECT_TRUE(TopicMatches("requests/echo", "requests/echo"));
  EXPECT_FALSE(TopicMatches("requests/echo", "requests/echo2"));
}

TEST(MqttTopics, DeviceAndRequestIds) {
  EXPECT_TRUE(IsValidDeviceId("dev-0001"));
  EXPECT_TRUE(IsValidDeviceId("a.b:c_d"));
  EXPECT_FALSE(IsValidDeviceId(""));
  EXPECT_FALSE(IsValidDeviceId("dev 1"));
  EXPECT_FALSE(IsValidDeviceId("dév"));
  EXPECT_FALSE(IsValidDeviceId(std::string(65, 'a')));
  EXPECT_TRUE(IsValidRequestId(std::string(128, 'a')));
  EXPECT_FALSE(IsValidRequestId(std::string(129, 'a')));
  EXPECT_FALSE(IsValidRequestId("a/b"));
}

}  // namespace
}  // namespace yard::mqtt
