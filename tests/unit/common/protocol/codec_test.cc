#include "common/protocol/codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "tests/testing/hex.h"
#include "tests/testing/message_tie.h"

// The hostile-body tests measure the largest single malloc made while decoding. Interposing
// malloc is only safe without a sanitizer runtime (which owns malloc itself) and on glibc.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define YARD_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define YARD_SANITIZED 1
#endif
#endif
#if defined(__GLIBC__) && !defined(YARD_SANITIZED)
#define YARD_TRACK_MALLOC 1
#else
#define YARD_TRACK_MALLOC 0
#endif

namespace yard_codec_test_alloc {
std::atomic<bool> tracking{false};
std::atomic<size_t> largest{0};
}  // namespace yard_codec_test_alloc

#if YARD_TRACK_MALLOC
extern "C" void* __libc_malloc(size_t size);
extern "C" void* malloc(size_t size) noexcept {
  if (yard_codec_test_alloc::tracking.load(std::memory_order_relaxed)) {
    size_t seen = yard_codec_test_alloc::largest.load(std::memory_order_relaxed);
    while (size > seen && !yard_codec_test_alloc::largest.compare_exchange_weak(
                              seen, size, std::memory_order_relaxed)) {
    }
  }
  return __libc_malloc(size);
}
#endif

