// The web plugin's pure parts: the [web] config, the REST bodies and queries, the /metrics
// text, the live view's arithmetic, and the TableReader they share with other plugins.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "master/plugins/table_reader.h"
#include "master/plugins/web/config.h"
#include "master/plugins/web/live.h"
#include "master/plugins/web/prometheus.h"
#include "master/plugins/web/rest.h"

namespace yard::web {
namespace {

using protocol::TaskInfo;
using protocol::TaskState;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// Expects an InvalidArgument whose message contains `fragment`.
template <typename T>
void ExpectInvalid(const StatusOr<T>& r, const std::string& fragment) {
  ASSERT_FALSE(r.ok()) << "expected an error containing '" << fragment << "'";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr(fragment));
}
void ExpectInvalid(const Status& st, const std::string& fragment) {
  ASSERT_FALSE(st.ok()) << "expected an error containing '" << fragment << "'";
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr(fragment));
}

// ================================================================== config

struct Listen {
  Status status;
  std::string host = "unset";
  uint16_t port = 1;
};
Listen ParseListenText(std::string_view text) {
  Listen l;
  l.status = ParseListen(text, &l.host, &l.port);
  return l;
}

TEST(WebListen, HostAndPort) {
  Listen l = ParseListenText("127.0.0.1:8080");
  ASSERT_TRUE(l.status.ok()) << l.status.ToString();
  EXPECT_EQ(l.host, "127.0.0.1");
  EXPECT_EQ(l.port, 8080);

  l = ParseListenText("example.org:65535");
  ASSERT_TRUE(l.status.ok()) << l.status.ToString();
  EXPECT_EQ(l.host, "example.org");
  EXPECT_EQ(l.port, 65535);

  l = ParseListenText("localhost:0");  // any free port
  ASSERT_TRUE(l.status.ok());
  EXPECT_EQ(l.port, 0);
}

TEST(WebListen, BracketedIpv6) {
  Listen l = ParseListenText("[::1]:9000");
  ASSERT_TRUE(l.status.ok()) << l.status.ToString();
  EXPECT_EQ(l.host, "::1");
  EXPECT_EQ(l.port, 9000);

  l = ParseListenText("[fe80::1:2]:80");
  ASSERT_TRUE(l.status.ok()) << l.status.ToString();
  EXPECT_EQ(l.host, "fe80::1:2");
  EXPECT_EQ(l.port, 80);
}

TEST(WebListen, EmptyHostMeansAllInterfaces) {
  Listen l = ParseListenText(":8081");
  ASSERT_TRUE(l.status.ok()) << l.status.ToString();
  EXPECT_EQ(l.host, "0.0.0.0");
  EXPECT_EQ(l.port, 8081);
}

TEST(WebListen, BadInputsAreRefusedAndLeaveTheOutputsAlone) {
  for (const char* bad :
       {"8080", "localhost", "", "host:", "host:65536", "host:99999", "host:-1", "host:+80",
        "host:80x", "host:8 0", "a b:80", "a/b:80", "[::1]", "[::1:80", "::1:80", "::1", "[]:80"}) {
    SCOPED_TRACE(bad);
    Listen l = ParseListenText(bad);
    EXPECT_EQ(l.status.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(l.host, "unset");
    EXPECT_EQ(l.port, 1);
  }
  EXPECT_THAT(ParseListenText("localhost").status.message(), HasSubstr("HOST:PORT"));
  EXPECT_THAT(ParseListenText("h:70000").status.message(), HasSubstr("0 to 65535"));
  EXPECT_THAT(ParseListenText("a b:80").status.message(), HasSubstr("bad host"));
}

StatusOr<WebConfig> ParseWeb(std::string_view text) { return ParseWebConfig(toml::parse(text)); }

TEST(WebConfigTest, EmptySectionGivesTheDefaults) {
  auto c = ParseWeb("");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->host, "127.0.0.1");
  EXPECT_EQ(c->port, 8080);
  EXPECT_EQ(c->threads, 8u);
  EXPECT_EQ(c->max_sse_clients, 16u);
  EXPECT_EQ(c->max_body_bytes, 1u << 20);
  EXPECT_EQ(c->request_timeout, 10 * kSeconds);
  EXPECT_EQ(c->io_timeout, 5 * kSeconds);
  EXPECT_EQ(c->sse_interval, 500 * kMillis);
  EXPECT_FALSE(c->public_metrics);
  EXPECT_FALSE(c->tls());
  EXPECT_FALSE(c->auth());
  EXPECT_THAT(c->tokens, IsEmpty());
}

TEST(WebConfigTest, EveryKeyIsRead) {
  auto c = ParseWeb(R"(
    enabled = true
    listen = "[::]:9443"
    threads = 4
    max_sse_clients = 0
    max_body_bytes = 4096
    request_timeout = "2s"
    io_timeout = 3
    sse_interval = "250ms"
    public_metrics = true
    tls_cert_file = "/etc/yard/cert.pem"
    tls_key_file = "/etc/yard/key.pem"
  )");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->host, "::");
  EXPECT_EQ(c->port, 9443);
  EXPECT_EQ(c->threads, 4u);
  EXPECT_EQ(c->max_sse_clients, 0u);
  EXPECT_EQ(c->max_body_bytes, 4096u);
  EXPECT_EQ(c->request_timeout, 2 * kSeconds);
  EXPECT_EQ(c->io_timeout, 3 * kSeconds);  // a bare number is seconds
  EXPECT_EQ(c->sse_interval, 250 * kMillis);
  EXPECT_TRUE(c->public_metrics);
  EXPECT_TRUE(c->tls());
  EXPECT_EQ(c->tls_cert_file, "/etc/yard/cert.pem");
  EXPECT_EQ(c->tls_key_file, "/etc/yard/key.pem");
}

void ExpectWebError(std::string_view text, const std::string& fragment) {
  SCOPED_TRACE(text);
  ExpectInvalid(ParseWeb(text), fragment);
}

TEST(WebConfigTest, UnknownKeysAreRefusedWithTheirPath) {
  ExpectWebError("listn = \"127.0.0.1:1\"", "web.listn: unknown key");
  ExpectWebError("[tokens_x]\na = 1", "web.tokens_x: unknown key");
  ExpectWebError(R"(
    [[tokens]]
    token = "0123456789"
    scopes = "read"
    scope = "write"
  )",
                 "web.tokens[0].scope: unknown key");
}

TEST(WebConfigTest, BadValuesNameTheirKey) {
  ExpectWebError("listen = \"nope\"", "web.listen: 'nope' is not HOST:PORT");
  ExpectWebError("listen = 8080", "web.listen: expected a string");
  ExpectWebError("enabled = \"yes\"", "web.enabled: expected true or false");
  ExpectWebError("public_metrics = 1", "web.public_metrics: expected true or false");
  ExpectWebError("threads = 0", "web.threads: expected an integer from 1 to 256");
  ExpectWebError("threads = 257", "web.threads: expected an integer from 1 to 256");
  ExpectWebError("threads = -1", "web.threads");
  ExpectWebError("threads = \"8\"", "web.threads");
  ExpectWebError("threads = 2.5", "web.threads");
  ExpectWebError("threads = 4.0", "web.threads");
  ExpectWebError("threads = true", "web.threads");
  ExpectWebError("max_sse_clients = 1025", "web.max_sse_clients");
  ExpectWebError("max_body_bytes = 1023", "web.max_body_bytes: expected an integer from 1024");
  ExpectWebError("max_body_bytes = 1073741825", "web.max_body_bytes");
  ExpectWebError("tls_cert_file = 3", "web.tls_cert_file: expected a string");
  // The bounds themselves are accepted.
  EXPECT_TRUE(ParseWeb("threads = 1").ok());
  EXPECT_TRUE(ParseWeb("threads = 256").ok());
  EXPECT_TRUE(ParseWeb("max_sse_clients = 1024").ok());
  EXPECT_TRUE(ParseWeb("max_body_bytes = 1024").ok());
  EXPECT_TRUE(ParseWeb("max_body_bytes = 1073741824").ok());
}

