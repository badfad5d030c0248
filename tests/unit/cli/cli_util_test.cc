#include "cli/cli_util.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace yard::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

int64_t Wall(const std::string& text) {
  auto t = ParseWallTime(text);
  EXPECT_TRUE(t.ok()) << text << ": " << t.status().ToString();
  return t.ok() ? *t : -1;
}

TEST(ParseWallTime, AcceptsUnixSeconds) {
  EXPECT_EQ(Wall("1764064800"), 1764064800 * kSeconds);
  EXPECT_EQ(Wall("1764064800.25"), 1764064800 * kSeconds + 250 * kMillis);
  EXPECT_EQ(Wall("1764064800.000001"), 1764064800 * kSeconds + 1);
  EXPECT_EQ(Wall("1"), kSeconds);
}

TEST(ParseWallTime, AcceptsIsoWithZone) {
  // 2026-11-25T10:00:00Z is 1795600800 (20,782 days after the epoch, plus 10 hours).
  EXPECT_EQ(Wall("2026-11-25T10:00:00Z"), 1795600800 * kSeconds);
  EXPECT_EQ(Wall("2026-11-25T10:00Z"), 1795600800 * kSeconds);
  EXPECT_EQ(Wall("2026-11-25t10:00:00z"), 1795600800 * kSeconds);
  EXPECT_EQ(Wall("2026-11-25 10:00:00Z"), 1795600800 * kSeconds);
  EXPECT_EQ(Wall("2026-11-25T11:00:00+01:00"), 1795600800 * kSeconds);
  EXPECT_EQ(Wall("2026-11-25T11:00:00+0100"), 1795600800 * kSeconds);
  EXPECT_EQ(Wall("2026-11-25T11:00:00+01"), 1795600800 * kSeconds);
  EXPECT_EQ(Wall("2026-11-25T05:30:00-04:30"), 1795600800 * kSeconds);
  EXPECT_EQ(Wall("2026-11-25T10:00:00.5Z"), 1795600800 * kSeconds + 500 * kMillis);
  EXPECT_EQ(Wall("1970-01-01T00:00:01Z"), kSeconds);
}

TEST(ParseWallTime, KnowsLeapYears) {
  EXPECT_EQ(Wall("2024-02-29T00:00:00Z"), 1709164800 * kSeconds);
  EXPECT_EQ(Wall("2000-02-29T00:00:00Z"), 951782400 * kSeconds);
  EXPECT_FALSE(ParseWallTime("2025-02-29T00:00:00Z").ok());
  EXPECT_FALSE(ParseWallTime("2100-02-29T00:00:00Z").ok());
}

TEST(ParseWallTime, AgreesWithFormatWall) {
  for (int64_t us : {int64_t{1} * kSeconds, 951782400 * kSeconds + 123 * kMillis,
                     1795600800 * kSeconds, 4102444799 * kSeconds}) {
    EXPECT_EQ(Wall(FormatWall(us)), us) << FormatWall(us);
  }
}

TEST(ParseWallTime, RejectsMalformedTimes) {
  for (const char* bad : {"",
                          "soon",
                          "2026-11-25",
                          "2026-11-25T10:00:00",
                          "2026-11-25T10Z",
                          "2026-13-01T00:00:00Z",
                          "2026-11-31T00:00:00Z",
                          "2026-11-25T24:00:00Z",
                          "2026-11-25T10:60:00Z",
                          "2026-11-25T10:00:60Z",
                          "2026-11-25T10:00:00ZZ",
                          "2026-11-25T10:00:00+25:00",
                          "26-11-25T10:00:00Z",
                          "1969-12-31T23:59:59Z",
                          "1.",
                          ".5",
                          "12,3,4",
                          "2026-11-25T10:00:00.Z",
                          "-5",
                          "+5"}) {
    auto t = ParseWallTime(bad);
    ASSERT_FALSE(t.ok()) << "'" << bad << "' parsed as " << *t;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ParseWallTime, ExplainsTheAcceptedForms) {
  auto t = ParseWallTime("tomorrow");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("'tomorrow'"));
  EXPECT_THAT(t.status().message(), HasSubstr("Unix seconds"));
  EXPECT_THAT(t.status().message(), HasSubstr("2026-11-25T10:00:00Z"));
}