namespace yard::protocol {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// ---------------------------------------------------------------- helpers

using testing::Unhex;

// A few MessagePack writers for hand-made (often deliberately wrong) bodies. The tests do not
// use the msgpack library: the codec is its only user.
std::string BigEndian(uint64_t v, int bytes) {
  std::string s;
  for (int i = bytes - 1; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}
std::string Arr(size_t n) {
  if (n < 16) return std::string(1, static_cast<char>(0x90 | n));
  return Unhex("dc") + BigEndian(n, 2);
}
std::string Map(size_t n) {
  if (n < 16) return std::string(1, static_cast<char>(0x80 | n));
  return Unhex("de") + BigEndian(n, 2);
}
std::string U(uint64_t v) {
  if (v < 0x80) return std::string(1, static_cast<char>(v));
  if (v <= 0xff) return Unhex("cc") + BigEndian(v, 1);
  if (v <= 0xffff) return Unhex("cd") + BigEndian(v, 2);
  if (v <= 0xffffffff) return Unhex("ce") + BigEndian(v, 4);
  return Unhex("cf") + BigEndian(v, 8);
}
std::string Neg(int64_t v) {
  if (v >= -32) return std::string(1, static_cast<char>(static_cast<int8_t>(v)));
  return Unhex("d3") + BigEndian(static_cast<uint64_t>(v), 8);
}
std::string S(std::string_view s) {
  std::string h = s.size() < 32 ? std::string(1, static_cast<char>(0xa0 | s.size()))
                                : Unhex("d9") + BigEndian(s.size(), 1);
  return h + std::string(s);
}
std::string B(std::string_view s) { return Unhex("c4") + BigEndian(s.size(), 1) + std::string(s); }
const std::string kNil = Unhex("c0");
const std::string kTrue = Unhex("c3");
const std::string kFalse = Unhex("c2");

std::string Body(const std::vector<std::string>& fields) {
  std::string out = Arr(fields.size());
  for (const auto& f : fields) out += f;
  return out;
}

// Binary bytes that a text-minded codec would mangle.
const std::string kBinary("\x00\xff\x01\x80\x7f\xc0\xff\x00p", 9);

template <typename M>
Status Decode(std::string_view body) {
  M m;
  return DecodeBody(body, &m);
}

template <typename M>
M MustDecode(std::string_view body) {
  M m;
  const Status st = DecodeBody(body, &m);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return m;
}

// Field-by-field views for comparisons: Tie() from message_tie.h, completed with the
// messages that hold tasks, jobs and listings.
template <typename M>
auto Fields(const M& m) {
  return Tie(m);
}
template <typename T>
auto FieldsOf(const std::vector<T>& v) {
  std::vector<decltype(Fields(v.front()))> out;
  for (const auto& x : v) out.push_back(Fields(x));
  return out;
}
auto Fields(const Submit& m) { return std::make_tuple(m.req_id, FieldsOf(m.tasks)); }
auto Fields(const GetReply& m) {
  std::vector<std::optional<decltype(Fields(TaskInfo{}))>> tasks;
  for (const auto& t : m.tasks) {
    if (t) {
      tasks.emplace_back(Fields(*t));
    } else {
      tasks.emplace_back(std::nullopt);
    }
  }
  return std::make_tuple(m.req_id, tasks);
}
auto Fields(const DeadListReply& m) { return std::make_tuple(m.req_id, FieldsOf(m.tasks), m.more); }
auto Fields(const CancelTasks& m) { return std::make_tuple(FieldsOf(m.refs)); }
auto Fields(const JobSpec& m) {
  return std::make_tuple(Fields(m.task), m.split, m.aggregate, m.policy);
}
auto Fields(const JobSubmit& m) { return std::make_tuple(m.req_id, Fields(m.job)); }
auto Fields(const JobSubmitReply& m) {
  return std::tie(m.req_id, m.job_id, m.parts, m.first_task_id);
}
auto Fields(const JobGet& m) { return std::tie(m.req_id, m.job_id, m.with_result); }
auto Fields(const JobCancel& m) { return std::tie(m.req_id, m.job_id); }
auto Fields(const JobInfo& m) {
  return std::make_tuple(m.id, m.type, m.split, m.aggregate, m.policy, m.state, m.parts,
                         m.first_task_id, m.reduce_task_id, m.queued, m.running, m.succeeded,
                         m.failed, m.cancelled, m.result, m.error, FieldsOf(m.failures),
                         m.submitted_us, m.finished_us, m.priority, m.key, m.max_attempts,
                         m.timeout_ms, m.requirements);
}
auto Fields(const JobReply& m) { return std::make_tuple(m.req_id, Fields(m.job)); }
auto Fields(const List& m) {
  return std::tie(m.req_id, m.after_id, m.limit, m.state, m.type, m.key, m.job_id);
}
auto Fields(const ListReply& m) {
  return std::make_tuple(m.req_id, FieldsOf(m.tasks), m.more, m.next_after_id);
}

// ---------------------------------------------------------------- samples
// Every field differs from its default, byte fields hold 0x00 and 0xff, and integers sit at
// the edges of their encodings.

TaskInfo SampleTaskInfo(uint64_t id) {
  TaskInfo t;
  t.id = id;
  t.type = "image.resize";
  t.state = TaskState::kFailed;
  t.priority = 9;
  t.key = "customer-42";
  t.attempt = 3;
  t.failures = 2;
  t.max_attempts = 4;
  t.timeout_ms = 65536;
  t.payload = kBinary;
  t.result = std::string("\xff\x00", 2);
  t.error = "gave up after 2 failed attempts: boom";
  t.worker = "worker-7";
  t.submitted_us = 1'700'000'000'000'000;
  t.dispatched_us = -1;  // wall clocks can step back; the codec keeps signs
  t.finished_us = std::numeric_limits<int64_t>::max();
  t.run_after_us = 1'700'000'000'500'000;
  t.idempotency_key = "order-7";
  t.deadline_us = 1'700'000'001'000'000;
  t.requirements = {"gpu", "zone=eu"};
  t.job_id = 0xffffffffffull;
  t.part = kReducePart;
  return t;
}

// A spec whose every field differs from its default.
TaskSpec SampleSpec() {
  TaskSpec s;
  s.type = "resize";
  s.payload = kBinary;
  s.key = "k1";
  s.priority = 0;
  s.max_attempts = 7;
  s.timeout_ms = 1500;
  s.idempotency_key = "idem-1";
  s.delay_ms = 86'400'000;
  s.not_before_us = -2;  // before the epoch: already reached, but the sign must survive
  s.deadline_ms = std::numeric_limits<uint64_t>::max();
  s.requirements = {"gpu", std::string(40, 'r')};
  return s;
}

JobInfo SampleJobInfo() {
  JobInfo j;
  j.id = 1u << 20;
  j.type = "wordcount";
  j.split = "lines:100";
  j.aggregate = "reduce:merge";
  j.policy = JobPolicy::kContinue;
  j.state = JobState::kPartial;
  j.parts = 70000;
  j.first_task_id = std::numeric_limits<uint64_t>::max() - 70000;
  j.reduce_task_id = 1u << 31;
  j.queued = 1;
  j.running = 2;
  j.succeeded = 69990;
  j.failed = 4;
  j.cancelled = 3;
  j.result = kBinary;
  j.error = "4 parts failed";
  j.failures = {{0, 100, TaskState::kFailed, "boom"},
                {7, 107, TaskState::kDead, "gave up"},
                {0xfffffffeu, 1, TaskState::kExpired, ""},
                {9, 109, TaskState::kCancelled, "cancelled"}};
  j.submitted_us = 1'700'000'000'000'000;
  j.finished_us = -1;
  j.priority = 9;
  j.key = "tenant-3";
  j.max_attempts = 5;
  j.timeout_ms = 0xffffffffu;
  j.requirements = {"zone=eu"};
  return j;
}

template <typename M>
M Sample();

template <>
Hello Sample<Hello>() {
  return {"worker-a",
          0xfedcba9876543210ull,
          {"echo", "sleep", "telemetry.stats"},
          8,
          256,
          "host.example",
          4'000'000'000u,
          {"gpu", "zone=eu"}};
}
template <>
Welcome Sample<Welcome>() {
  return {std::numeric_limits<uint64_t>::max(), 250, 5, 16u << 20, 4096};
}
template <>
Tasks Sample<Tasks>() {
  return {{{1, 1, "echo", kBinary, 30000},
           {std::numeric_limits<uint64_t>::max(), 255, "sleep", "", 1},
           {128, 65536, std::string(40, 't'), std::string(300, '\xff'), 0xffffffffu}}};
}
template <>
Results Sample<Results>() {
  return {17,
          {{1, 1, Outcome::kOk, kBinary, "", 12},
           {2, 3, Outcome::kFailRetry, "", "ABORTED: failed on purpose", 1u << 20},
           {3, 1, Outcome::kFailPermanent, "", "FAILED_PRECONDITION: no", 0},
           {4, 2, Outcome::kReleased, "", "worker draining", std::numeric_limits<uint64_t>::max()},
           {5, 1, Outcome::kCancelled, "", "cancelled", 3}}};
}
template <>
Credit Sample<Credit>() {
  return {0xffffffffu};
}
template <>
Ack Sample<Ack>() {
  return {{{1, 1}, {300, 2}, {std::numeric_limits<uint64_t>::max(), 0xffffffffu}}};
}
template <>
Heartbeat Sample<Heartbeat>() {
  return {};
}
template <>
Extend Sample<Extend>() {
  return {{{5, 1}, {6, 2}}, 60000};
}
template <>
Disconnect Sample<Disconnect>() {
  return {DisconnectReason::kTooLarge, "message over the limit"};
}
template <>
Submit Sample<Submit>() {
  // The second and fourth leave the fields added after the first release at their defaults.
  return {99,
          {SampleSpec(),
           {"echo", kBinary, "k1", 0, 7, 1500, "", 0, 0, 0, {}},
           {"sleep", "10", "", 9, 1, 0, "idem-1", 250, 1'700'000'000'000'000, 0, {}},
           {"cpu", "", std::string(64, 'k'), 5, 0, 86400000, "", 0, 0, 0, {}}}};
}
template <>
SubmitReply Sample<SubmitReply>() {
  return {99, {1, 2, 1u << 31, std::numeric_limits<uint64_t>::max()}};
}
template <>
Get Sample<Get>() {
  return {7, {3, 1, 2}, true};
}
template <>
GetReply Sample<GetReply>() {
  TaskInfo queued;
  queued.id = 2;
  queued.type = "echo";
  queued.state = TaskState::kQueued;
  queued.priority = 0;
  queued.submitted_us = 5;
  queued.state = TaskState::kExpired;
  return {8, {SampleTaskInfo(1), std::nullopt, queued}};
}
template <>
Wait Sample<Wait>() {
  return {9, 12345, 30000};
}
template <>
Cancel Sample<Cancel>() {
  return {10, 777};
}
template <>
CancelReply Sample<CancelReply>() {
  return {11, TaskState::kDead};
}
template <>
Workers Sample<Workers>() {
  return {12};
}
template <>
WorkersReply Sample<WorkersReply>() {
  WorkerInfo a{"w1", "host-a", 100, {"echo", "sleep"},     2,  64,
               3,    1000,     4,   1'700'000'000'000'000, 250};
  WorkerInfo b{"w2", "host-b", 0xffffffffu, {}, 16, 0, 16, std::numeric_limits<uint64_t>::max(),
               1,    -5,       0xffffffffu};
  return {13, {a, b}};
}
template <>
Stats Sample<Stats>() {
  return {14};
}
template <>
StatsReply Sample<StatsReply>() {
  return {15,
          {{"tasks.submitted", 2000},
           {"tasks.succeeded", std::numeric_limits<uint64_t>::max()},
           {"workers.connected", 0},
           {std::string(40, 'x'), 1}}};
}
template <>
Error Sample<Error>() {
  return {16, static_cast<uint8_t>(StatusCode::kResourceExhausted), "queue full"};
}
template <>
TaskInfo Sample<TaskInfo>() {
  return SampleTaskInfo(42);
}
template <>
DeadList Sample<DeadList>() {
  return {17, 1u << 20, 500};
}
template <>
DeadListReply Sample<DeadListReply>() {
  return {18, {SampleTaskInfo(5), SampleTaskInfo(9)}, true};
}
template <>
DeadRequeue Sample<DeadRequeue>() {
  return {19, {5, 9, std::numeric_limits<uint64_t>::max()}, false};
}
template <>
DeadPurge Sample<DeadPurge>() {
  return {20, {}, true};
}
template <>
DeadReply Sample<DeadReply>() {
  return {21, 1000, true};
}
template <>
CancelTasks Sample<CancelTasks>() {
  return {{{1, 1}, {300, 2}, {std::numeric_limits<uint64_t>::max(), 0xffffffffu}}};
}
template <>
JobSubmit Sample<JobSubmit>() {
  TaskSpec task = SampleSpec();
  task.idempotency_key.clear();
  return {22, {task, "range:1..1000000:7", "sum", JobPolicy::kContinue}};
}
template <>
JobSubmitReply Sample<JobSubmitReply>() {
  return {23, std::numeric_limits<uint64_t>::max(), 0xffffffffu, 1u << 31};
}
template <>
JobGet Sample<JobGet>() {
  return {24, 1u << 20, false};
}
template <>
JobCancel Sample<JobCancel>() {
  return {25, 77};
}
template <>
JobReply Sample<JobReply>() {
  return {26, SampleJobInfo()};
}
template <>
JobInfo Sample<JobInfo>() {
  return SampleJobInfo();
}
template <>
List Sample<List>() {
  return {27,
          1u << 20,
          0xffffffffu,
          TaskState::kExpired,
          "echo",
          "tenant-3",
          std::numeric_limits<uint64_t>::max()};
}
template <>
ListReply Sample<ListReply>() {
  TaskInfo part = SampleTaskInfo(10);
  part.payload.clear();
  part.result.clear();
  part.part = 3;
  return {28, {part, SampleTaskInfo(11)}, true, 1u << 31};
}

// ---------------------------------------------------------------- every message

template <typename M>
class CodecAllMessages : public ::testing::Test {};

using AllMessages =
    ::testing::Types<Hello, Welcome, Tasks, Results, Credit, Ack, Heartbeat, Extend, Disconnect,
                     Submit, SubmitReply, Get, GetReply, Wait, Cancel, CancelReply, Workers,
                     WorkersReply, Stats, StatsReply, Error, TaskInfo, DeadList, DeadListReply,
                     DeadRequeue, DeadPurge, DeadReply, CancelTasks, JobSubmit, JobSubmitReply,
                     JobGet, JobCancel, JobReply, JobInfo, List, ListReply>;
TYPED_TEST_SUITE(CodecAllMessages, AllMessages);

TYPED_TEST(CodecAllMessages, RoundTripKeepsEveryField) {
  const TypeParam sent = Sample<TypeParam>();
  const std::string body = EncodeBody(sent);
  const TypeParam got = MustDecode<TypeParam>(body);
  EXPECT_EQ(Fields(got), Fields(sent));
}

TYPED_TEST(CodecAllMessages, RoundTripKeepsDefaults) {
  const TypeParam sent{};
  const TypeParam got = MustDecode<TypeParam>(EncodeBody(sent));
  EXPECT_EQ(Fields(got), Fields(sent));
}

TYPED_TEST(CodecAllMessages, EncodingIsDeterministic) {
  EXPECT_EQ(EncodeBody(Sample<TypeParam>()), EncodeBody(Sample<TypeParam>()));
  // Decoding and encoding again gives the same bytes.
  const std::string body = EncodeBody(Sample<TypeParam>());
  EXPECT_EQ(EncodeBody(MustDecode<TypeParam>(body)), body);
}

TYPED_TEST(CodecAllMessages, RejectsEveryTruncation) {
  for (const std::string& body : {EncodeBody(Sample<TypeParam>()), EncodeBody(TypeParam{})}) {
    for (size_t len = 0; len < body.size(); ++len) {
      const Status st = Decode<TypeParam>(std::string_view(body).substr(0, len));
      EXPECT_FALSE(st.ok()) << "prefix of " << len << " of " << body.size() << " bytes";
      EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
    }
  }
}

TYPED_TEST(CodecAllMessages, RejectsTrailingBytes) {
  const std::string body = EncodeBody(Sample<TypeParam>());
  for (const std::string& extra : {std::string(1, '\0'), kNil, body}) {
    const Status st = Decode<TypeParam>(body + extra);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(st.message(), HasSubstr("trailing bytes"));
  }
}

// A later minor version may append fields: an older decoder ignores them.
TYPED_TEST(CodecAllMessages, AcceptsExtraTrailingFields) {
  const TypeParam sent = Sample<TypeParam>();
  std::string body = EncodeBody(sent);
  const auto first = static_cast<uint8_t>(body[0]);
  if (first >= 0x90 && first < 0x9f) {
    body[0] = static_cast<char>(first + 1);
  } else {
    ASSERT_EQ(first, 0xdc) << "top level must be an array";
    const unsigned n = (static_cast<uint8_t>(body[1]) << 8 | static_cast<uint8_t>(body[2])) + 1;
    body.replace(0, 3, Unhex("dc") + BigEndian(n, 2));
  }
  for (const std::string& extra : {S("added in 1.1"), U(7), Arr(2) + U(1) + kNil, kNil}) {
    const TypeParam got = MustDecode<TypeParam>(body + extra);
    EXPECT_EQ(Fields(got), Fields(sent));
  }
}

TYPED_TEST(CodecAllMessages, RejectsBodiesThatAreNotArrays) {
  for (const std::string& body : {kNil, U(1), S("hello"), Map(0), B("")}) {
    const Status st = Decode<TypeParam>(body);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(st.message(), HasSubstr("expected array"));
  }
}

TYPED_TEST(CodecAllMessages, RejectsTooFewFields) {
  const Status st = Decode<TypeParam>(Arr(0));
  if (EncodeBody(Sample<TypeParam>()) == Arr(0)) {
    EXPECT_TRUE(st.ok()) << "a message without fields is the empty array";
    return;
  }
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("expected at least"));
}

// ---------------------------------------------------------------- particular encodings

TEST(Codec, ByteFieldsKeepZeroAndHighBytes) {
  Tasks t{{{1, 1, "echo", kBinary, 10}}};
  const Tasks got = MustDecode<Tasks>(EncodeBody(t));
  ASSERT_EQ(got.tasks.size(), 1u);
  EXPECT_EQ(got.tasks[0].payload.size(), kBinary.size());
  EXPECT_EQ(got.tasks[0].payload, kBinary);
}

TEST(Codec, EncodesByteFieldsAsBinAndTextFieldsAsStr) {
  // TASKS [[id, attempt, type:str, payload:bin, lease_ms]]
  EXPECT_EQ(EncodeBody(Tasks{{{1, 2, "t", std::string(1, '\0'), 3}}}),
            Arr(1) + Arr(1) + Arr(5) + U(1) + U(2) + S("t") + B(std::string(1, '\0')) + U(3));
}

TEST(Codec, ByteFieldsAlsoAcceptStr) {
  const std::string body = Body({Arr(1) + Arr(5) + U(1) + U(2) + S("echo") + S("as str") + U(3)});
  const Tasks got = MustDecode<Tasks>(body);
  ASSERT_EQ(got.tasks.size(), 1u);
  EXPECT_EQ(got.tasks[0].payload, "as str");
}

TEST(Codec, TextFieldsRejectBin) {
  const std::string body = Body({Arr(1) + Arr(5) + U(1) + U(2) + B("echo") + B("p") + U(3)});
  const Status st = Decode<Tasks>(body);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("TASKS.tasks[0].type"));
}

TEST(Codec, DecodesIntegersInAnyWidth) {
  // A peer may use a wider encoding than needed: cf (uint64) for a small credit.
  const std::string body = Arr(1) + Unhex("cf 00 00 00 00 00 00 00 05");
  EXPECT_EQ(MustDecode<Credit>(body).credit, 5u);
}

TEST(Codec, KeepsUnknownDisconnectReasonsAsNumbers) {
  const Disconnect got = MustDecode<Disconnect>(Body({U(200), S("from the future")}));
  EXPECT_EQ(static_cast<uint8_t>(got.reason), 200);
  EXPECT_EQ(got.message, "from the future");
}

TEST(Codec, GetReplyKeepsNilForUnknownIds) {
  const GetReply got = MustDecode<GetReply>(Body({U(1), Arr(2) + kNil + kNil}));
  ASSERT_EQ(got.tasks.size(), 2u);
  EXPECT_FALSE(got.tasks[0].has_value());
  EXPECT_FALSE(got.tasks[1].has_value());
}

TEST(Codec, RoundTripsEveryOutcomeStateAndReason) {
  for (uint8_t o = 0; o <= static_cast<uint8_t>(Outcome::kCancelled); ++o) {
    Results r{1, {{1, 1, static_cast<Outcome>(o), "", "", 0}}};
    EXPECT_EQ(MustDecode<Results>(EncodeBody(r)).results.at(0).outcome, static_cast<Outcome>(o));
  }
  for (uint8_t s = 0; s <= static_cast<uint8_t>(TaskState::kExpired); ++s) {
    const auto state = static_cast<TaskState>(s);
    CancelReply c{1, state};
    EXPECT_EQ(MustDecode<CancelReply>(EncodeBody(c)).state, state);
    TaskInfo t;
    t.state = state;
    EXPECT_EQ(MustDecode<TaskInfo>(EncodeBody(t)).state, state);
    List l;
    l.state = state;
    EXPECT_EQ(MustDecode<List>(EncodeBody(l)).state, state);
    JobInfo j;
    j.failures = {{1, 2, state, ""}};
    EXPECT_EQ(MustDecode<JobInfo>(EncodeBody(j)).failures.at(0).state, state);
  }
  for (uint8_t p = 0; p <= static_cast<uint8_t>(JobPolicy::kContinue); ++p) {
    JobSubmit m;
    m.job.policy = static_cast<JobPolicy>(p);
    EXPECT_EQ(MustDecode<JobSubmit>(EncodeBody(m)).job.policy, static_cast<JobPolicy>(p));
    JobInfo j;
    j.policy = static_cast<JobPolicy>(p);
    EXPECT_EQ(MustDecode<JobInfo>(EncodeBody(j)).policy, static_cast<JobPolicy>(p));
  }
  for (uint8_t s = 0; s <= static_cast<uint8_t>(JobState::kCancelled); ++s) {
    JobReply m;
    m.job.state = static_cast<JobState>(s);
    EXPECT_EQ(MustDecode<JobReply>(EncodeBody(m)).job.state, static_cast<JobState>(s));
  }
  for (uint8_t d = 0; d <= static_cast<uint8_t>(DisconnectReason::kTooLarge); ++d) {
    Disconnect m{static_cast<DisconnectReason>(d), "m"};
    EXPECT_EQ(MustDecode<Disconnect>(EncodeBody(m)).reason, static_cast<DisconnectReason>(d));
  }
}

TEST(Codec, NestedElementsAcceptExtraTrailingFields) {
  {
    const std::string body =
        Body({Arr(1) + Arr(6) + U(1) + U(2) + S("echo") + B("p") + U(3) + S("new field")});
    const Tasks got = MustDecode<Tasks>(body);
    ASSERT_EQ(got.tasks.size(), 1u);
    EXPECT_EQ(Tie(got.tasks[0]), Tie(TaskMsg{1, 2, "echo", "p", 3}));
  }
  {
    const std::string body =
        Body({U(4), Arr(1) + Arr(7) + U(1) + U(2) + U(1) + B("") + S("err") + U(9) + kTrue});
    const Results got = MustDecode<Results>(body);
    EXPECT_EQ(got.credit, 4u);
    ASSERT_EQ(got.results.size(), 1u);
    EXPECT_EQ(Tie(got.results[0]), Tie(ResultMsg{1, 2, Outcome::kFailRetry, "", "err", 9}));
  }
  {
    const std::string body =
        Body({U(5), Arr(1) + Arr(12) + S("echo") + B("x") + S("") + U(5) + U(0) + U(0) + S("") +
                        U(1) + U(2) + U(3) + Arr(1) + S("gpu") + Map(0)});
    const Submit got = MustDecode<Submit>(body);
    ASSERT_EQ(got.tasks.size(), 1u);
    EXPECT_EQ(got.tasks[0].payload, "x");
    EXPECT_EQ(got.tasks[0].deadline_ms, 3u);
    EXPECT_EQ(got.tasks[0].requirements, std::vector<std::string>{"gpu"});
  }
  {
    const std::string failure = Arr(5) + U(1) + U(2) + U(3) + S("e") + S("new field");
    std::string job = EncodeBody(JobInfo{});
    ASSERT_EQ(job.substr(0, 3), Unhex("dc 00 18"));
    const std::string empty_failures = Arr(0);
    const size_t at = job.find(empty_failures, 3);
    ASSERT_NE(at, std::string::npos);
    job.replace(at, 1, Arr(1) + failure);
    const JobReply got = MustDecode<JobReply>(Body({U(1), job}));
    ASSERT_EQ(got.job.failures.size(), 1u);
    EXPECT_EQ(Fields(got.job.failures[0]), Fields(PartFailure{1, 2, TaskState::kFailed, "e"}));
  }
  {
    const std::string body = Body({Arr(1) + Arr(3) + U(8) + U(2) + U(99), U(100)});
    const Extend got = MustDecode<Extend>(body);
    ASSERT_EQ(got.refs.size(), 1u);
    EXPECT_EQ(got.refs[0], (TaskRef{8, 2}));
    EXPECT_EQ(got.lease_ms, 100u);
  }
  {
    std::string info = EncodeBody(SampleTaskInfo(3));
    ASSERT_EQ(info.substr(0, 3), Unhex("dc 00 16"));
    info = Unhex("dc 00 17") + info.substr(3) + S("extra");
    const GetReply got = MustDecode<GetReply>(Body({U(1), Arr(1) + info}));
    ASSERT_EQ(got.tasks.size(), 1u);
    ASSERT_TRUE(got.tasks[0].has_value());
    EXPECT_EQ(Fields(*got.tasks[0]), Fields(SampleTaskInfo(3)));
  }
}

// ---------------------------------------------------------------- earlier field lists
// Specs and records written by hand, field by field in the order of docs/protocol.md, so that
// older (shorter) forms can be cut from them.

std::string I(int64_t v) { return v < 0 ? Neg(v) : U(static_cast<uint64_t>(v)); }
std::string Strs(const std::vector<std::string>& v) {
  std::string out = Arr(v.size());
  for (const auto& x : v) out += S(x);
  return out;
}

std::vector<std::string> SpecFields(const TaskSpec& t) {
  return {S(t.type),
          B(t.payload),
          S(t.key),
          U(t.priority),
          U(t.max_attempts),
          U(t.timeout_ms),
          S(t.idempotency_key),
          U(t.delay_ms),
          I(t.not_before_us),
          U(t.deadline_ms),
          Strs(t.requirements)};
}

std::vector<std::string> InfoFields(const TaskInfo& t) {
  return {U(t.id),
          S(t.type),
          U(static_cast<uint8_t>(t.state)),
          U(t.priority),
          S(t.key),
          U(t.attempt),
          U(t.failures),
          U(t.max_attempts),
          U(t.timeout_ms),
          B(t.payload),
          B(t.result),
          S(t.error),
          S(t.worker),
          I(t.submitted_us),
          I(t.dispatched_us),
          I(t.finished_us),
          I(t.run_after_us),
          S(t.idempotency_key),
          I(t.deadline_us),
          Strs(t.requirements),
          U(t.job_id),
          U(t.part)};
}

std::string FirstFields(const std::vector<std::string>& fields, size_t n) {
  return Body(std::vector<std::string>(fields.begin(), fields.begin() + static_cast<long>(n)));
}

// `t` as a decoder sees it when the body stops before field `n`.
TaskSpec SpecCutAt(TaskSpec t, size_t n) {
  const TaskSpec d;
  if (n <= 7) t.delay_ms = d.delay_ms;
  if (n <= 8) t.not_before_us = d.not_before_us;
  if (n <= 9) t.deadline_ms = d.deadline_ms;
  if (n <= 10) t.requirements = d.requirements;
  return t;
}
TaskInfo InfoCutAt(TaskInfo t, size_t n) {
  const TaskInfo d;
  if (n <= 16) t.run_after_us = d.run_after_us;
  if (n <= 17) t.idempotency_key = d.idempotency_key;
  if (n <= 18) t.deadline_us = d.deadline_us;
  if (n <= 19) t.requirements = d.requirements;
  if (n <= 20) t.job_id = d.job_id;
  if (n <= 21) t.part = d.part;
  return t;
}

TEST(Codec, EncodesSpecAndTaskInfoFieldsInTheDocumentedOrder) {
  EXPECT_EQ(EncodeBody(Submit{1, {SampleSpec()}}),
            Body({U(1), Arr(1) + Body(SpecFields(SampleSpec()))}));
  EXPECT_EQ(EncodeBody(SampleTaskInfo(3)), Body(InfoFields(SampleTaskInfo(3))));
}

TEST(Codec, SpecsFromOlderClientsDecodeWithDefaults) {
  // Clients before delays, deadlines and requirements send 7 fields; every length between
  // that and the current 11 decodes, the missing fields taking their defaults.
  const std::vector<std::string> fields = SpecFields(SampleSpec());
  ASSERT_EQ(fields.size(), 11u);
  for (size_t n = 7; n <= fields.size(); ++n) {
    SCOPED_TRACE(n);
    const TaskSpec want = SpecCutAt(SampleSpec(), n);
    Submit submit{0, {SampleSpec()}};  // decoding must not keep fields the body lacks
    ASSERT_TRUE(DecodeBody(Body({U(1), Arr(1) + FirstFields(fields, n)}), &submit).ok());
    ASSERT_EQ(submit.tasks.size(), 1u);
    EXPECT_EQ(Fields(submit.tasks[0]), Fields(want));
    JobSubmit job;
    job.job.task = SampleSpec();
    ASSERT_TRUE(
        DecodeBody(Body({U(2), Body({FirstFields(fields, n), S("lines:1"), S("count"), U(0)})}),
                   &job)
            .ok());
    EXPECT_EQ(Fields(job.job.task), Fields(want));
  }
}

TEST(Codec, TaskInfoRecordsWith16And18FieldsDecodeWithDefaults) {
  // The first release stored 16 fields, the next 18 (run_after_us, idempotency_key); the
  // current 22 add deadline_us, requirements, job_id and part. Every length in between decodes.
  const std::vector<std::string> fields = InfoFields(SampleTaskInfo(4));
  ASSERT_EQ(fields.size(), 22u);
  for (size_t n = 16; n <= fields.size(); ++n) {
    SCOPED_TRACE(n);
    const TaskInfo want = InfoCutAt(SampleTaskInfo(4), n);
    TaskInfo got = SampleTaskInfo(99);  // decoding must not keep fields the record lacks
    const Status st = DecodeBody(FirstFields(fields, n), &got);
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(Fields(got), Fields(want));
    // The same inside replies.
    const ListReply list = MustDecode<ListReply>(
        Body({U(1), Arr(2) + FirstFields(fields, n) + FirstFields(fields, n), kTrue, U(9)}));
    ASSERT_EQ(list.tasks.size(), 2u);
    EXPECT_EQ(Fields(list.tasks[1]), Fields(want));
    const GetReply get = MustDecode<GetReply>(Body({U(1), Arr(1) + FirstFields(fields, n)}));
    ASSERT_TRUE(get.tasks.at(0).has_value());
    EXPECT_EQ(Fields(*get.tasks[0]), Fields(want));
  }
  const TaskInfo old16 = MustDecode<TaskInfo>(FirstFields(fields, 16));
  EXPECT_EQ(old16.run_after_us, 0);
  EXPECT_EQ(old16.idempotency_key, "");
  EXPECT_EQ(old16.deadline_us, 0);
  EXPECT_EQ(old16.job_id, 0u);
  EXPECT_EQ(old16.part, 0u);
  const TaskInfo old18 = MustDecode<TaskInfo>(FirstFields(fields, 18));
  EXPECT_EQ(old18.idempotency_key, "order-7");
  EXPECT_THAT(old18.requirements, ::testing::IsEmpty());
  EXPECT_EQ(old18.job_id, 0u);
}

// ---------------------------------------------------------------- wrong field types

struct WrongField {
  const char* name;
  std::function<Status(std::string_view)> decode;
  std::string body;
  std::vector<std::string> expect;  // substrings of the error message
};

std::string HelloWith(size_t index, const std::string& value) {
  std::vector<std::string> f = {S("w"), U(1),  Arr(1) + S("echo"), U(1), U(1), S("h"),
                                U(42),  Arr(0)};
  f[index] = value;
  return Body(f);
}

std::string TaskWith(size_t index, const std::string& value) {
  std::vector<std::string> f = {U(1), U(1), S("echo"), B("p"), U(1000)};
  f[index] = value;
  return Body({Arr(1) + Body(f)});
}

std::string ResultWith(size_t index, const std::string& value) {
  std::vector<std::string> f = {U(1), U(1), U(0), B("o"), S(""), U(5)};
  f[index] = value;
  return Body({U(1), Arr(1) + Body(f)});
}

std::vector<std::string> BaseSpec() {
  return {S("echo"), B("p"), S(""), U(5), U(0), U(0), S(""), U(0), I(0), U(0), Arr(0)};
}

std::string SpecWith(size_t index, const std::string& value) {
  std::vector<std::string> f = BaseSpec();
  f[index] = value;
  return Body({U(1), Arr(1) + Body(f)});
}

std::string InfoWith(size_t index, const std::string& value) {
  std::vector<std::string> f = {U(1),    S("echo"), U(0),  U(5),   S(""), U(0), U(0), U(3),
                                U(1000), B(""),     B(""), S(""),  S(""), U(1), U(0), U(0),
                                I(0),    S(""),     I(0),  Arr(0), U(0),  U(0)};
  f[index] = value;
  return Body(f);
}

// JOB_SUBMIT [req_id, [task, split, aggregate, policy]]; index 4.. replaces a field of the task.
std::string JobSubmitWith(size_t index, const std::string& value) {
  std::vector<std::string> spec = BaseSpec();
  std::vector<std::string> job = {Body(spec), S("lines:10"), S("collect"), U(0)};
  if (index < job.size()) {
    job[index] = value;
  } else {
    spec[index - job.size()] = value;
    job[0] = Body(spec);
  }
  return Body({U(1), Body(job)});
}

std::vector<std::string> BaseJob() {
  return {U(1),   S("echo"), S("lines:1"), S("collect"), U(0),  U(0), U(2),  U(10),
          U(0),   U(0),      U(0),         U(1),         U(1),  U(0), B(""), S(""),
          Arr(0), I(5),      I(0),         U(5),         S(""), U(0), U(0),  Arr(0)};
}

std::string JobInfoWith(size_t index, const std::string& value) {
  std::vector<std::string> f = BaseJob();
  f[index] = value;
  return Body(f);
}

std::string JobReplyWith(size_t index, const std::string& value) {
  return Body({U(1), JobInfoWith(index, value)});
}

// A JOB_REPLY whose job has one part failure [part, task_id, state, error].
std::string FailureWith(size_t index, const std::string& value) {
  std::vector<std::string> failure = {U(1), U(11), U(3), S("boom")};
  failure[index] = value;
  return JobReplyWith(16, Arr(1) + Body(failure));
}

std::string ListWith(size_t index, const std::string& value) {
  std::vector<std::string> f = {U(1), U(0), U(100), kNil, S(""), S(""), U(0)};
  f[index] = value;
  return Body(f);
}

std::string ListReplyWith(size_t index, const std::string& value) {
  std::vector<std::string> f = {U(1), Arr(1) + InfoWith(0, U(1)), kFalse, U(2)};
  f[index] = value;
  return Body(f);
}

std::string WorkerBody(size_t index, const std::string& value) {
  std::vector<std::string> f = {S("w"), S("h"), U(1), Arr(1) + S("echo"), U(2), U(3), U(0), U(0),
                                U(0),   U(0),   U(0)};
  f[index] = value;
  return Body(f);
}

std::string WorkerWith(size_t index, const std::string& value) {
  return Body({U(1), Arr(1) + WorkerBody(index, value)});
}

std::vector<WrongField> WrongFields() {
  const std::string too_big_u32 = U(uint64_t{1} << 32);
  return {
      {"hello worker_id int", Decode<Hello>, HelloWith(0, U(5)), {"HELLO.worker_id", "str"}},
      {"hello incarnation str", Decode<Hello>, HelloWith(1, S("7")), {"HELLO.incarnation"}},
      {"hello incarnation negative", Decode<Hello>, HelloWith(1, Neg(-1)), {"HELLO.incarnation"}},
      {"hello handlers not array",
       Decode<Hello>,
       HelloWith(2, S("echo")),
       {"HELLO", "handlers", "expected array"}},
      {"hello handler not str",
       Decode<Hello>,
       HelloWith(2, Arr(2) + S("echo") + U(1)),
       {"HELLO", "handlers", "str"}},
      {"hello slots out of range",
       Decode<Hello>,
       HelloWith(3, too_big_u32),
       {"HELLO.slots", "out of range"}},
      {"hello credit nil", Decode<Hello>, HelloWith(4, kNil), {"HELLO.credit"}},
      {"hello hostname bin", Decode<Hello>, HelloWith(5, B("h")), {"HELLO.hostname"}},
      {"hello pid bool", Decode<Hello>, HelloWith(6, kTrue), {"HELLO.pid"}},
      {"hello tags map", Decode<Hello>, HelloWith(7, Map(0)), {"HELLO", "tags"}},
      {"welcome session str",
       Decode<Welcome>,
       Body({S("1"), U(1), U(1), U(1), U(1)}),
       {"WELCOME.session"}},
      {"welcome heartbeat negative",
       Decode<Welcome>,
       Body({U(1), Neg(-1000), U(1), U(1), U(1)}),
       {"WELCOME.heartbeat_ms"}},
      {"welcome max_batch too big",
       Decode<Welcome>,
       Body({U(1), U(1), U(1), U(1), too_big_u32}),
       {"WELCOME.max_batch", "out of range"}},
      {"tasks not array", Decode<Tasks>, Body({U(1)}), {"TASKS.tasks", "expected array"}},
      {"task not array", Decode<Tasks>, Body({Arr(1) + U(1)}), {"TASKS.tasks[0]"}},
      {"task too short",
       Decode<Tasks>,
       Body({Arr(1) + Body({U(1), U(1)})}),
       {"TASKS.tasks[0]", "expected at least 5"}},
      {"task id str", Decode<Tasks>, TaskWith(0, S("1")), {"TASKS.tasks[0].id"}},
      {"task attempt too big",
       Decode<Tasks>,
       TaskWith(1, too_big_u32),
       {"TASKS.tasks[0].attempt", "out of range"}},
      {"task payload int", Decode<Tasks>, TaskWith(3, U(1)), {"TASKS.tasks[0].payload"}},
      {"task lease str", Decode<Tasks>, TaskWith(4, S("30s")), {"TASKS.tasks[0].lease_ms"}},
      {"results credit str", Decode<Results>, Body({S("1"), Arr(0)}), {"RESULTS.credit"}},
      {"results not array", Decode<Results>, Body({U(1), Map(0)}), {"RESULTS.results"}},
      {"result unknown outcome",
       Decode<Results>,
       ResultWith(2, U(5)),
       {"RESULTS.results[0].outcome", "unknown value 5"}},
      {"result output nil", Decode<Results>, ResultWith(3, kNil), {"RESULTS.results[0].output"}},
      {"result error int", Decode<Results>, ResultWith(4, U(1)), {"RESULTS.results[0].error"}},
      {"result duration negative",
       Decode<Results>,
       ResultWith(5, Neg(-5)),
       {"RESULTS.results[0].duration_us"}},
      {"credit nil", Decode<Credit>, Body({kNil}), {"CREDIT.credit"}},
      {"ack refs map", Decode<Ack>, Body({Map(0)}), {"ACK", "refs", "expected array"}},
      {"ack ref short", Decode<Ack>, Body({Arr(1) + Arr(1) + U(1)}), {"ACK", "refs"}},
      {"ack ref attempt str",
       Decode<Ack>,
       Body({Arr(1) + Arr(2) + U(1) + S("1")}),
       {"ACK", "attempt"}},
      {"extend lease bool", Decode<Extend>, Body({Arr(0), kFalse}), {"EXTEND.lease_ms"}},
      {"extend ref id str",
       Decode<Extend>,
       Body({Arr(1) + Arr(2) + S("1") + U(1), U(1)}),
       {"EXTEND", "id"}},
      {"disconnect reason str",
       Decode<Disconnect>,
       Body({S("shutdown"), S("")}),
       {"DISCONNECT.reason"}},
      {"disconnect reason too big",
       Decode<Disconnect>,
       Body({U(256), S("")}),
       {"DISCONNECT.reason", "out of range"}},
      {"disconnect message int", Decode<Disconnect>, Body({U(0), U(1)}), {"DISCONNECT.message"}},
      {"submit req_id negative", Decode<Submit>, Body({Neg(-1), Arr(0)}), {"SUBMIT.req_id"}},
      {"submit tasks nil", Decode<Submit>, Body({U(1), kNil}), {"SUBMIT.tasks"}},
      {"spec type int", Decode<Submit>, SpecWith(0, U(1)), {"SUBMIT.tasks[0].type"}},
      {"spec payload bool", Decode<Submit>, SpecWith(1, kTrue), {"SUBMIT.tasks[0].payload"}},
      {"spec key nil", Decode<Submit>, SpecWith(2, kNil), {"SUBMIT.tasks[0].key"}},
      {"spec priority too big",
       Decode<Submit>,
       SpecWith(3, U(256)),
       {"SUBMIT.tasks[0].priority", "out of range"}},
      {"spec max_attempts str",
       Decode<Submit>,
       SpecWith(4, S("3")),
       {"SUBMIT.tasks[0].max_attempts"}},
      {"spec timeout negative",
       Decode<Submit>,
       SpecWith(5, Neg(-1)),
       {"SUBMIT.tasks[0].timeout_ms"}},
      {"spec idempotency bin",
       Decode<Submit>,
       SpecWith(6, B("k")),
       {"SUBMIT.tasks[0].idempotency_key"}},
      {"submit_reply ids str", Decode<SubmitReply>, Body({U(1), S("1,2")}), {"SUBMIT_REPLY.ids"}},
      {"submit_reply id str",
       Decode<SubmitReply>,
       Body({U(1), Arr(1) + S("1")}),
       {"SUBMIT_REPLY", "ids"}},
      {"get with_payload int", Decode<Get>, Body({U(1), Arr(0), U(1)}), {"GET.with_payload"}},
      {"get id negative", Decode<Get>, Body({U(1), Arr(1) + Neg(-3), kFalse}), {"GET", "ids"}},
      {"get_reply tasks str", Decode<GetReply>, Body({U(1), S("")}), {"GET_REPLY.tasks"}},
      {"get_reply task short",
       Decode<GetReply>,
       Body({U(1), Arr(1) + Arr(3) + U(1) + U(1) + U(1)}),
       {"GET_REPLY.tasks[0]", "expected at least 16"}},
      {"get_reply task state unknown",
       Decode<GetReply>,
       Body({U(1), Arr(1) + InfoWith(2, U(7))}),
       {"GET_REPLY.tasks[0].state", "unknown value 7"}},
      {"get_reply task submitted str",
       Decode<GetReply>,
       Body({U(1), Arr(1) + InfoWith(13, S("now"))}),
       {"GET_REPLY.tasks[0].submitted_us"}},
      {"wait timeout str", Decode<Wait>, Body({U(1), U(2), S("5s")}), {"WAIT.timeout_ms"}},
      {"wait id negative", Decode<Wait>, Body({U(1), Neg(-2), U(5)}), {"WAIT.id"}},
      {"cancel id str", Decode<Cancel>, Body({U(1), S("7")}), {"CANCEL.id"}},
      {"cancel_reply state unknown",
       Decode<CancelReply>,
       Body({U(1), U(9)}),
       {"CANCEL_REPLY.state", "unknown value 9"}},
      {"workers req_id str", Decode<Workers>, Body({S("1")}), {"WORKERS.req_id"}},
      {"workers_reply workers int",
       Decode<WorkersReply>,
       Body({U(1), U(0)}),
       {"WORKERS_REPLY.workers"}},
      {"worker pid str",
       Decode<WorkersReply>,
       WorkerWith(2, S("1")),
       {"WORKERS_REPLY.workers[0].pid"}},
      {"worker handlers int",
       Decode<WorkersReply>,
       WorkerWith(3, U(1)),
       {"WORKERS_REPLY.workers[0].handlers"}},
      {"worker connected str",
       Decode<WorkersReply>,
       WorkerWith(9, S("x")),
       {"WORKERS_REPLY.workers[0].connected_us"}},
      {"stats req_id nil", Decode<Stats>, Body({kNil}), {"STATS.req_id"}},
      {"stats_reply counters array",
       Decode<StatsReply>,
       Body({U(1), Arr(0)}),
       {"STATS_REPLY.counters", "expected map"}},
      {"stats_reply key int",
       Decode<StatsReply>,
       Body({U(1), Map(1) + U(1) + U(1)}),
       {"STATS_REPLY.counters.key"}},
      {"stats_reply value str",
       Decode<StatsReply>,
       Body({U(1), Map(1) + S("a") + S("1")}),
       {"STATS_REPLY.counters.value"}},
      {"error code too big",
       Decode<Error>,
       Body({U(1), U(300), S("m")}),
       {"ERROR.code", "out of range"}},
      {"error message int", Decode<Error>, Body({U(1), U(3), U(0)}), {"ERROR.message"}},
      {"task_info id str", Decode<TaskInfo>, InfoWith(0, S("1")), {"TASK_INFO.id"}},
      {"task_info finished too big",
       Decode<TaskInfo>,
       InfoWith(15, U(std::numeric_limits<uint64_t>::max())),
       {"TASK_INFO.finished_us", "out of range"}},
      // Fields and messages added with delays, deadlines, requirements, jobs and listing.
      {"spec delay_ms str", Decode<Submit>, SpecWith(7, S("5s")), {"SUBMIT.tasks[0].delay_ms"}},
      {"spec delay_ms negative",
       Decode<Submit>,
       SpecWith(7, Neg(-1)),
       {"SUBMIT.tasks[0].delay_ms", "unsigned"}},
      {"spec not_before_us str",
       Decode<Submit>,
       SpecWith(8, S("now")),
       {"SUBMIT.tasks[0].not_before_us", "expected int"}},
      {"spec not_before_us too big",
       Decode<Submit>,
       SpecWith(8, U(std::numeric_limits<uint64_t>::max())),
       {"SUBMIT.tasks[0].not_before_us", "out of range"}},
      {"spec deadline_ms nil", Decode<Submit>, SpecWith(9, kNil), {"SUBMIT.tasks[0].deadline_ms"}},
      {"spec requirements str",
       Decode<Submit>,
       SpecWith(10, S("gpu")),
       {"SUBMIT.tasks[0].requirements", "expected array"}},
      {"spec requirement int",
       Decode<Submit>,
       SpecWith(10, Arr(2) + S("gpu") + U(1)),
       {"SUBMIT.tasks[0].requirements[1]", "expected str"}},
      {"task_info state unknown",
       Decode<TaskInfo>,
       InfoWith(2, U(7)),
       {"TASK_INFO.state", "unknown value 7"}},
      {"task_info deadline str",
       Decode<TaskInfo>,
       InfoWith(18, S("soon")),
       {"TASK_INFO.deadline_us", "expected int"}},
      {"task_info requirements map",
       Decode<TaskInfo>,
       InfoWith(19, Map(0)),
       {"TASK_INFO.requirements", "expected array"}},
      {"task_info requirement bin",
       Decode<TaskInfo>,
       InfoWith(19, Arr(1) + B("gpu")),
       {"TASK_INFO.requirements[0]", "expected str"}},
      {"task_info job_id negative",
       Decode<TaskInfo>,
       InfoWith(20, Neg(-1)),
       {"TASK_INFO.job_id", "unsigned"}},
      {"task_info part too big",
       Decode<TaskInfo>,
       InfoWith(21, too_big_u32),
       {"TASK_INFO.part", "out of range"}},
      {"cancel_tasks refs map",
       Decode<CancelTasks>,
       Body({Map(0)}),
       {"CANCEL_TASKS.refs", "expected array"}},
      {"cancel_tasks ref short",
       Decode<CancelTasks>,
       Body({Arr(1) + Arr(1) + U(1)}),
       {"CANCEL_TASKS.refs[0]", "expected [id, attempt]"}},
      {"cancel_tasks ref attempt too big",
       Decode<CancelTasks>,
       Body({Arr(1) + Arr(2) + U(1) + too_big_u32}),
       {"CANCEL_TASKS.refs[0].attempt"}},
      {"job_submit req_id str", Decode<JobSubmit>, Body({S("1"), Arr(0)}), {"JOB_SUBMIT.req_id"}},
      {"job_submit job str",
       Decode<JobSubmit>,
       Body({U(1), S("job")}),
       {"JOB_SUBMIT.job", "expected array"}},
      {"job_submit job short",
       Decode<JobSubmit>,
       Body({U(1), Body({Body(BaseSpec()), S("lines:1"), S("collect")})}),
       {"JOB_SUBMIT.job", "expected at least 4 fields, got 3"}},
      {"job_submit task not array",
       Decode<JobSubmit>,
       JobSubmitWith(0, S("echo")),
       {"JOB_SUBMIT.job.task", "expected array"}},
      {"job_submit task short",
       Decode<JobSubmit>,
       JobSubmitWith(0, Body({S("echo"), B("p"), S("")})),
       {"JOB_SUBMIT.job.task", "expected at least 7 fields, got 3"}},
      {"job_submit split int",
       Decode<JobSubmit>,
       JobSubmitWith(1, U(10)),
       {"JOB_SUBMIT.job.split"}},
      {"job_submit aggregate bin",
       Decode<JobSubmit>,
       JobSubmitWith(2, B("sum")),
       {"JOB_SUBMIT.job.aggregate", "expected str"}},
      {"job_submit policy unknown",
       Decode<JobSubmit>,
       JobSubmitWith(3, U(2)),
       {"JOB_SUBMIT.job.policy", "unknown value 2"}},
      {"job_submit policy str",
       Decode<JobSubmit>,
       JobSubmitWith(3, S("continue")),
       {"JOB_SUBMIT.job.policy", "expected unsigned int"}},
      {"job_submit task type int",
       Decode<JobSubmit>,
       JobSubmitWith(4 + 0, U(1)),
       {"JOB_SUBMIT.job.task.type"}},
      {"job_submit task priority too big",
       Decode<JobSubmit>,
       JobSubmitWith(4 + 3, U(256)),
       {"JOB_SUBMIT.job.task.priority", "out of range"}},
      {"job_submit task requirement int",
       Decode<JobSubmit>,
       JobSubmitWith(4 + 10, Arr(1) + U(1)),
       {"JOB_SUBMIT.job.task.requirements[0]"}},
      {"job_submit_reply parts too big",
       Decode<JobSubmitReply>,
       Body({U(1), U(2), too_big_u32, U(3)}),
       {"JOB_SUBMIT_REPLY.parts", "out of range"}},
      {"job_submit_reply first_task_id str",
       Decode<JobSubmitReply>,
       Body({U(1), U(2), U(3), S("4")}),
       {"JOB_SUBMIT_REPLY.first_task_id"}},
      {"job_submit_reply short",
       Decode<JobSubmitReply>,
       Body({U(1), U(2), U(3)}),
       {"JOB_SUBMIT_REPLY", "expected at least 4 fields, got 3"}},
      {"job_get with_result int",
       Decode<JobGet>,
       Body({U(1), U(2), U(1)}),
       {"JOB_GET.with_result", "expected bool"}},
      {"job_get job_id str", Decode<JobGet>, Body({U(1), S("2"), kTrue}), {"JOB_GET.job_id"}},
      {"job_cancel job_id negative",
       Decode<JobCancel>,
       Body({U(1), Neg(-2)}),
       {"JOB_CANCEL.job_id"}},
      {"job_reply job nil",
       Decode<JobReply>,
       Body({U(1), kNil}),
       {"JOB_REPLY.job", "expected array"}},
      {"job_reply job short",
       Decode<JobReply>,
       Body({U(1), Body({U(1), S("echo")})}),
       {"JOB_REPLY.job", "expected at least 24 fields, got 2"}},
      {"job_reply id str", Decode<JobReply>, JobReplyWith(0, S("1")), {"JOB_REPLY.job.id"}},
      {"job_reply split int", Decode<JobReply>, JobReplyWith(2, U(1)), {"JOB_REPLY.job.split"}},
      {"job_reply policy unknown",
       Decode<JobReply>,
       JobReplyWith(4, U(2)),
       {"JOB_REPLY.job.policy", "unknown value 2"}},
      {"job_reply state unknown",
       Decode<JobReply>,
       JobReplyWith(5, U(6)),
       {"JOB_REPLY.job.state", "unknown value 6"}},
      {"job_reply parts too big",
       Decode<JobReply>,
       JobReplyWith(6, too_big_u32),
       {"JOB_REPLY.job.parts", "out of range"}},
      {"job_reply cancelled negative",
       Decode<JobReply>,
       JobReplyWith(13, Neg(-1)),
       {"JOB_REPLY.job.cancelled"}},
      {"job_reply result int", Decode<JobReply>, JobReplyWith(14, U(0)), {"JOB_REPLY.job.result"}},
      {"job_reply failures map",
       Decode<JobReply>,
       JobReplyWith(16, Map(0)),
       {"JOB_REPLY.job.failures", "expected array"}},
      {"job_reply failure not array",
       Decode<JobReply>,
       JobReplyWith(16, Arr(1) + U(1)),
       {"JOB_REPLY.job.failures[0]", "expected array"}},
      {"job_reply failure short",
       Decode<JobReply>,
       JobReplyWith(16, Arr(1) + Body({U(1), U(2), U(3)})),
       {"JOB_REPLY.job.failures[0]", "expected at least 4 fields, got 3"}},
      {"job_reply failure part too big",
       Decode<JobReply>,
       FailureWith(0, too_big_u32),
       {"JOB_REPLY.job.failures[0].part", "out of range"}},
      {"job_reply failure task_id str",
       Decode<JobReply>,
       FailureWith(1, S("11")),
       {"JOB_REPLY.job.failures[0].task_id"}},
      {"job_reply failure state unknown",
       Decode<JobReply>,
       FailureWith(2, U(7)),
       {"JOB_REPLY.job.failures[0].state", "unknown value 7"}},
      {"job_reply failure error int",
       Decode<JobReply>,
       FailureWith(3, U(1)),
       {"JOB_REPLY.job.failures[0].error", "expected str"}},
      {"job_reply submitted str",
       Decode<JobReply>,
       JobReplyWith(17, S("now")),
       {"JOB_REPLY.job.submitted_us"}},
      {"job_reply priority too big",
       Decode<JobReply>,
       JobReplyWith(19, U(256)),
       {"JOB_REPLY.job.priority", "out of range"}},
      {"job_reply timeout str",
       Decode<JobReply>,
       JobReplyWith(22, S("1s")),
       {"JOB_REPLY.job.timeout_ms"}},
      {"job_reply requirement int",
       Decode<JobReply>,
       JobReplyWith(23, Arr(1) + U(1)),
       {"JOB_REPLY.job.requirements[0]"}},
      {"job_info short",
       Decode<JobInfo>,
       Body({U(1), S("echo"), S("lines:1")}),
       {"JOB_INFO", "expected at least 24 fields, got 3"}},
      {"job_info aggregate int", Decode<JobInfo>, JobInfoWith(3, U(1)), {"JOB_INFO.aggregate"}},
      {"job_info state unknown",
       Decode<JobInfo>,
       JobInfoWith(5, U(200)),
       {"JOB_INFO.state", "unknown value 200"}},
      {"job_info failure state unknown",
       Decode<JobInfo>,
       JobInfoWith(16, Arr(1) + Body({U(1), U(2), U(9), S("")})),
       {"JOB_INFO.failures[0].state", "unknown value 9"}},
      {"job_info key bin", Decode<JobInfo>, JobInfoWith(20, B("k")), {"JOB_INFO.key"}},
      {"list after_id str", Decode<List>, ListWith(1, S("0")), {"LIST.after_id"}},
      {"list limit too big",
       Decode<List>,
       ListWith(2, too_big_u32),
       {"LIST.limit", "out of range"}},
      {"list state unknown", Decode<List>, ListWith(3, U(7)), {"LIST.state", "unknown value 7"}},
      {"list state str", Decode<List>, ListWith(3, S("queued")), {"LIST.state", "unsigned"}},
      {"list type bin", Decode<List>, ListWith(4, B("echo")), {"LIST.type", "expected str"}},
      {"list key int", Decode<List>, ListWith(5, U(1)), {"LIST.key"}},
      {"list job_id negative", Decode<List>, ListWith(6, Neg(-1)), {"LIST.job_id"}},
      {"list short",
       Decode<List>,
       Body({U(1), U(0), U(100), kNil, S(""), S("")}),
       {"LIST", "expected at least 7 fields, got 6"}},
      {"list_reply tasks map",
       Decode<ListReply>,
       ListReplyWith(1, Map(0)),
       {"LIST_REPLY.tasks", "expected array"}},
      {"list_reply task short",
       Decode<ListReply>,
       ListReplyWith(1, Arr(1) + Body({U(1), S("echo")})),
       {"LIST_REPLY.tasks[0]", "expected at least 16 fields, got 2"}},
      {"list_reply task state unknown",
       Decode<ListReply>,
       ListReplyWith(1, Arr(1) + InfoWith(2, U(7))),
       {"LIST_REPLY.tasks[0].state", "unknown value 7"}},
      {"list_reply task part str",
       Decode<ListReply>,
       ListReplyWith(1, Arr(1) + InfoWith(21, S("1"))),
       {"LIST_REPLY.tasks[0].part"}},
      {"list_reply more nil", Decode<ListReply>, ListReplyWith(2, kNil), {"LIST_REPLY.more"}},
      {"list_reply next_after_id bool",
       Decode<ListReply>,
       ListReplyWith(3, kTrue),
       {"LIST_REPLY.next_after_id"}},
  };
}

TEST(Codec, RejectsWrongFieldTypesNamingTheField) {
  for (const WrongField& c : WrongFields()) {
    SCOPED_TRACE(c.name);
    const Status st = c.decode(c.body);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    for (const auto& part : c.expect) EXPECT_THAT(st.message(), HasSubstr(part));
  }
}

// codec.cc promises paths such as "TASKS.tasks[3].type". Elements of plain lists (strings,
// ids, refs) are named as "HELLO[1].handlers" or "ACK[1].attempt" instead, and for a worker's
// handlers in WORKERS_REPLY the handler's index replaces the worker's.
TEST(Codec, NamesElementsOfNestedListsByTheirPath) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {Decode<Hello>(HelloWith(2, Arr(2) + S("echo") + U(1))).message(), "HELLO.handlers[1]"},
      {Decode<Ack>(Body({Arr(2) + Arr(2) + U(1) + U(1) + Arr(2) + U(2) + S("x")})).message(),
       "ACK.refs[1].attempt"},
      {Decode<SubmitReply>(Body({U(1), Arr(2) + U(1) + S("x")})).message(), "SUBMIT_REPLY.ids[1]"},
      {Decode<Get>(Body({U(1), Arr(2) + U(1) + S("x"), kFalse})).message(), "GET.ids[1]"},
      {Decode<WorkersReply>(
           Body({U(1), Arr(2) + WorkerBody(0, S("w")) + WorkerBody(3, Arr(1) + U(7))}))
           .message(),
       "WORKERS_REPLY.workers[1].handlers[0]"},
      {Decode<CancelTasks>(Body({Arr(2) + Arr(2) + U(1) + U(1) + Arr(2) + U(2) + S("x")}))
           .message(),
       "CANCEL_TASKS.refs[1].attempt"},
      {Decode<Submit>(Body({U(1), Arr(2) + Body(BaseSpec()) +
                                      Body({S("e"), B(""), S(""), U(5), U(0), U(0), S(""), U(0),
                                            I(0), U(0), Arr(2) + S("a") + U(1)})}))
           .message(),
       "SUBMIT.tasks[1].requirements[1]"},
      {Decode<ListReply>(ListReplyWith(1, Arr(2) + InfoWith(0, U(1)) + InfoWith(19, Arr(1) + U(1))))
           .message(),
       "LIST_REPLY.tasks[1].requirements[0]"},
      {Decode<JobReply>(JobReplyWith(16, Arr(2) + Body({U(1), U(2), U(3), S("")}) +
                                             Body({U(1), U(2), S("failed"), S("")})))
           .message(),
       "JOB_REPLY.job.failures[1].state"},
  };
  for (const auto& [message, path] : cases) EXPECT_THAT(message, HasSubstr(path));
}