TEST(WebConfigTest, DurationsAreCheckedAndMustBePositive) {
  ExpectWebError("request_timeout = \"soon\"", "web.request_timeout: 'soon' is not a duration");
  ExpectWebError("io_timeout = -1", "web.io_timeout: expected a duration");
  ExpectWebError("io_timeout = true", "web.io_timeout: expected a duration");
  ExpectWebError("sse_interval = \"0ms\"", "web.sse_interval: must be > 0");
  ExpectWebError("request_timeout = 0", "web.request_timeout: must be > 0");
  auto c = ParseWeb("request_timeout = \"1m\"\nsse_interval = \"1500us\"");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->request_timeout, 60 * kSeconds);
  EXPECT_EQ(c->sse_interval, 1500);
}

TEST(WebConfigTest, TlsNeedsBothFiles) {
  ExpectWebError("tls_cert_file = \"/c.pem\"", "web.tls_key_file: TLS needs both");
  ExpectWebError("tls_key_file = \"/k.pem\"", "web.tls_cert_file: TLS needs both");
}

TEST(WebConfigTest, TokensWithScopesAndNames) {
  auto c = ParseWeb(R"(
    [[tokens]]
    token = "s3cr3t-admin"
    scopes = ["read", "write", "admin"]
    name = "ops"
    [[tokens]]
    token = "dashboard-view"
    scopes = "read"
  )");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->auth());
  ASSERT_EQ(c->tokens.size(), 2u);
  const Token& ops = c->tokens[0];
  EXPECT_EQ(ops.token, "s3cr3t-admin");
  EXPECT_EQ(ops.name, "ops");
  EXPECT_TRUE(ops.Has(Scope::kRead));
  EXPECT_TRUE(ops.Has(Scope::kWrite));
  EXPECT_TRUE(ops.Has(Scope::kAdmin));
  const Token& view = c->tokens[1];
  EXPECT_EQ(view.token, "dashboard-view");
  EXPECT_EQ(view.name, "web.tokens[1]");  // no name: its path
  EXPECT_TRUE(view.Has(Scope::kRead));
  EXPECT_FALSE(view.Has(Scope::kWrite));
  EXPECT_FALSE(view.Has(Scope::kAdmin));
  EXPECT_EQ(view.scopes, static_cast<uint8_t>(Scope::kRead));
  EXPECT_STREQ(ScopeName(Scope::kWrite), "write");
}

TEST(WebConfigTest, TokenFromTheEnvironment) {
  ASSERT_EQ(setenv("YARD_WEB_TEST_TOKEN", "from-the-environment", 1), 0);
  auto c = ParseWeb(R"(
    [[tokens]]
    token_env = "YARD_WEB_TEST_TOKEN"
    scopes = ["write"]
  )");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->tokens.size(), 1u);
  EXPECT_EQ(c->tokens[0].token, "from-the-environment");
  EXPECT_TRUE(c->tokens[0].Has(Scope::kWrite));
  EXPECT_FALSE(c->tokens[0].Has(Scope::kRead));

  ExpectWebError(R"(
    [[tokens]]
    token = "0123456789"
    token_env = "YARD_WEB_TEST_TOKEN"
    scopes = "read"
  )",
                 "web.tokens[0].token_env: give token or token_env, not both");
  ASSERT_EQ(unsetenv("YARD_WEB_TEST_TOKEN_UNSET"), 0);
  ExpectWebError(R"(
    [[tokens]]
    token_env = "YARD_WEB_TEST_TOKEN_UNSET"
    scopes = "read"
  )",
                 "web.tokens[0].token_env: environment variable YARD_WEB_TEST_TOKEN_UNSET is "
                 "empty");
  ASSERT_EQ(setenv("YARD_WEB_TEST_TOKEN_EMPTY", "", 1), 0);
  ExpectWebError(R"(
    [[tokens]]
    token_env = "YARD_WEB_TEST_TOKEN_EMPTY"
    scopes = "read"
  )",
                 "YARD_WEB_TEST_TOKEN_EMPTY is empty");
  // A short token from the environment is refused like a short literal one.
  ASSERT_EQ(setenv("YARD_WEB_TEST_TOKEN", "short", 1), 0);
  ExpectWebError(R"(
    [[tokens]]
    token_env = "YARD_WEB_TEST_TOKEN"
    scopes = "read"
  )",
                 "web.tokens[0].token: must be at least 8 characters");
}

TEST(WebConfigTest, BadTokensAreRefusedWithTheirPath) {
  ExpectWebError("tokens = \"abc\"", "web.tokens: expected [[web.tokens]] tables");
  ExpectWebError("tokens = [\"abcdefghij\"]", "web.tokens[0]: expected a table");
  ExpectWebError(R"(
    [[tokens]]
    token = "1234567"
    scopes = "read"
  )",
                 "web.tokens[0].token: must be at least 8 characters");
  ExpectWebError(R"(
    [[tokens]]
    scopes = "read"
  )",
                 "web.tokens[0].token: must be at least 8 characters");
  ExpectWebError(R"(
    [[tokens]]
    token = "12345678"
  )",
                 "web.tokens[0].scopes: give one or more of read, write, admin");
  ExpectWebError(R"(
    [[tokens]]
    token = "12345678"
    scopes = []
  )",
                 "web.tokens[0].scopes: give one or more");
  ExpectWebError(R"(
    [[tokens]]
    token = "12345678"
    scopes = ["read"]
    [[tokens]]
    token = "abcdefgh"
    scopes = ["read", "superuser"]
  )",
                 "web.tokens[1].scopes: 'superuser' is not read, write or admin");
  ExpectWebError(R"(
    [[tokens]]
    token = "12345678"
    scopes = ["read", 1]
  )",
                 "web.tokens[0].scopes: expected a list of strings");
  ExpectWebError(R"(
    [[tokens]]
    token = "12345678"
    scopes = "read"
    [[tokens]]
    token = "12345678"
    scopes = "admin"
  )",
                 "web.tokens[1].token: used twice");
}

// ================================================================== TableReader

TEST(TableReaderTest, WrongTypesAndUnknownKeysNameTheKeyPath) {
  const toml::table t = toml::parse(R"(
    name = 5
    on = "yes"
    count = "three"
    wait = [1]
    tags = ["a", 2]
    extra = 1
  )");
  plugins::TableReader in(t, "plugin.section");
  std::string name;
  bool on = false;
  uint32_t count = 7;
  Micros wait = 0;
  std::vector<std::string> tags;
  ExpectInvalid(in.String("name", &name), "plugin.section.name: expected a string");
  ExpectInvalid(in.Bool("on", &on), "plugin.section.on: expected true or false");
  ExpectInvalid(in.Uint("count", &count, 1, 10),
                "plugin.section.count: expected an integer from 1 to 10");
  ExpectInvalid(in.Duration("wait", &wait), "plugin.section.wait: expected a duration");
  ExpectInvalid(in.StringList("tags", &tags), "plugin.section.tags: expected a list of strings");
  // Refused values leave the outputs alone.
  EXPECT_EQ(name, "");
  EXPECT_FALSE(on);
  EXPECT_EQ(count, 7u);
  EXPECT_EQ(wait, 0);
  // Keys read (even with an error) count as known; the one never asked for does not.
  ExpectInvalid(in.CheckAllRead(), "plugin.section.extra: unknown key");
  EXPECT_EQ(in.Error("k", "why").message(), "plugin.section.k: why");
  EXPECT_EQ(in.path(), "plugin.section");
}

TEST(TableReaderTest, ReadsValuesAndLeavesMissingKeysAlone) {
  const toml::table t = toml::parse(R"(
    name = "n"
    on = true
    count = 3
    wait = "750ms"
    one = "solo"
    many = ["a", "b"]
    list = [1, 2]
  )");
  plugins::TableReader in(t, "p");
  std::string name, missing = "kept";
  bool on = false;
  uint16_t count = 0;
  Micros wait = 0;
  std::vector<std::string> one, many;
  ASSERT_TRUE(in.String("name", &name).ok());
  ASSERT_TRUE(in.String("absent", &missing).ok());
  ASSERT_TRUE(in.Bool("on", &on).ok());
  ASSERT_TRUE(in.Uint("count", &count).ok());
  ASSERT_TRUE(in.Duration("wait", &wait).ok());
  ASSERT_TRUE(in.StringList("one", &one).ok());
  ASSERT_TRUE(in.StringList("many", &many).ok());
  EXPECT_EQ(name, "n");
  EXPECT_EQ(missing, "kept");
  EXPECT_TRUE(on);
  EXPECT_EQ(count, 3);
  EXPECT_EQ(wait, 750 * kMillis);
  EXPECT_THAT(one, ElementsAre("solo"));
  EXPECT_THAT(many, ElementsAre("a", "b"));
  EXPECT_TRUE(in.Has("list"));
  ExpectInvalid(in.CheckAllRead(), "p.list: unknown key");  // Has() does not read it
  const toml::array* list = in.Array("list");
  ASSERT_NE(list, nullptr);
  EXPECT_EQ(list->size(), 2u);
  EXPECT_TRUE(in.CheckAllRead().ok());
}