TEST(ParseWallTime, RejectsTheEpochItselfAndMilliseconds) {
  EXPECT_FALSE(ParseWallTime("0").ok());
  EXPECT_FALSE(ParseWallTime("1970-01-01T00:00:00Z").ok());
  auto ms = ParseWallTime("1764064800000");
  ASSERT_FALSE(ms.ok());
  EXPECT_THAT(ms.status().message(), HasSubstr("not milliseconds"));
  EXPECT_FALSE(ParseWallTime("99999999999999999999999").ok());
}

TEST(ParseTaskState, KnowsEveryStateAndListsThemWhenWrong) {
  EXPECT_EQ(TaskStateNames(), "queued dispatched succeeded failed cancelled dead expired");
  for (auto s : {protocol::TaskState::kQueued, protocol::TaskState::kDispatched,
                 protocol::TaskState::kSucceeded, protocol::TaskState::kFailed,
                 protocol::TaskState::kCancelled, protocol::TaskState::kDead,
                 protocol::TaskState::kExpired}) {
    auto got = ParseTaskState(protocol::TaskStateName(s));
    ASSERT_TRUE(got.ok()) << protocol::TaskStateName(s);
    EXPECT_EQ(*got, s);
  }
  auto bad = ParseTaskState("running");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("'running'"));
  EXPECT_THAT(bad.status().message(), HasSubstr(TaskStateNames()));
  EXPECT_FALSE(ParseTaskState("Queued").ok());
}

TEST(ParseJobPolicy, AcceptsTheTwoPolicies) {
  ASSERT_TRUE(ParseJobPolicy("fail-fast").ok());
  EXPECT_EQ(*ParseJobPolicy("fail-fast"), protocol::JobPolicy::kFailFast);
  EXPECT_EQ(*ParseJobPolicy("continue"), protocol::JobPolicy::kContinue);
  auto bad = ParseJobPolicy("failfast");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("fail-fast or continue"));
}

TEST(ApplyTaskFlags, LeavesDefaultsWhenNothingIsGiven) {
  protocol::TaskSpec spec;
  ASSERT_TRUE(ApplyTaskFlags({}, &spec).ok());
  EXPECT_EQ(spec.timeout_ms, 0u);
  EXPECT_EQ(spec.delay_ms, 0u);
  EXPECT_EQ(spec.not_before_us, 0);
  EXPECT_EQ(spec.deadline_ms, 0u);
  EXPECT_TRUE(spec.requirements.empty());
}

TEST(ApplyTaskFlags, SetsEverySchedulingField) {
  TaskFlags f;
  f.timeout = "30s";
  f.delay = "5m";
  f.not_before = "2026-11-25T10:00:00Z";
  f.deadline = "1h";
  f.requirements = {"gpu", "eu"};
  protocol::TaskSpec spec;
  ASSERT_TRUE(ApplyTaskFlags(f, &spec).ok());
  EXPECT_EQ(spec.timeout_ms, 30000u);
  EXPECT_EQ(spec.delay_ms, 300000u);
  EXPECT_EQ(spec.not_before_us, 1795600800 * kSeconds);
  EXPECT_EQ(spec.deadline_ms, 3600000u);
  EXPECT_EQ(spec.requirements, (std::vector<std::string>{"gpu", "eu"}));
}

TEST(ApplyTaskFlags, RoundsSubMillisecondDurationsUp) {
  TaskFlags f;
  f.delay = "1500us";
  f.deadline = "1us";
  protocol::TaskSpec spec;
  ASSERT_TRUE(ApplyTaskFlags(f, &spec).ok());
  EXPECT_EQ(spec.delay_ms, 2u);
  EXPECT_EQ(spec.deadline_ms, 1u);
}