TEST(Codec, TheBaseBodiesOfTheWrongFieldCasesAreValid) {
  // Guards the table above: each case must fail because of its one substituted field.
  EXPECT_TRUE(Decode<Hello>(HelloWith(0, S("w"))).ok());
  EXPECT_TRUE(Decode<Tasks>(TaskWith(0, U(1))).ok());
  EXPECT_TRUE(Decode<Results>(ResultWith(0, U(1))).ok());
  EXPECT_TRUE(Decode<Submit>(SpecWith(0, S("echo"))).ok());
  EXPECT_TRUE(Decode<TaskInfo>(InfoWith(0, U(1))).ok());
  EXPECT_TRUE(Decode<GetReply>(Body({U(1), Arr(1) + InfoWith(0, U(1))})).ok());
  EXPECT_TRUE(Decode<WorkersReply>(WorkerWith(0, S("w"))).ok());
  EXPECT_TRUE(Decode<Welcome>(Body({U(1), U(1), U(1), U(1), U(1)})).ok());
  EXPECT_TRUE(Decode<StatsReply>(Body({U(1), Map(1) + S("a") + U(1)})).ok());
  EXPECT_TRUE(Decode<Ack>(Body({Arr(1) + Arr(2) + U(1) + U(1)})).ok());
  EXPECT_TRUE(Decode<CancelTasks>(Body({Arr(1) + Arr(2) + U(1) + U(1)})).ok());
  EXPECT_TRUE(Decode<JobSubmit>(JobSubmitWith(1, S("lines:1"))).ok());
  EXPECT_TRUE(Decode<JobSubmitReply>(Body({U(1), U(2), U(3), U(4)})).ok());
  EXPECT_TRUE(Decode<JobGet>(Body({U(1), U(2), kTrue})).ok());
  EXPECT_TRUE(Decode<JobCancel>(Body({U(1), U(2)})).ok());
  EXPECT_TRUE(Decode<JobReply>(JobReplyWith(0, U(1))).ok());
  EXPECT_TRUE(Decode<JobReply>(FailureWith(0, U(1))).ok());
  EXPECT_TRUE(Decode<JobInfo>(JobInfoWith(0, U(1))).ok());
  EXPECT_TRUE(Decode<List>(ListWith(0, U(1))).ok());
  EXPECT_TRUE(Decode<List>(ListWith(3, U(6))).ok());
  EXPECT_TRUE(Decode<ListReply>(ListReplyWith(0, U(1))).ok());
  EXPECT_TRUE(Decode<ListReply>(ListReplyWith(1, Arr(1) + InfoWith(21, U(0xffffffffu)))).ok());
}