TEST(TableReaderTest, NoConversionsBetweenTomlTypes) {
  // toml++'s permissive value<T>() would read 1 as true, true as 1 and 8.0 as 8.
  const toml::table t = toml::parse(R"(
    flag = 1
    count = true
    whole = 8.0
    wait = false
  )");
  plugins::TableReader in(t, "x");
  bool flag = false;
  uint32_t count = 0, whole = 0;
  Micros wait = 0;
  ExpectInvalid(in.Bool("flag", &flag), "x.flag: expected true or false");
  ExpectInvalid(in.Uint("count", &count), "x.count: expected an integer");
  ExpectInvalid(in.Uint("whole", &whole), "x.whole: expected an integer");
  ExpectInvalid(in.Duration("wait", &wait), "x.wait: expected a duration");
  EXPECT_FALSE(flag);
  EXPECT_EQ(count, 0u);
  EXPECT_EQ(whole, 0u);
  EXPECT_EQ(wait, 0);
}

TEST(TableReaderTest, UintChecksTheTypeRange) {
  const toml::table t = toml::parse("small = 300\nbig = 65535");
  plugins::TableReader in(t, "s");
  uint8_t small = 0;
  uint16_t big = 0;
  ExpectInvalid(in.Uint("small", &small), "s.small: expected an integer from 0 to 255");
  ASSERT_TRUE(in.Uint("big", &big).ok());
  EXPECT_EQ(big, 65535);
}

// ================================================================== REST: errors and bodies

TEST(WebRest, ErrorForMapsEveryStatusCode) {
  struct Case {
    Status st;
    int status;
    const char* code;
  };
  const std::vector<Case> cases = {
      {InvalidArgument("m"), 400, "bad_field"},
      {NotFound("m"), 404, "not_found"},
      {FailedPrecondition("m"), 409, "conflict"},
      {AlreadyExists("m"), 409, "conflict"},
      {ResourceExhausted("m"), 429, "queue_full"},
      {Unavailable("m"), 503, "unavailable"},
      {DeadlineExceeded("m"), 503, "unavailable"},
      {Internal("m"), 500, "internal"},
      {DataLoss("m"), 500, "internal"},
      {Cancelled("m"), 500, "internal"},
      {Unimplemented("m"), 500, "internal"},
      {Status(StatusCode::kPermissionDenied, "m"), 500, "internal"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.st.ToString());
    const HttpError e = ErrorFor(c.st);
    EXPECT_EQ(e.status, c.status);
    EXPECT_EQ(e.code, c.code);
    EXPECT_EQ(e.message, "m");
  }
  EXPECT_EQ(ErrorFor(InvalidArgument("priority: too big")).message, "priority: too big");
}

TEST(WebRest, HttpErrorBodyIsTheDocumentedJson) {
  const HttpError e{409, "conflict", "task 7 has \"ended\""};
  const Json j = Json::parse(e.Body());
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.size(), 1u);
  ASSERT_TRUE(j.contains("error"));
  EXPECT_EQ(j["error"].size(), 2u);
  EXPECT_EQ(j["error"]["code"], "conflict");
  EXPECT_EQ(j["error"]["message"], "task 7 has \"ended\"");
  EXPECT_EQ(e.Body(), R"({"error":{"code":"conflict","message":"task 7 has \"ended\""}})");
}

TEST(WebRest, ParseObjectAcceptsOnlyAnObject) {
  ExpectInvalid(ParseObject(""), "not JSON");
  ExpectInvalid(ParseObject("{\"a\": "), "not JSON");
  ExpectInvalid(ParseObject("nope"), "not JSON");
  ExpectInvalid(ParseObject("[1, 2]"), "must be a JSON object");
  ExpectInvalid(ParseObject("\"text\""), "must be a JSON object");
  ExpectInvalid(ParseObject("null"), "must be a JSON object");
  auto j = ParseObject(R"({"type": "echo", "n": [1, 2]})");
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ((*j)["type"], "echo");
  EXPECT_EQ((*j)["n"][1], 2);
  EXPECT_TRUE(ParseObject("{}").ok());
}

// ================================================================== REST: task specs

StatusOr<protocol::TaskSpec> Task(const std::string& json, const std::string& where = "") {
  return TaskSpecFromJson(Json::parse(json), where);
}

TEST(WebRest, TaskSpecDefaults) {
  auto s = Task(R"({"type": "echo"})");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->type, "echo");
  EXPECT_EQ(s->payload, "");
  EXPECT_EQ(s->key, "");
  EXPECT_EQ(s->priority, protocol::kDefaultPriority);
  EXPECT_EQ(s->max_attempts, 0u);
  EXPECT_EQ(s->timeout_ms, 0u);
  EXPECT_EQ(s->idempotency_key, "");
  EXPECT_EQ(s->delay_ms, 0u);
  EXPECT_EQ(s->not_before_us, 0);
  EXPECT_EQ(s->deadline_ms, 0u);
  EXPECT_THAT(s->requirements, IsEmpty());
}

TEST(WebRest, TaskSpecEveryField) {
  auto s = Task(R"({"type": "resize", "payload": "raw text", "key": "dev-1", "priority": 0,
                    "max_attempts": 7, "timeout_ms": 1500, "idempotency_key": "order-1",
                    "delay_ms": 2000, "deadline_ms": 60000, "not_before": "2026-11-25T10:00:00Z",
                    "requires": ["gpu", "eu"]})");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->type, "resize");
  EXPECT_EQ(s->payload, "raw text");
  EXPECT_EQ(s->key, "dev-1");
  EXPECT_EQ(s->priority, 0);
  EXPECT_EQ(s->max_attempts, 7u);
  EXPECT_EQ(s->timeout_ms, 1500u);
  EXPECT_EQ(s->idempotency_key, "order-1");
  EXPECT_EQ(s->delay_ms, 2000u);
  EXPECT_EQ(s->deadline_ms, 60000u);
  EXPECT_EQ(s->not_before_us, int64_t{1795600800} * kSeconds);
  EXPECT_THAT(s->requirements, ElementsAre("gpu", "eu"));
  // Nulls count as absent.
  auto n = Task(R"({"type": "echo", "priority": null, "payload": null, "requires": null})");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n->priority, protocol::kDefaultPriority);
}

TEST(WebRest, TaskSpecTypeIsRequired) {
  ExpectInvalid(Task(R"({})"), "type: is required");
  ExpectInvalid(Task(R"({"type": null})"), "type: is required");
  ExpectInvalid(Task(R"({"type": ""})"), "type: must not be empty");
  ExpectInvalid(Task(R"({"type": 5})"), "type: expected a string");
  ExpectInvalid(Task(R"({"payload": "x"})", "tasks[3]: "), "tasks[3]: type: is required");
  ExpectInvalid(TaskSpecFromJson(Json::array({1}), "tasks[1]: "), "tasks[1]: expected a task");
  ExpectInvalid(TaskSpecFromJson(Json("echo")), "expected a task object");
}

TEST(WebRest, TaskPayloadStringJsonValueOrBase64) {
  auto s = Task(R"({"type": "t", "payload": "{not json, taken as is}"})");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->payload, "{not json, taken as is}");
  s = Task(R"({"type": "t", "payload": {"a": [1, 2], "b": "x"}})");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->payload, R"({"a":[1,2],"b":"x"})");  // its JSON text
  s = Task(R"({"type": "t", "payload": 42})");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->payload, "42");
  s = Task(R"({"type": "t", "payload": [true, null]})");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->payload, "[true,null]");
  s = Task(R"({"type": "t", "payload_base64": "AAEC/w=="})");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->payload, std::string("\x00\x01\x02\xff", 4));
  s = Task(R"({"type": "t", "payload_base64": "aGVsbG8="})");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->payload, "hello");

  ExpectInvalid(Task(R"({"type": "t", "payload": "a", "payload_base64": "aGVsbG8="})"),
                "payload_base64: give payload or payload_base64");
  ExpectInvalid(Task(R"({"type": "t", "payload": {}, "payload_base64": "aGVsbG8="})"),
                "payload_base64");
  ExpectInvalid(Task(R"({"type": "t", "payload_base64": "not base64!"})"),
                "payload_base64: not base64");
  ExpectInvalid(Task(R"({"type": "t", "payload_base64": 12})"),
                "payload_base64: expected a string");
}