Status Apply(TaskFlags f) {
  protocol::TaskSpec spec;
  return ApplyTaskFlags(f, &spec);
}

TEST(ApplyTaskFlags, NamesTheFlagOfABadValue) {
  auto check = [](void (*set)(TaskFlags&), const char* flag) {
    TaskFlags f;
    set(f);
    Status st = Apply(std::move(f));
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << flag;
    EXPECT_THAT(st.message(), StartsWith(flag));
  };
  check([](TaskFlags& f) { f.timeout = "soon"; }, "--timeout");
  check([](TaskFlags& f) { f.timeout = "10us"; }, "--timeout");
  check([](TaskFlags& f) { f.delay = "later"; }, "--delay");
  check([](TaskFlags& f) { f.not_before = "tomorrow"; }, "--not-before");
  check([](TaskFlags& f) { f.deadline = "1x"; }, "--deadline");
  check([](TaskFlags& f) { f.deadline = "0"; }, "--deadline");
  check([](TaskFlags& f) { f.requirements = {"gpu", ""}; }, "--require");
  check([](TaskFlags& f) { f.requirements = {"two words"}; }, "--require");
}

TEST(CellText, CutsLongTextByCharactersAndFlattensLines) {
  EXPECT_EQ(CellText("short", 10), "short");
  EXPECT_EQ(CellText("exactly10!", 10), "exactly10!");
  EXPECT_EQ(CellText("eleven char", 10), "eleven ...");
  EXPECT_EQ(CellText("line one\nline\ttwo", 40), "line one line two");
  EXPECT_EQ(CellText("esc\x1b[31m", 40), "esc [31m");
  // Multi-byte characters count as one and are never split.
  EXPECT_EQ(CellText("\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc", 4), "\xc3\xbc...");
  EXPECT_EQ(CellText("\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc", 4), "\xc3\xbc\xc3\xbc\xc3\xbc\xc3\xbc");
  EXPECT_EQ(CellText("abcdef", 2), "ab");
}

TEST(FormatWall, PrintsUtcWithMilliseconds) {
  EXPECT_EQ(FormatWall(0), "-");
  EXPECT_EQ(FormatWall(1795600800 * kSeconds + 42 * kMillis), "2026-11-25T10:00:00.042Z");
}

TEST(FormatSpan, PicksTheTwoLargestUnits) {
  EXPECT_EQ(FormatSpan(0), "0ms");
  EXPECT_EQ(FormatSpan(850 * kMillis), "850ms");
  EXPECT_EQ(FormatSpan(12 * kSeconds + 900 * kMillis), "12s");
  EXPECT_EQ(FormatSpan(245 * kSeconds), "4m05s");
  EXPECT_EQ(FormatSpan((2 * 3600 + 7 * 60 + 30) * kSeconds), "2h07m");
  EXPECT_EQ(FormatSpan((3 * 86400 + 4 * 3600 + 59 * 60) * kSeconds), "3d04h");
  EXPECT_EQ(FormatSpan(-5), "0ms");
}

protocol::JobInfo Job(uint32_t parts, uint32_t succeeded, uint32_t failed, uint32_t cancelled,
                      protocol::JobState state = protocol::JobState::kRunning) {
  protocol::JobInfo j;
  j.parts = parts;
  j.succeeded = succeeded;
  j.failed = failed;
  j.cancelled = cancelled;
  j.state = state;
  return j;
}