// ---------------------------------------------------------------- hostile bodies

struct Decoded {
  Status status;
  size_t largest_alloc = 0;
};

template <typename M>
Decoded DecodeMeasured(std::string_view body) {
  M m;
  yard_codec_test_alloc::largest.store(0);
  yard_codec_test_alloc::tracking.store(true);
  Status st = DecodeBody(body, &m);
  yard_codec_test_alloc::tracking.store(false);
  return {std::move(st), yard_codec_test_alloc::largest.load()};
}

// A few bytes must never make the decoder reserve memory for what they merely claim.
constexpr size_t kSmallAllocation = 64 * 1024;

template <typename M>
void ExpectRejectedCheaply(const std::string& body) {
  const Decoded d = DecodeMeasured<M>(body);
  EXPECT_FALSE(d.status.ok());
  EXPECT_EQ(d.status.code(), StatusCode::kInvalidArgument);
  // Had the decoder tried to allocate what the body claims, it would have failed with
  // bad_alloc (or succeeded, worse) rather than refusing the claim.
  EXPECT_THAT(d.status.message(), Not(HasSubstr("too large to decode")));
  if (YARD_TRACK_MALLOC) {
    EXPECT_LT(d.largest_alloc, kSmallAllocation) << "largest single allocation while decoding";
  }
}