TEST(WebRest, TaskSpecNumbersAreRangeChecked) {
  for (int p = 0; p <= 9; ++p) {
    auto s = Task(R"({"type": "t", "priority": )" + std::to_string(p) + "}");
    ASSERT_TRUE(s.ok()) << p;
    EXPECT_EQ(s->priority, p);
  }
  ExpectInvalid(Task(R"({"type": "t", "priority": 10})"),
                "priority: expected an integer from 0 to 9");
  ExpectInvalid(Task(R"({"type": "t", "priority": -1})"), "priority: expected an integer");
  ExpectInvalid(Task(R"({"type": "t", "priority": 1.5})"), "priority: expected an integer");
  ExpectInvalid(Task(R"({"type": "t", "priority": "1"})"), "priority: expected an integer");
  ExpectInvalid(Task(R"({"type": "t", "max_attempts": 1000001})"),
                "max_attempts: expected an integer from 0 to 1000000");
  ExpectInvalid(Task(R"({"type": "t", "timeout_ms": 4294967296})"),
                "timeout_ms: expected an integer from 0 to 4294967295");
  ExpectInvalid(Task(R"({"type": "t", "delay_ms": 4294967296})"), "delay_ms");
  ExpectInvalid(Task(R"({"type": "t", "deadline_ms": -5})"), "deadline_ms");
  auto s = Task(R"({"type": "t", "timeout_ms": 4294967295, "max_attempts": 1000000})");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->timeout_ms, 4294967295u);
  EXPECT_EQ(s->max_attempts, 1000000u);
}

TEST(WebRest, TaskSpecRefusesUnknownFieldsByName) {
  ExpectInvalid(Task(R"({"type": "t", "priorty": 3})"), "priorty: unknown field");
  ExpectInvalid(Task(R"({"type": "t", "split": "lines:1"})", "tasks[0]: "),
                "tasks[0]: split: unknown field");
}

TEST(WebRest, TaskSpecRequiresAndStrings) {
  ExpectInvalid(Task(R"({"type": "t", "requires": "gpu"})"), "requires: expected a list");
  ExpectInvalid(Task(R"({"type": "t", "requires": ["gpu", 1]})"), "requires: expected a list");
  ExpectInvalid(Task(R"({"type": "t", "key": 7})"), "key: expected a string");
  ExpectInvalid(Task(R"({"type": "t", "idempotency_key": ["a"]})"),
                "idempotency_key: expected a string");
  auto s = Task(R"({"type": "t", "requires": []})");
  ASSERT_TRUE(s.ok());
  EXPECT_THAT(s->requirements, IsEmpty());
}

TEST(WebRest, TaskSpecNotBefore) {
  auto s = Task(R"({"type": "t", "not_before": 1764064800})");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->not_before_us, int64_t{1764064800} * kSeconds);
  s = Task(R"({"type": "t", "not_before": 1764064800.5})");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->not_before_us, int64_t{1764064800} * kSeconds + 500 * kMillis);
  s = Task(R"({"type": "t", "not_before": "1764064800"})");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->not_before_us, int64_t{1764064800} * kSeconds);
  s = Task(R"({"type": "t", "not_before": "2026-11-25T11:00:00+01:00"})");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->not_before_us, int64_t{1795600800} * kSeconds);
  ExpectInvalid(Task(R"({"type": "t", "not_before": "tomorrow"})"),
                "not_before: 'tomorrow' is not a time");
  ExpectInvalid(Task(R"({"type": "t", "not_before": "2026-11-25T10:00:00"})"), "not_before");
  ExpectInvalid(Task(R"({"type": "t", "not_before": -5})"), "not_before");
  ExpectInvalid(Task(R"({"type": "t", "not_before": true})"),
                "not_before: expected Unix seconds or an ISO-8601 time");
  ExpectInvalid(Task(R"({"type": "t", "not_before": 1764064800000})"),
                "not_before: '1764064800000' is past the year 9999");
}

// ================================================================== REST: job specs

StatusOr<protocol::JobSpec> Job(const std::string& json) {
  return JobSpecFromJson(Json::parse(json));
}

TEST(WebRest, JobSpecReadsTheTaskFieldsAndTheSplit) {
  auto j = Job(R"({"type": "sum", "payload": [1, 2, 3], "split": "json-array:1",
                   "priority": 2, "key": "k", "requires": ["x"]})");
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ(j->task.type, "sum");
  EXPECT_EQ(j->task.payload, "[1,2,3]");
  EXPECT_EQ(j->task.priority, 2);
  EXPECT_EQ(j->task.key, "k");
  EXPECT_THAT(j->task.requirements, ElementsAre("x"));
  EXPECT_EQ(j->split, "json-array:1");
  EXPECT_EQ(j->aggregate, "collect");  // the default
  EXPECT_EQ(j->policy, protocol::JobPolicy::kFailFast);

  j = Job(R"({"type": "t", "split": "lines:10", "aggregate": "sum", "policy": "continue"})");
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ(j->aggregate, "sum");
  EXPECT_EQ(j->policy, protocol::JobPolicy::kContinue);
  j = Job(R"({"type": "t", "split": "lines:10", "policy": "fail-fast"})");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->policy, protocol::JobPolicy::kFailFast);
}

TEST(WebRest, JobSpecErrors) {
  ExpectInvalid(Job(R"({"type": "t"})"), "split: is required");
  ExpectInvalid(Job(R"({"split": "lines:1"})"), "type: is required");
  ExpectInvalid(Job(R"({"type": "t", "split": 3})"), "split: expected a string");
  ExpectInvalid(Job(R"({"type": "t", "split": "lines:1", "policy": "sometimes"})"),
                "policy: 'sometimes' is not a job policy");
  ExpectInvalid(Job(R"({"type": "t", "split": "lines:1", "idempotency_key": "a"})"),
                "idempotency_key: unknown field");
  ExpectInvalid(Job(R"({"type": "t", "split": "lines:1", "parts": 3})"), "parts: unknown field");
  ExpectInvalid(Job(R"({"type": "t", "split": "lines:1", "priority": 12})"), "priority");
  ExpectInvalid(JobSpecFromJson(Json::array({1, 2})), "expected a job object");
}

// ================================================================== REST: ids, params

struct IdsOrAll {
  Status status;
  std::vector<uint64_t> ids;
  bool all = false;
};
IdsOrAll ParseIdsOrAll(const Json& j) {
  IdsOrAll r;
  r.status = IdsOrAllFromJson(j, &r.ids, &r.all);
  return r;
}