TEST(JobProgress, CountsEveryEndedPartAsDone) {
  auto p = ProgressOf(Job(100, 40, 2, 1));
  EXPECT_EQ(p.total, 100u);
  EXPECT_EQ(p.done, 43u);
  EXPECT_EQ(p.failed, 2u);
  EXPECT_EQ(p.cancelled, 1u);
  EXPECT_FALSE(p.reducing);
  EXPECT_TRUE(ProgressOf(Job(3, 3, 0, 0, protocol::JobState::kReducing)).reducing);
  EXPECT_EQ(ProgressOf(Job(3, 5, 0, 0)).done, 3u);  // never past the total
}

TEST(JobProgress, RateAndEtaNeedSomethingToHaveEnded) {
  EXPECT_FALSE(PartRate(0, kSeconds).has_value());
  EXPECT_FALSE(PartRate(10, 0).has_value());
  EXPECT_DOUBLE_EQ(*PartRate(50, 2 * kSeconds), 25.0);

  JobProgress p = ProgressOf(Job(1000, 500, 0, 0));
  EXPECT_FALSE(Eta(p).has_value());
  p.rate = 100.0;
  EXPECT_EQ(*Eta(p), 5 * kSeconds);
  p.rate = 300.0;
  EXPECT_EQ(*Eta(p), 2 * kSeconds);  // rounded up
  p.done = p.total;
  EXPECT_EQ(*Eta(p), 0);
  p.done = 0;
  p.rate = 1e-12;
  EXPECT_FALSE(Eta(p).has_value());  // too far off to mean anything
}

TEST(JobProgress, FormatsBarCountsRateAndEta) {
  JobProgress p = ProgressOf(Job(1000, 409, 3, 0));
  p.rate = 85.2;
  EXPECT_EQ(FormatProgress(p, 20),
            "[########------------] 412/1000  41%  failed 3  85.2/s  ETA 7s");
  EXPECT_EQ(FormatProgress(p, 0), "412/1000  41%  failed 3  85.2/s  ETA 7s");
  p.rate.reset();
  EXPECT_EQ(FormatProgress(p, 0), "412/1000  41%  failed 3  --/s  ETA --");
  p.rate = 1234.0;
  p.failed = 0;
  EXPECT_EQ(FormatProgress(p, 0), "412/1000  41%  1234/s  ETA 1s");
  p.rate = 0.5;
  EXPECT_EQ(FormatProgress(p, 0), "412/1000  41%  0.50/s  ETA 19m36s");
  p.rate = 0.001;
  EXPECT_THAT(FormatProgress(p, 0), HasSubstr("<0.01/s"));
}

TEST(JobProgress, FinishedAndReducingJobsShowNoEta) {
  JobProgress done = ProgressOf(Job(10, 8, 1, 1));
  done.rate = 5.0;
  EXPECT_EQ(FormatProgress(done, 10), "[##########] 10/10  100%  failed 1  cancelled 1");
  JobProgress reducing = ProgressOf(Job(4, 4, 0, 0, protocol::JobState::kReducing));
  EXPECT_EQ(FormatProgress(reducing, 4), "[####] 4/4  100%  reducing");
  EXPECT_EQ(FormatProgress(ProgressOf(Job(0, 0, 0, 0)), 4), "[####] 0/0  100%");
}

TEST(JobProgress, StepsInTenths) {
  EXPECT_EQ(ProgressStep(ProgressOf(Job(1000, 0, 0, 0))), 0);
  EXPECT_EQ(ProgressStep(ProgressOf(Job(1000, 99, 0, 0))), 0);
  EXPECT_EQ(ProgressStep(ProgressOf(Job(1000, 100, 0, 0))), 1);
  EXPECT_EQ(ProgressStep(ProgressOf(Job(1000, 999, 0, 0))), 9);
  EXPECT_EQ(ProgressStep(ProgressOf(Job(1000, 990, 10, 0))), 10);
  EXPECT_EQ(ProgressStep(ProgressOf(Job(3, 1, 0, 0))), 3);
  EXPECT_EQ(ProgressStep(ProgressOf(Job(0, 0, 0, 0))), 10);
}

}  // namespace
}  // namespace yard::cli