TEST(Codec, RejectsHugeClaimsWithoutAllocatingThem) {
  const std::vector<std::string> claims = {
      Unhex("dd ff ff ff ff"),     // array32 of 4G elements
      Unhex("db ff ff ff ff"),     // str32 of 4 GB
      Unhex("c6 ff ff ff ff"),     // bin32 of 4 GB
      Unhex("df ff ff ff ff"),     // map32 of 4G pairs
      Unhex("c9 ff ff ff ff 01"),  // ext32 of 4 GB
      Unhex("dc ff ff"),           // array16 of 65535 elements
      Unhex("de ff ff"),           // map16
  };
  for (const std::string& claim : claims) {
    SCOPED_TRACE(::testing::PrintToString(claim));
    // On its own, as a field, and as a nested element.
    ExpectRejectedCheaply<Hello>(claim);
    ExpectRejectedCheaply<Heartbeat>(claim);
    ExpectRejectedCheaply<Submit>(Arr(2) + U(1) + claim);
    ExpectRejectedCheaply<Tasks>(Arr(1) + Arr(1) + Arr(5) + U(1) + U(1) + S("t") + claim);
    ExpectRejectedCheaply<StatsReply>(Arr(2) + U(1) + claim);
    ExpectRejectedCheaply<GetReply>(Arr(2) + U(1) + Arr(1) + claim);
    ExpectRejectedCheaply<CancelTasks>(Arr(1) + claim);
    ExpectRejectedCheaply<JobSubmit>(Arr(2) + U(1) + Arr(4) + claim);
    ExpectRejectedCheaply<JobReply>(Arr(2) + U(1) + claim);
    ExpectRejectedCheaply<ListReply>(Arr(4) + U(1) + Arr(1) + claim);
    ExpectRejectedCheaply<Submit>(Arr(2) + U(1) + Arr(1) + Arr(11) + S("t") + B("") + S("") + U(5) +
                                  U(0) + U(0) + S("") + U(0) + U(0) + U(0) + claim);
    // Followed by plenty of bytes that still fall far short of the claim.
    ExpectRejectedCheaply<Tasks>(Arr(1) + claim + std::string(4096, '\0'));
  }
}