TEST(WebRest, IdsOrAll) {
  IdsOrAll r = ParseIdsOrAll(Json::parse(R"({"ids": [3, 1, 2]})"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_THAT(r.ids, ElementsAre(3, 1, 2));
  EXPECT_FALSE(r.all);
  r = ParseIdsOrAll(Json::parse(R"({"all": true})"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(r.all);
  EXPECT_THAT(r.ids, IsEmpty());
  r = ParseIdsOrAll(Json::parse(R"({"all": true, "ids": []})"));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();

  ExpectInvalid(ParseIdsOrAll(Json::parse("{}")).status,
                "ids: give a non-empty ids list, or all: true");
  ExpectInvalid(ParseIdsOrAll(Json::parse(R"({"all": false})")).status, "ids: give a non-empty");
  ExpectInvalid(ParseIdsOrAll(Json::parse(R"({"ids": []})")).status, "ids: give a non-empty");
  ExpectInvalid(ParseIdsOrAll(Json::parse(R"({"ids": [1], "all": true})")).status,
                "ids: give a non-empty ids list, or all: true");
  ExpectInvalid(ParseIdsOrAll(Json::parse(R"({"ids": [0]})")).status,
                "ids: expected a list of task ids");
  ExpectInvalid(ParseIdsOrAll(Json::parse(R"({"ids": [-4]})")).status, "ids: expected a list");
  ExpectInvalid(ParseIdsOrAll(Json::parse(R"({"ids": ["4"]})")).status, "ids: expected a list");
  ExpectInvalid(ParseIdsOrAll(Json::parse(R"({"ids": 4})")).status, "ids: expected a list");
  ExpectInvalid(ParseIdsOrAll(Json::parse(R"({"all": "yes"})")).status,
                "all: expected true or false");
  ExpectInvalid(ParseIdsOrAll(Json::parse(R"({"all": true, "force": true})")).status,
                "force: unknown field");
  // Not an object: refused, not thrown.
  ExpectInvalid(ParseIdsOrAll(Json::parse("[1, 2]")).status, "expected {\"ids\"");
  ExpectInvalid(ParseIdsOrAll(Json(7)).status, "expected {\"ids\"");
}

TEST(WebRest, ParseIdAcceptsPositiveDecimalsOnly) {
  EXPECT_EQ(ParseId("1"), 1u);
  EXPECT_EQ(ParseId("42"), 42u);
  EXPECT_EQ(ParseId("18446744073709551615"), UINT64_MAX);
  for (const char* bad :
       {"", "0", "-1", "+1", " 1", "1 ", "1a", "0x10", "1.0", "18446744073709551616"}) {
    EXPECT_EQ(ParseId(bad), std::nullopt) << "'" << bad << "'";
  }
}

using Params = std::multimap<std::string, std::string>;

TEST(WebRest, ListQueryDefaults) {
  auto q = ParseListQuery({});
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->list.limit, 100u);
  EXPECT_EQ(q->list.limit, kDefaultPageLimit);
  EXPECT_EQ(q->list.after_id, 0u);
  EXPECT_EQ(q->list.state, std::nullopt);
  EXPECT_EQ(q->list.type, "");
  EXPECT_EQ(q->list.key, "");
  EXPECT_EQ(q->list.job_id, 0u);
  EXPECT_EQ(q->since_us, 0);
  EXPECT_EQ(q->until_us, 0);
}

TEST(WebRest, ListQueryReadsEveryParameter) {
  auto q = ParseListQuery(Params{{"state", "dead"},
                                 {"type", "resize"},
                                 {"key", "dev-7"},
                                 {"job", "12"},
                                 {"cursor", "500"},
                                 {"limit", "25"},
                                 {"since", "1764064800"},
                                 {"until", "2026-11-25T10:00:00Z"}});
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->list.state, TaskState::kDead);
  EXPECT_EQ(q->list.type, "resize");
  EXPECT_EQ(q->list.key, "dev-7");
  EXPECT_EQ(q->list.job_id, 12u);
  EXPECT_EQ(q->list.after_id, 500u);
  EXPECT_EQ(q->list.limit, 25u);
  EXPECT_EQ(q->since_us, int64_t{1764064800} * kSeconds);
  EXPECT_EQ(q->until_us, int64_t{1795600800} * kSeconds);
  for (const char* state :
       {"queued", "dispatched", "succeeded", "failed", "cancelled", "dead", "expired"}) {
    auto s = ParseListQuery(Params{{"state", state}});
    ASSERT_TRUE(s.ok()) << state;
    ASSERT_TRUE(s->list.state.has_value());
    EXPECT_STREQ(protocol::TaskStateName(*s->list.state), state);
  }
}

TEST(WebRest, ListQueryLimitIsOneToAThousand) {
  auto q = ParseListQuery(Params{{"limit", "1"}});
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->list.limit, 1u);
  q = ParseListQuery(Params{{"limit", "1000"}});
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->list.limit, kMaxPageLimit);
  for (const char* bad : {"0", "1001", "-1", "ten", "", "5x"}) {
    SCOPED_TRACE(bad);
    ExpectInvalid(ParseListQuery(Params{{"limit", bad}}),
                  "limit: expected an integer from 1 to 1000");
  }
}

TEST(WebRest, ListQueryErrorsNameTheParameter) {
  ExpectInvalid(ParseListQuery(Params{{"state", "running"}}),
                "state: 'running' is not a task state");
  ExpectInvalid(ParseListQuery(Params{{"cursor", "0"}}), "cursor: expected the next_cursor");
  ExpectInvalid(ParseListQuery(Params{{"cursor", "abc"}}), "cursor: expected the next_cursor");
  ExpectInvalid(ParseListQuery(Params{{"job", "x"}}), "job: expected a job id");
  ExpectInvalid(ParseListQuery(Params{{"since", "yesterday"}}), "since: 'yesterday' is not a time");
  ExpectInvalid(ParseListQuery(Params{{"until", "2026-13-01T00:00:00Z"}}), "until: ");
  ExpectInvalid(ParseListQuery(Params{{"type", "t"}, {"sort", "id"}}), "sort: unknown parameter");
  ExpectInvalid(ParseListQuery(Params{{"State", "dead"}}), "State: unknown parameter");
}

TEST(WebRest, WaitParam) {
  auto d = ParseWaitParam("wait", "5s", 60 * kSeconds);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, 5 * kSeconds);
  d = ParseWaitParam("wait", "250ms", 60 * kSeconds);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, 250 * kMillis);
  d = ParseWaitParam("wait", "2", 60 * kSeconds);  // seconds
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, 2 * kSeconds);
  d = ParseWaitParam("wait", "0", 60 * kSeconds);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, 0);
  d = ParseWaitParam("wait", "60s", 60 * kSeconds);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, 60 * kSeconds);
  ExpectInvalid(ParseWaitParam("wait", "61s", 60 * kSeconds), "wait: must be from 0 to 60s");
  ExpectInvalid(ParseWaitParam("wait", "2m", 60 * kSeconds), "wait: must be from 0 to 60s");
  ExpectInvalid(ParseWaitParam("timeout", "soon", 60 * kSeconds),
                "timeout: 'soon' is not a duration");
  ExpectInvalid(ParseWaitParam("wait", "", 60 * kSeconds), "wait: ");
}

TEST(WebRest, BoolParam) {
  for (const char* yes : {"true", "1"}) {
    auto b = ParseBoolParam("payload", yes);
    ASSERT_TRUE(b.ok());
    EXPECT_TRUE(*b);
  }
  for (const char* no : {"false", "0"}) {
    auto b = ParseBoolParam("payload", no);
    ASSERT_TRUE(b.ok());
    EXPECT_FALSE(*b);
  }
  for (const char* bad : {"", "yes", "TRUE", "2", "on"}) {
    SCOPED_TRACE(bad);
    ExpectInvalid(ParseBoolParam("result", bad), "result: expected true or false");
  }
}

// ================================================================== REST: history

std::vector<std::string> Events(const Json& h) {
  std::vector<std::string> out;
  for (const auto& e : h) out.push_back(e["event"].get<std::string>());
  return out;
}

// The events' times never go back.
void ExpectOldestFirst(const Json& h) {
  for (size_t i = 1; i < h.size(); ++i) {
    EXPECT_LE(h[i - 1]["at_us"].get<int64_t>(), h[i]["at_us"].get<int64_t>())
        << h.dump() << " at event " << i;
  }
}

TaskInfo BaseTask() {
  TaskInfo t;
  t.id = 9;
  t.type = "echo";
  t.submitted_us = 1000;
  return t;
}

TEST(WebRest, HistoryOfAQueuedTask) {
  TaskInfo t = BaseTask();
  const Json h = TaskHistory(t);
  ASSERT_TRUE(h.is_array());
  EXPECT_EQ(h.dump(), R"([{"at_us":1000,"event":"submitted"}])");
}

TEST(WebRest, HistoryOfADelayedTask) {
  TaskInfo t = BaseTask();
  t.run_after_us = 5000;
  const Json h = TaskHistory(t);
  EXPECT_THAT(Events(h), ElementsAre("submitted", "scheduled"));
  EXPECT_EQ(h[1]["at_us"], 5000);
  ExpectOldestFirst(h);
}

TEST(WebRest, HistoryOfADispatchedTask) {
  TaskInfo t = BaseTask();
  t.state = TaskState::kDispatched;
  t.run_after_us = 1500;  // it was delayed; once running the schedule is history
  t.dispatched_us = 2000;
  t.worker = "w-1";
  t.attempt = 1;
  const Json h = TaskHistory(t);
  EXPECT_THAT(Events(h), ElementsAre("submitted", "dispatched"));
  EXPECT_EQ(h[1]["at_us"], 2000);
  EXPECT_EQ(h[1]["worker"], "w-1");
  EXPECT_EQ(h[1]["attempt"], 1);
}