TEST(Codec, TrackingAllocationsWorks) {
  if (!YARD_TRACK_MALLOC) GTEST_SKIP() << "malloc is not interposed in this build";
  // A legitimate 100 KB payload is copied: the probe must see it.
  Tasks t{{{1, 1, "echo", std::string(100 * 1024, 'x'), 1}}};
  const Decoded d = DecodeMeasured<Tasks>(EncodeBody(t));
  ASSERT_TRUE(d.status.ok()) << d.status.ToString();
  EXPECT_GE(d.largest_alloc, 100u * 1024);
}

TEST(Codec, RejectsDeepNesting) {
  std::string body(100, static_cast<char>(0x91));
  body += kNil;
  for (const auto& st : {Decode<Hello>(body), Decode<Tasks>(body), Decode<GetReply>(body),
                         Decode<Heartbeat>(body)}) {
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(st.message(), HasSubstr("nesting too deep"));
  }
  // Deep nesting inside an otherwise plausible message.
  std::string nested = Arr(2) + U(1) + std::string(50, static_cast<char>(0x91)) + Arr(0);
  EXPECT_FALSE(Decode<Submit>(nested).ok());
}

TEST(Codec, RejectsGarbage) {
  for (const std::string& body :
       {Unhex("c1"), Unhex("ff ff ff ff"), Unhex("91 c1"), std::string("YD\x01\x01", 4)}) {
    const Status st = Decode<Hello>(body);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << ::testing::PrintToString(body);
  }
}

// ---------------------------------------------------------------- header

TEST(CodecHeader, EncodesMagicVersionAndCommand) {
  EXPECT_EQ(EncodeHeader(Command::kHello), std::string("YD\x01\x01", 4));
  EXPECT_EQ(EncodeHeader(Command::kError), std::string("YD\x01\x2f", 4));
  EXPECT_EQ(EncodeHeader(Command::kStatsReply).size(), kHeaderSize);
}

TEST(CodecHeader, AcceptsEveryKnownCommand) {
  int known = 0;
  for (int c = 0; c < 256; ++c) {
    if (!IsKnownCommand(static_cast<uint8_t>(c))) continue;
    ++known;
    Command got{};
    EXPECT_EQ(CheckHeader(EncodeHeader(static_cast<Command>(c)), &got), HeaderCheck::kOk) << c;
    EXPECT_EQ(static_cast<int>(got), c);
    EXPECT_STRNE(CommandName(got), "UNKNOWN") << c;
  }
  EXPECT_EQ(known, 34);  // one per Command enumerator
}

TEST(CodecHeader, NamesTheJobListAndCancelTasksCommands) {
  const std::vector<std::pair<Command, std::string>> names = {
      {Command::kJobSubmit, "JOB_SUBMIT"}, {Command::kJobSubmitReply, "JOB_SUBMIT_REPLY"},
      {Command::kJobGet, "JOB_GET"},       {Command::kJobReply, "JOB_REPLY"},
      {Command::kJobCancel, "JOB_CANCEL"}, {Command::kList, "LIST"},
      {Command::kListReply, "LIST_REPLY"}, {Command::kCancelTasks, "CANCEL_TASKS"},
  };
  for (const auto& [command, name] : names) {
    EXPECT_TRUE(IsKnownCommand(static_cast<uint8_t>(command))) << name;
    EXPECT_EQ(CommandName(command), name);
  }
}