TEST(WebRest, HistoryOfASucceededTask) {
  TaskInfo t = BaseTask();
  t.state = TaskState::kSucceeded;
  t.dispatched_us = 2000;
  t.finished_us = 3000;
  t.worker = "w-2";
  t.attempt = 2;
  t.failures = 1;
  t.run_after_us = 1800;  // its retry back-off, long over
  const Json h = TaskHistory(t);
  EXPECT_THAT(Events(h), ElementsAre("submitted", "dispatched", "succeeded"));
  EXPECT_EQ(h[1]["attempt"], 2);
  EXPECT_EQ(h[2]["at_us"], 3000);
  EXPECT_FALSE(h[2].contains("error"));
  ExpectOldestFirst(h);
}

TEST(WebRest, HistoryOfEndedTasksCarriesTheError) {
  TaskInfo t = BaseTask();
  t.state = TaskState::kSucceeded;
  t.dispatched_us = 2000;
  t.finished_us = 3000;
  t.error = "a late success after a failure";  // shown as the master has it
  EXPECT_EQ(TaskHistory(t)[2]["error"], "a late success after a failure");

  t.state = TaskState::kDead;
  t.error = "gave up after 3 failed attempts: boom";
  Json h = TaskHistory(t);
  EXPECT_THAT(Events(h), ElementsAre("submitted", "dispatched", "dead"));
  EXPECT_EQ(h[2]["error"], "gave up after 3 failed attempts: boom");

  TaskInfo c = BaseTask();  // cancelled before it ran
  c.state = TaskState::kCancelled;
  c.finished_us = 4000;
  c.error = "cancelled";
  h = TaskHistory(c);
  EXPECT_THAT(Events(h), ElementsAre("submitted", "cancelled"));
  EXPECT_EQ(h[1]["at_us"], 4000);
  EXPECT_EQ(h[1]["error"], "cancelled");

  TaskInfo e = BaseTask();  // expired while delayed: no "scheduled" once it has ended
  e.state = TaskState::kExpired;
  e.run_after_us = 9000;
  e.finished_us = 6000;
  e.error = "deadline passed before it started";
  EXPECT_THAT(Events(TaskHistory(e)), ElementsAre("submitted", "expired"));

  TaskInfo f = BaseTask();
  f.state = TaskState::kFailed;
  f.dispatched_us = 1200;
  f.finished_us = 1300;
  f.error = "bad input";
  h = TaskHistory(f);
  EXPECT_THAT(Events(h), ElementsAre("submitted", "dispatched", "failed"));
  EXPECT_EQ(h[2]["error"], "bad input");
}

TEST(WebRest, HistoryOfARetryInBackOffIsOldestFirst) {
  TaskInfo t = BaseTask();  // attempt 1 failed at 2500; it runs again after 7000
  t.state = TaskState::kQueued;
  t.dispatched_us = 2000;
  t.worker = "w-1";
  t.attempt = 1;
  t.failures = 1;
  t.run_after_us = 7000;
  Json h = TaskHistory(t);
  EXPECT_THAT(Events(h), ElementsAre("submitted", "dispatched", "scheduled"));
  EXPECT_EQ(h[2]["at_us"], 7000);
  ExpectOldestFirst(h);

  // Released (not failed) after a delayed start: the old schedule comes before the dispatch.
  t.run_after_us = 1500;
  t.failures = 0;
  h = TaskHistory(t);
  EXPECT_THAT(Events(h), ElementsAre("submitted", "scheduled", "dispatched"));
  ExpectOldestFirst(h);
}

// ================================================================== prometheus

TEST(WebMetrics, EscapeLabel) {
  EXPECT_EQ(EscapeLabel("plain-value_1.2"), "plain-value_1.2");
  EXPECT_EQ(EscapeLabel(""), "");
  EXPECT_EQ(EscapeLabel("a\\b"), "a\\\\b");
  EXPECT_EQ(EscapeLabel("say \"hi\""), "say \\\"hi\\\"");
  EXPECT_EQ(EscapeLabel("two\nlines"), "two\\nlines");
  EXPECT_EQ(EscapeLabel("\\\"\n"), "\\\\\\\"\\n");
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool HasLine(const std::string& text, const std::string& line) {
  for (const auto& l : Lines(text)) {
    if (l == line) return true;
  }
  return false;
}

// Checks the text format 0.0.4 as a scraper reads it: every line a comment or a sample; a
// valid metric name; one TYPE per family, before its samples; a histogram's samples are its
// _bucket (cumulative, in increasing le, ending with +Inf equal to _count), _sum and _count.
void ExpectValidExposition(const std::string& text) {
  ASSERT_FALSE(text.empty());
  ASSERT_EQ(text.back(), '\n');
  static const std::regex kType(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram))");
  static const std::regex kHelp(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*)");
  static const std::regex kSample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*")*\})? ([-+0-9.eE]+|\+Inf|NaN))");
  std::map<std::string, std::string> types;
  std::string family, type;
  // Per histogram series (the labels without le): its buckets in order, and its count.
  std::map<std::string, std::vector<std::pair<std::string, double>>> buckets;
  std::map<std::string, double> counts;
  std::map<std::string, int> sums;
  for (const auto& line : Lines(text)) {
    SCOPED_TRACE(line);
    std::smatch m;
    if (std::regex_match(line, m, kType)) {
      EXPECT_FALSE(types.count(m[1])) << "a second TYPE line for " << m[1];
      family = m[1];
      type = m[2];
      types[family] = type;
      continue;
    }
    if (std::regex_match(line, m, kHelp)) continue;
    ASSERT_TRUE(std::regex_match(line, m, kSample)) << "not a sample line";
    const std::string name = m[1];
    const std::string labels = m[2];
    const double value = std::stod(m[m.size() - 1]);
    ASSERT_FALSE(family.empty()) << "a sample before any TYPE line";
    if (type != "histogram") {
      EXPECT_EQ(name, family) << "a sample outside its family";
      if (type == "counter") {
        EXPECT_TRUE(name.ends_with("_total")) << name;
      }
      continue;
    }
    if (name == family + "_bucket") {
      static const std::regex kLe(R"((,?)le="([^"]*)\")");
      std::smatch le;
      ASSERT_TRUE(std::regex_search(labels, le, kLe)) << "a bucket without le";
      const std::string series = family + std::regex_replace(labels, kLe, "");
      buckets[series].push_back({le[2], value});
    } else if (name == family + "_count") {
      counts[family + labels] = value;
    } else if (name == family + "_sum") {
      ++sums[family + labels];
    } else {
      ADD_FAILURE() << name << " is not a sample of histogram " << family;
    }
  }
  for (const auto& [series, bs] : buckets) {
    SCOPED_TRACE(series);
    ASSERT_FALSE(bs.empty());
    EXPECT_EQ(bs.back().first, "+Inf") << "the last bucket must be +Inf";
    for (size_t i = 1; i < bs.size(); ++i) {
      EXPECT_LE(bs[i - 1].second, bs[i].second) << "buckets are not cumulative";
      if (bs[i].first != "+Inf") {
        EXPECT_LT(std::stod(bs[i - 1].first), std::stod(bs[i].first)) << "le not increasing";
      }
    }
    // "{}" when the series has no labels but le.
    std::string key = series;
    if (key.ends_with("{}")) key.resize(key.size() - 2);
    ASSERT_TRUE(counts.count(key)) << "no _count for " << key;
    EXPECT_EQ(bs.back().second, counts[key]) << "+Inf must equal _count";
    EXPECT_EQ(sums[key], 1) << "one _sum for " << key;
  }
}

std::map<std::string, uint64_t> SampleStats() {
  return {
      {"tasks.submitted", 10},
      {"tasks.succeeded", 7},
      {"tasks.failed", 1},
      {"tasks.dead", 1},
      {"tasks.retried", 2},
      {"tasks.queued", 2},
      {"tasks.active", 2},
      {"tasks.running", 0},
      {"workers.connected", 1},
      {"tasks.active_by_type.echo", 1},
      {"tasks.active_by_type.img.resize", 1},
      {"tasks.ended_by_type.echo.succeeded", 7},
      {"tasks.ended_by_type.img.resize.failed", 1},
      {"tasks.ended_by_type.img.resize.dead", 1},
      {"tasks.queued_by_priority.0", 1},
      {"tasks.queued_by_priority.5", 1},
      {"rejected.queue_full", 3},
      {"mqtt.rejected.bad_topic", 4},
      {"web.rejected.bad_json", 5},
      {"mqtt.connected", 1},
      {"results.late-accepted", 6},
      // The engine's histogram (its keys sort as text: "le.1000" before "le.250").
      {"task_latency_us.le.250", 1},
      {"task_latency_us.le.500", 3},
      {"task_latency_us.le.1000", 5},
      {"task_latency_us.le.2500", 8},
      {"task_latency_us.le.60000000", 8},
      {"task_latency_us.le.inf", 9},
      {"task_latency_us.sum", 61234567},
      {"task_latency_us.count", 9},
  };
}

std::vector<protocol::WorkerInfo> SampleWorkers() {
  protocol::WorkerInfo w;
  w.worker_id = "w-1";
  w.inflight = 3;
  w.slots = 4;
  w.completed = 70;
  w.failed = 2;
  protocol::WorkerInfo odd;
  odd.worker_id = "odd \"one\"\\";
  odd.inflight = 0;
  return {w, odd};
}

TEST(WebMetrics, RendersTheEnginesCountersAsFamilies) {
  HttpMetrics http;
  const std::string text = RenderMetrics(SampleStats(), SampleWorkers(), 4, http);
  SCOPED_TRACE(text);
  ExpectValidExposition(text);

  EXPECT_TRUE(HasLine(text, "# TYPE yard_tasks_total counter"));
  EXPECT_TRUE(HasLine(text, "yard_tasks_total{state=\"succeeded\"} 7"));
  EXPECT_TRUE(HasLine(text, "yard_tasks_total{state=\"failed\"} 1"));
  EXPECT_TRUE(HasLine(text, "yard_tasks_total{state=\"dead\"} 1"));
  EXPECT_TRUE(HasLine(text, "# TYPE yard_tasks_by_type_total counter"));
  EXPECT_TRUE(HasLine(text, "yard_tasks_by_type_total{type=\"echo\",state=\"succeeded\"} 7"));
  // A type with dots keeps them: the state is after the last one.
  EXPECT_TRUE(HasLine(text, "yard_tasks_by_type_total{type=\"img.resize\",state=\"failed\"} 1"));
  EXPECT_TRUE(HasLine(text, "# TYPE yard_tasks_active gauge"));
  EXPECT_TRUE(HasLine(text, "yard_tasks_active{type=\"echo\"} 1"));
  EXPECT_TRUE(HasLine(text, "yard_tasks_active{type=\"img.resize\"} 1"));
  // The total is the family's sum: an unlabelled sample would count every task twice.
  EXPECT_FALSE(HasLine(text, "yard_tasks_active 2"));
  EXPECT_TRUE(HasLine(text, "# TYPE yard_queue_depth gauge"));
  EXPECT_TRUE(HasLine(text, "yard_queue_depth{priority=\"0\"} 1"));
  EXPECT_TRUE(HasLine(text, "yard_queue_depth{priority=\"5\"} 1"));
  EXPECT_TRUE(HasLine(text, "# TYPE yard_retries_total counter"));
  EXPECT_TRUE(HasLine(text, "yard_retries_total 2"));
  EXPECT_TRUE(HasLine(text, "# TYPE yard_rejected_total counter"));
  EXPECT_TRUE(HasLine(text, "yard_rejected_total{source=\"core\",reason=\"queue_full\"} 3"));
  EXPECT_TRUE(HasLine(text, "yard_rejected_total{source=\"mqtt\",reason=\"bad_topic\"} 4"));
  EXPECT_TRUE(HasLine(text, "yard_rejected_total{source=\"web\",reason=\"bad_json\"} 5"));
  // Gauges keep their name; other counters get _total; dots and dashes become underscores.
  EXPECT_TRUE(HasLine(text, "# TYPE yard_tasks_queued gauge"));
  EXPECT_TRUE(HasLine(text, "yard_tasks_queued 2"));
  EXPECT_TRUE(HasLine(text, "# TYPE yard_mqtt_connected gauge"));
  EXPECT_TRUE(HasLine(text, "yard_workers_connected 1"));
  EXPECT_TRUE(HasLine(text, "# TYPE yard_tasks_submitted_total counter"));
  EXPECT_TRUE(HasLine(text, "yard_tasks_submitted_total 10"));
  EXPECT_TRUE(HasLine(text, "yard_results_late_accepted_total 6"));
  // Workers and dead letters.
  EXPECT_TRUE(HasLine(text, "# TYPE yard_worker_inflight gauge"));
  EXPECT_TRUE(HasLine(text, "yard_worker_inflight{worker=\"w-1\"} 3"));
  EXPECT_TRUE(HasLine(text, "yard_worker_inflight{worker=\"odd \\\"one\\\"\\\\\"} 0"));
  EXPECT_TRUE(HasLine(text, "yard_worker_slots{worker=\"w-1\"} 4"));
  EXPECT_TRUE(HasLine(text, "yard_worker_completed_total{worker=\"w-1\"} 70"));
  EXPECT_TRUE(HasLine(text, "yard_worker_failed_total{worker=\"w-1\"} 2"));
  EXPECT_TRUE(HasLine(text, "# TYPE yard_dead_letters gauge"));
  EXPECT_TRUE(HasLine(text, "yard_dead_letters 4"));
  // Nothing of the latency histogram leaks out as a plain counter.
  EXPECT_THAT(text, Not(HasSubstr("task_latency_us")));
}

TEST(WebMetrics, LatencyHistogramIsCumulativeInSecondsAndEndsWithInf) {
  HttpMetrics http;
  const std::string text = RenderMetrics(SampleStats(), {}, std::nullopt, http);
  ExpectValidExposition(text);
  const std::vector<std::string> lines = Lines(text);
  auto it = std::find(lines.begin(), lines.end(), "# TYPE yard_task_latency_seconds histogram");
  ASSERT_NE(it, lines.end()) << text;
  const std::vector<std::string> histogram(it + 1, it + 9);
  EXPECT_THAT(histogram, ElementsAre("yard_task_latency_seconds_bucket{le=\"0.00025\"} 1",
                                     "yard_task_latency_seconds_bucket{le=\"0.0005\"} 3",
                                     "yard_task_latency_seconds_bucket{le=\"0.001\"} 5",
                                     "yard_task_latency_seconds_bucket{le=\"0.0025\"} 8",
                                     "yard_task_latency_seconds_bucket{le=\"60\"} 8",
                                     "yard_task_latency_seconds_bucket{le=\"+Inf\"} 9",
                                     "yard_task_latency_seconds_sum 61.234567",
                                     "yard_task_latency_seconds_count 9"))
      << text;
  // No dead-letter count given: no gauge.
  EXPECT_THAT(text, Not(HasSubstr("yard_dead_letters")));
}

TEST(WebMetrics, NoLatencyStatsNoHistogram) {
  HttpMetrics http;
  const std::string text = RenderMetrics({{"tasks.submitted", 1}}, {}, 0, http);
  EXPECT_EQ(text,
            "# TYPE yard_tasks_submitted_total counter\n"
            "yard_tasks_submitted_total 1\n"
            "# TYPE yard_dead_letters gauge\n"
            "yard_dead_letters 0\n");
}

TEST(WebMetrics, HttpMetricsRecordAndRender) {
  HttpMetrics http;
  std::string empty;
  http.RenderInto(&empty);
  EXPECT_EQ(empty, "");

  http.Record("/api/v1/tasks", "GET", 200, 0.0003);
  http.Record("/api/v1/tasks", "GET", 200, 0.001);  // on a bound: in that bucket (le)
  http.Record("/api/v1/tasks", "POST", 201, 3.0);   // past every bound: +Inf only
  http.Record("/metrics", "GET", 200, 0.00005);
  std::string text = "# existing\n";
  http.RenderInto(&text);
  EXPECT_TRUE(text.starts_with("# existing\n# TYPE yard_http_requests_total counter\n")) << text;
  const std::string body = text.substr(std::string("# existing\n").size());
  ExpectValidExposition(body);
  EXPECT_TRUE(HasLine(
      text, "yard_http_requests_total{route=\"/api/v1/tasks\",method=\"GET\",status=\"200\"} 2"));
  EXPECT_TRUE(HasLine(
      text, "yard_http_requests_total{route=\"/api/v1/tasks\",method=\"POST\",status=\"201\"} 1"));
  EXPECT_TRUE(HasLine(
      text, "yard_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"200\"} 1"));
  EXPECT_TRUE(HasLine(text, "# TYPE yard_http_request_duration_seconds histogram"));
  const std::string b = "yard_http_request_duration_seconds_bucket{route=\"/api/v1/tasks\",le=";
  EXPECT_TRUE(HasLine(text, b + "\"0.0001\"} 0"));
  EXPECT_TRUE(HasLine(text, b + "\"0.00025\"} 0"));
  EXPECT_TRUE(HasLine(text, b + "\"0.0005\"} 1"));
  EXPECT_TRUE(HasLine(text, b + "\"0.001\"} 2"));
  EXPECT_TRUE(HasLine(text, b + "\"2.5\"} 2"));
  EXPECT_TRUE(HasLine(text, b + "\"+Inf\"} 3"));
  EXPECT_TRUE(
      HasLine(text, "yard_http_request_duration_seconds_sum{route=\"/api/v1/tasks\"} 3.0013"));
  EXPECT_TRUE(HasLine(text, "yard_http_request_duration_seconds_count{route=\"/api/v1/tasks\"} 3"));
  EXPECT_TRUE(HasLine(
      text, "yard_http_request_duration_seconds_bucket{route=\"/metrics\",le=\"0.0001\"} 1"));
  // 12 bounds and +Inf per route.
  size_t buckets = 0;
  for (const auto& l : Lines(text)) buckets += l.starts_with(b) ? 1 : 0;
  EXPECT_EQ(buckets, HttpMetrics::kBoundsSeconds.size() + 1);
}

TEST(WebMetrics, RenderMetricsAppendsTheHttpFamilies) {
  HttpMetrics http;
  http.Record("/healthz", "GET", 200, 0.002);
  const std::string text = RenderMetrics({{"tasks.submitted", 1}}, {}, std::nullopt, http);
  ExpectValidExposition(text);
  EXPECT_TRUE(HasLine(text, "yard_tasks_submitted_total 1"));
  EXPECT_TRUE(HasLine(
      text, "yard_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1"));
  EXPECT_LT(text.find("yard_tasks_submitted_total"), text.find("yard_http_requests_total"));
}

// ================================================================== live

TEST(WebLive, RatePerSecond) {
  EXPECT_DOUBLE_EQ(RatePerSecond(100, 300, 2 * kSeconds), 100.0);
  EXPECT_DOUBLE_EQ(RatePerSecond(0, 5, 500 * kMillis), 10.0);
  EXPECT_DOUBLE_EQ(RatePerSecond(7, 7, kSeconds), 0.0);
  EXPECT_DOUBLE_EQ(RatePerSecond(300, 100, kSeconds), 0.0);  // the master restarted
  EXPECT_DOUBLE_EQ(RatePerSecond(1, 5, 0), 0.0);
  EXPECT_DOUBLE_EQ(RatePerSecond(1, 5, -kSeconds), 0.0);
}

// The engine's bounds (master/core/engine.h kLatencyBoundsUs).
constexpr uint64_t kBounds[] = {250,     500,     1000,     2500,    5000,   10000,
                                25000,   50000,   100000,   250000,  500000, 1000000,
                                2500000, 5000000, 10000000, 60000000};

// A sample of the engine's histogram from tasks per bucket (one per bound, then the overflow).
Counters Histogram(const std::vector<uint64_t>& per_bucket, uint64_t sum_us = 0) {
  Counters c;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < std::size(kBounds); ++i) {
    cumulative += i < per_bucket.size() ? per_bucket[i] : 0;
    c["task_latency_us.le." + std::to_string(kBounds[i])] = cumulative;
  }
  if (per_bucket.size() > std::size(kBounds)) cumulative += per_bucket[std::size(kBounds)];
  c["task_latency_us.le.inf"] = cumulative;
  c["task_latency_us.count"] = cumulative;
  c["task_latency_us.sum"] = sum_us;
  c["tasks.submitted"] = 12345;  // other counters are ignored
  return c;
}