// CANCEL_TASKS is optional (>= 0x80) for a receiver that does not know it, but this build
// knows it: its header checks out like any required command's.
TEST(CodecHeader, KnownOptionalCommandsCheckOk) {
  Command cmd{};
  EXPECT_EQ(CheckHeader(EncodeHeader(Command::kCancelTasks), &cmd), HeaderCheck::kOk);
  EXPECT_EQ(cmd, Command::kCancelTasks);
  EXPECT_EQ(EncodeHeader(Command::kCancelTasks), std::string("YD\x01\x80", 4));
}

TEST(CodecNames, NamesEveryOutcomeStatePolicyAndJobState) {
  EXPECT_STREQ(OutcomeName(Outcome::kReleased), "released");
  EXPECT_STREQ(OutcomeName(Outcome::kCancelled), "cancelled");
  EXPECT_STREQ(OutcomeName(static_cast<Outcome>(5)), "unknown");
  EXPECT_STREQ(TaskStateName(TaskState::kDead), "dead");
  EXPECT_STREQ(TaskStateName(TaskState::kExpired), "expired");
  EXPECT_STREQ(TaskStateName(static_cast<TaskState>(7)), "unknown");
  EXPECT_STREQ(JobPolicyName(JobPolicy::kFailFast), "fail-fast");
  EXPECT_STREQ(JobPolicyName(JobPolicy::kContinue), "continue");
  EXPECT_STREQ(JobPolicyName(static_cast<JobPolicy>(2)), "unknown");
  const std::vector<std::string> states = {"running", "reducing", "succeeded",
                                           "partial", "failed",   "cancelled"};
  for (size_t s = 0; s < states.size(); ++s) {
    EXPECT_EQ(JobStateName(static_cast<JobState>(s)), states[s]);
  }
  EXPECT_STREQ(JobStateName(static_cast<JobState>(6)), "unknown");
}

TEST(CodecHeader, RejectsMalformedFrames) {
  Command cmd{};
  EXPECT_EQ(CheckHeader("", &cmd), HeaderCheck::kMalformed);
  EXPECT_EQ(CheckHeader(std::string("YD\x01", 3), &cmd), HeaderCheck::kMalformed);
  EXPECT_EQ(CheckHeader(std::string("YD\x01\x01\x00", 5), &cmd), HeaderCheck::kMalformed);
  EXPECT_EQ(CheckHeader(std::string("XD\x01\x01", 4), &cmd), HeaderCheck::kMalformed);
  EXPECT_EQ(CheckHeader(std::string("YE\x01\x01", 4), &cmd), HeaderCheck::kMalformed);
  EXPECT_EQ(CheckHeader(std::string("yd\x01\x01", 4), &cmd), HeaderCheck::kMalformed);
  // A body where a header belongs.
  EXPECT_EQ(CheckHeader(EncodeBody(Credit{5}), &cmd), HeaderCheck::kMalformed);
}

TEST(CodecHeader, RejectsOtherVersions) {
  Command cmd{};
  EXPECT_EQ(CheckHeader(std::string("YD\x00\x01", 4), &cmd), HeaderCheck::kBadVersion);
  EXPECT_EQ(CheckHeader(std::string("YD\x02\x01", 4), &cmd), HeaderCheck::kBadVersion);
  EXPECT_EQ(CheckHeader(std::string("YD\xff\x01", 4), &cmd), HeaderCheck::kBadVersion);
}

TEST(CodecHeader, UnknownCommandsBelow0x80AreRequired) {
  Command cmd{};
  for (int c : {0x00, 0x0a, 0x1f, 0x25, 0x2c, 0x2d, 0x2e, 0x35, 0x3f, 0x45, 0x48, 0x7f}) {
    const std::string h{'Y', 'D', '\x01', static_cast<char>(c)};
    EXPECT_EQ(CheckHeader(h, &cmd), HeaderCheck::kUnknownRequired) << c;
  }
}

TEST(CodecHeader, UnknownCommandsFrom0x80AreOptional) {
  Command cmd{};
  for (int c : {0x81, 0x82, 0xc0, 0xfe, 0xff}) {
    const std::string h{'Y', 'D', '\x01', static_cast<char>(c)};
    EXPECT_EQ(CheckHeader(h, &cmd), HeaderCheck::kUnknownOptional) << c;
  }
}

TEST(CodecHeader, CommandOfMatchesTheMessage) {
  EXPECT_EQ(CommandOf<Hello>::value, Command::kHello);
  EXPECT_EQ(CommandOf<Results>::value, Command::kResults);
  EXPECT_EQ(CommandOf<Submit>::value, Command::kSubmit);
  EXPECT_EQ(CommandOf<GetReply>::value, Command::kGetReply);
  EXPECT_EQ(CommandOf<Error>::value, Command::kError);
  EXPECT_EQ(CommandOf<CancelTasks>::value, Command::kCancelTasks);
  EXPECT_EQ(CommandOf<JobSubmit>::value, Command::kJobSubmit);
  EXPECT_EQ(CommandOf<JobSubmitReply>::value, Command::kJobSubmitReply);
  EXPECT_EQ(CommandOf<JobGet>::value, Command::kJobGet);
  EXPECT_EQ(CommandOf<JobCancel>::value, Command::kJobCancel);
  EXPECT_EQ(CommandOf<JobReply>::value, Command::kJobReply);
  EXPECT_EQ(CommandOf<List>::value, Command::kList);
  EXPECT_EQ(CommandOf<ListReply>::value, Command::kListReply);
}

}  // namespace
}  // namespace yard::protocol