TEST(WebLive, LatencyIsNullWithoutEndedTasks) {
  Json l = LatencyBetween({}, {});
  EXPECT_EQ(l["count"], 0);
  EXPECT_TRUE(l["p50"].is_null());
  EXPECT_TRUE(l["p90"].is_null());
  EXPECT_TRUE(l["p99"].is_null());
  const Counters same = Histogram({1, 2, 3});
  l = LatencyBetween(same, same);
  EXPECT_EQ(l["count"], 0);
  EXPECT_TRUE(l["p50"].is_null());
  // Counters that went backwards (a restart) give no interval.
  l = LatencyBetween(Histogram({5, 5}), Histogram({1}));
  EXPECT_EQ(l["count"], 0);
  EXPECT_TRUE(l["p99"].is_null());
}

TEST(WebLive, LatencyInterpolatesInsideTheBucket) {
  // Before: 5 tasks within 250us and 5 in (250, 500]. Since then 50 more ended: 10 in
  // (250, 500], 30 in (500, 1000], 10 in (1000, 2500].
  const Counters before = Histogram({5, 5});
  const Counters after = Histogram({5, 15, 30, 10});
  const Json l = LatencyBetween(before, after);
  EXPECT_EQ(l["count"], 50);
  // Interval cumulative: le.250 0, le.500 10, le.1000 40, le.2500 50.
  // p50: rank 25 in (500, 1000] holding 10..40: 500 + 500 * 15/30 = 750us.
  EXPECT_NEAR(l["p50"].get<double>(), 0.75, 1e-9);
  // p90: rank 45 in (1000, 2500] holding 40..50: 1000 + 1500 * 5/10 = 1750us.
  EXPECT_NEAR(l["p90"].get<double>(), 1.75, 1e-9);
  // p99: rank 49.5: 1000 + 1500 * 9.5/10 = 2425us.
  EXPECT_NEAR(l["p99"].get<double>(), 2.425, 1e-9);
}

TEST(WebLive, LatencyOfTheFirstBucketStartsAtZero) {
  const Json l = LatencyBetween({}, Histogram({4}));  // 4 tasks within 250us
  EXPECT_EQ(l["count"], 4);
  EXPECT_NEAR(l["p50"].get<double>(), 0.125, 1e-9);   // 250 * 2/4 us
  EXPECT_NEAR(l["p90"].get<double>(), 0.225, 1e-9);   // 250 * 3.6/4
  EXPECT_NEAR(l["p99"].get<double>(), 0.2475, 1e-9);  // 250 * 3.96/4
}

TEST(WebLive, LatencyPastTheLastBoundIsTheLastBound) {
  std::vector<uint64_t> per_bucket(std::size(kBounds) + 1, 0);
  per_bucket[0] = 1;                   // one fast task
  per_bucket[std::size(kBounds)] = 9;  // nine over a minute
  const Json l = LatencyBetween({}, Histogram(per_bucket));
  EXPECT_EQ(l["count"], 10);
  EXPECT_NEAR(l["p50"].get<double>(), 60000.0, 1e-9);
  EXPECT_NEAR(l["p99"].get<double>(), 60000.0, 1e-9);
}

TEST(WebLive, WorkerHealthThresholds) {
  const Micros hb = kSeconds;
  EXPECT_STREQ(WorkerHealth(0, hb), "ok");
  EXPECT_STREQ(WorkerHealth(2000, hb), "ok");  // within two heartbeats
  EXPECT_STREQ(WorkerHealth(2001, hb), "late");
  EXPECT_STREQ(WorkerHealth(4000, hb), "late");
  EXPECT_STREQ(WorkerHealth(4001, hb), "silent");  // over four
  EXPECT_STREQ(WorkerHealth(UINT32_MAX, hb), "silent");
  EXPECT_STREQ(WorkerHealth(900, 500 * kMillis), "ok");
  EXPECT_STREQ(WorkerHealth(1500, 500 * kMillis), "late");
  EXPECT_STREQ(WorkerHealth(2500, 500 * kMillis), "silent");
}

}  // namespace
}  // namespace yard::web
