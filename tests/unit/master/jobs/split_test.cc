#include "master/jobs/split.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace yard::jobs {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr size_t kMax = 1000;
constexpr size_t kBig = 1 << 20;

std::vector<std::string> Cut(std::string_view spec, std::string_view payload,
                             size_t max_parts = kMax, size_t max_bytes = kBig) {
  auto s = ParseSplit(spec);
  EXPECT_TRUE(s.ok()) << spec << ": " << s.status().ToString();
  if (!s.ok()) return {};
  auto parts = Split(*s, payload, max_parts, max_bytes);
  EXPECT_TRUE(parts.ok()) << spec << ": " << parts.status().ToString();
  return parts.ok() ? *parts : std::vector<std::string>{};
}

Status CutError(std::string_view spec, std::string_view payload, size_t max_parts = kMax,
                size_t max_bytes = kBig) {
  auto s = ParseSplit(spec);
  if (!s.ok()) return s.status();
  auto parts = Split(*s, payload, max_parts, max_bytes);
  EXPECT_FALSE(parts.ok()) << spec << " split " << payload.substr(0, 40);
  return parts.status();
}

std::string SpecError(std::string_view spec) {
  auto s = ParseSplit(spec);
  EXPECT_FALSE(s.ok()) << spec;
  if (s.ok()) return "";
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << spec;
  return s.status().message();
}

TEST(SplitTest, ParsesEverySplitter) {
  auto bytes = ParseSplit("chunk:bytes=4096");
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->kind, SplitSpec::Kind::kChunkBytes);
  EXPECT_EQ(bytes->n, 4096u);
  EXPECT_EQ(ParseSplit("chunk:parts=7")->kind, SplitSpec::Kind::kChunkParts);
  EXPECT_EQ(ParseSplit("lines:10000000")->n, 10'000'000u);
  EXPECT_EQ(ParseSplit("json-array:3")->kind, SplitSpec::Kind::kJsonArray);
  auto range = ParseSplit("range:-5..20:3");
  ASSERT_TRUE(range.ok());
  EXPECT_EQ(range->kind, SplitSpec::Kind::kRange);
  EXPECT_EQ(range->from, -5);
  EXPECT_EQ(range->to, 20);
  EXPECT_EQ(range->step, 3);
  EXPECT_EQ(ParseSplit("range:1..2")->step, 1);
}

TEST(SplitTest, ChunkBytesCutsEqualPiecesAndAShorterLastOne) {
  EXPECT_THAT(Cut("chunk:bytes=3", "abcdefgh"), ElementsAre("abc", "def", "gh"));
  EXPECT_THAT(Cut("chunk:bytes=4", "abcdefgh"), ElementsAre("abcd", "efgh"));
  EXPECT_THAT(Cut("chunk:bytes=8", "abcdefgh"), ElementsAre("abcdefgh"));
  EXPECT_THAT(Cut("chunk:bytes=100", "ab"), ElementsAre("ab"));
  EXPECT_THAT(Cut("chunk:bytes=1", std::string("a\0b", 3)),
              ElementsAre("a", std::string(1, '\0'), "b"));
}

TEST(SplitTest, ChunkPartsSizesDifferByAtMostOneWithTheEarlierOnesLarger) {
  EXPECT_THAT(Cut("chunk:parts=3", "abcdefgh"), ElementsAre("abc", "def", "gh"));
  EXPECT_THAT(Cut("chunk:parts=4", "abcdefghij"), ElementsAre("abc", "def", "gh", "ij"));
  EXPECT_THAT(Cut("chunk:parts=2", "abcd"), ElementsAre("ab", "cd"));
  EXPECT_THAT(Cut("chunk:parts=1", "abc"), ElementsAre("abc"));
  EXPECT_THAT(Cut("chunk:parts=5", "ab"), ElementsAre("a", "b")) << "one part per byte";
  EXPECT_THAT(Cut("chunk:parts=10000000", "x"), ElementsAre("x"));
}

TEST(SplitTest, LinesKeepTheirNewlinesAndALastLineWithoutOne) {
  EXPECT_THAT(Cut("lines:2", "a\nb\nc\n"), ElementsAre("a\nb\n", "c\n"));
  EXPECT_THAT(Cut("lines:2", "a\nb\nc"), ElementsAre("a\nb\n", "c"));
  EXPECT_THAT(Cut("lines:3", "a\nb\nc\n"), ElementsAre("a\nb\nc\n"));
  EXPECT_THAT(Cut("lines:10", "one line"), ElementsAre("one line"));
  EXPECT_THAT(Cut("lines:1", "\n\n"), ElementsAre("\n", "\n")) << "empty lines are lines";
}

TEST(SplitTest, LinesLeaveCarriageReturnsIntact) {
  EXPECT_THAT(Cut("lines:1", "a\r\nb\r\n"), ElementsAre("a\r\n", "b\r\n"));
  EXPECT_THAT(Cut("lines:1", "a\rb\r\nc"), ElementsAre("a\rb\r\n", "c"))
      << "\\r alone ends nothing";
}

TEST(SplitTest, OneLineOrOneChunkIsOnePart) {
  EXPECT_THAT(Cut("lines:1", "x"), ElementsAre("x"));
  EXPECT_THAT(Cut("chunk:bytes=1", "x"), ElementsAre("x"));
  EXPECT_THAT(Cut("chunk:parts=1", "x"), ElementsAre("x"));
  EXPECT_THAT(Cut("json-array:5", "[1]"), ElementsAre("[1]"));
  EXPECT_THAT(Cut("range:0..0", ""), ElementsAre("0"));
}

// The property the engine relies on: nothing is lost, duplicated or reordered, no part is
// empty, and chunk:parts gives the promised count and sizes.
TEST(SplitTest, JoiningChunksOrLinesGivesThePayloadBack) {
  std::mt19937 rng(7);
  for (int round = 0; round < 400; ++round) {
    std::string payload(1 + rng() % 600, ' ');
    for (char& c : payload) c = "ab\n\r"[rng() % 4];
    const uint64_t n = 1 + rng() % 25;
    for (const std::string& spec :
         {"chunk:bytes=" + std::to_string(n), "chunk:parts=" + std::to_string(n),
          "lines:" + std::to_string(n)}) {
      const std::vector<std::string> parts = Cut(spec, payload);
      std::string joined;
      size_t smallest = SIZE_MAX, largest = 0;
      for (size_t i = 0; i < parts.size(); ++i) {
        const std::string& p = parts[i];
        EXPECT_FALSE(p.empty()) << spec;
        smallest = std::min(smallest, p.size());
        largest = std::max(largest, p.size());
        if (spec.starts_with("chunk:bytes") && i + 1 < parts.size()) {
          EXPECT_EQ(p.size(), n) << spec;
        }
        if (spec.starts_with("chunk:parts") && i > 0) {
          EXPECT_LE(p.size(), parts[i - 1].size()) << spec;
        }
        if (spec.starts_with("lines")) {
          const auto newlines = static_cast<uint64_t>(std::count(p.begin(), p.end(), '\n'));
          if (i + 1 < parts.size()) {
            EXPECT_EQ(newlines, n) << spec;
            EXPECT_EQ(p.back(), '\n') << spec;
          } else {
            EXPECT_LE(newlines, n) << spec;
          }
        }
        joined += p;
      }
      EXPECT_EQ(joined, payload) << spec;
      if (spec.starts_with("chunk:parts")) {
        EXPECT_EQ(parts.size(), std::min<uint64_t>(n, payload.size())) << spec;
        EXPECT_LE(largest - smallest, 1u) << spec;
      }
    }
  }
}

TEST(SplitTest, JsonArrayCutsElementsIntoCompactSmallerArrays) {
  EXPECT_THAT(Cut("json-array:2", R"( [1, {"a": [2, 3]}, "x", null, 5] )"),
              ElementsAre(R"([1,{"a":[2,3]}])", R"(["x",null])", "[5]"));
  EXPECT_THAT(Cut("json-array:10", "[1,2]"), ElementsAre("[1,2]")) << "N larger than the array";
  EXPECT_THAT(Cut("json-array:1", "[[]]"), ElementsAre("[[]]"));
}

TEST(SplitTest, JsonArrayKeepsStringsNumbersAndKeyOrderAsWritten) {
  // Commas, brackets, quotes and spaces inside strings are text, not structure.
  EXPECT_THAT(Cut("json-array:1", R"(["a, b", "[x] {y}", "q\"uote\\", " sp ace "])"),
              ElementsAre(R"(["a, b"])", R"(["[x] {y}"])", R"(["q\"uote\\"])", R"([" sp ace "])"));
  EXPECT_THAT(Cut("json-array:2", R"([{"b": 1, "a": 2}, 12345678901234567890123, 1.50])"),
              ElementsAre(R"([{"b":1,"a":2},12345678901234567890123])", "[1.50]"));
  EXPECT_THAT(Cut("json-array:1", "[\"\\u00e9\", \"\xC3\xA9\"]"),
              ElementsAre("[\"\\u00e9\"]", "[\"\xC3\xA9\"]"));
}

TEST(SplitTest, JsonArrayHandlesDeepNestingWithoutRecursion) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::vector<std::string> parts = Cut("json-array:1", "[" + deep + ",1]");
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0], "[" + deep + "]");
  EXPECT_EQ(parts[1], "[1]");
}

TEST(SplitTest, JsonArrayRefusesWhatIsNotANonEmptyArray) {
  EXPECT_THAT(CutError("json-array:1", "[1,").message(),
              HasSubstr("json-array: the payload is not valid JSON"));
  EXPECT_THAT(CutError("json-array:1", "[1] [2]").message(), HasSubstr("not valid JSON"));
  EXPECT_THAT(CutError("json-array:1", "[\"\xff\"]").message(), HasSubstr("not valid JSON"));
  EXPECT_THAT(CutError("json-array:1", R"({"a":1})").message(), HasSubstr("not a JSON array"));
  EXPECT_THAT(CutError("json-array:1", "\"[1]\"").message(), HasSubstr("not a JSON array"));
  EXPECT_THAT(CutError("json-array:1", " [ ] ").message(), HasSubstr("array is empty"));
}

TEST(SplitTest, RangeGivesOneDecimalIntegerPerPart) {
  EXPECT_THAT(Cut("range:1..4", ""), ElementsAre("1", "2", "3", "4"));
  EXPECT_THAT(Cut("range:0..10:4", ""), ElementsAre("0", "4", "8")) << "STEP does not divide";
  EXPECT_THAT(Cut("range:0..12:4", ""), ElementsAre("0", "4", "8", "12")) << "B is included";
  EXPECT_THAT(Cut("range:-2..2:2", ""), ElementsAre("-2", "0", "2"));
  EXPECT_THAT(Cut("range:7..7", ""), ElementsAre("7"));
  EXPECT_THAT(Cut("range:0..10:9223372036854775807", ""), ElementsAre("0"));
}

TEST(SplitTest, RangeReachesTheEndsOfInt64WithoutOverflow) {
  EXPECT_THAT(Cut("range:9223372036854775806..9223372036854775807", ""),
              ElementsAre("9223372036854775806", "9223372036854775807"));
  EXPECT_THAT(Cut("range:-9223372036854775808..9223372036854775807:9223372036854775807", ""),
              ElementsAre("-9223372036854775808", "-1", "9223372036854775806"));
}

TEST(SplitTest, RangeWantsAnEmptyPayload) {
  EXPECT_EQ(CutError("range:1..3", "x").message(),
            "range: the payload must be empty; the parts are the integers 1..3");
}

TEST(SplitTest, AnEmptyPayloadIsRefusedNamingTheSplitter) {
  for (const char* spec : {"chunk:bytes=1", "chunk:parts=2", "lines:1", "json-array:1"}) {
    const Status st = CutError(spec, "");
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << spec;
    EXPECT_THAT(st.message(), HasSubstr("payload is empty")) << spec;
  }
  EXPECT_THAT(CutError("lines:1", "").message(), HasSubstr("lines:"));
}

TEST(SplitTest, TooManyPartsIsRefusedBeforeTheyAreBuilt) {
  EXPECT_THAT(CutError("lines:1", "a\nb\nc", 2).message(),
              HasSubstr("lines: the job would have 3 parts, over the limit of 2"));
  EXPECT_THAT(CutError("chunk:bytes=1", "abc", 2).message(), HasSubstr("over the limit of 2"));
  EXPECT_THAT(CutError("chunk:parts=3", "abc", 2).message(), HasSubstr("3 parts"));
  EXPECT_THAT(CutError("json-array:1", "[1,2,3]", 2).message(), HasSubstr("3 parts"));
  EXPECT_THAT(CutError("range:1..3", "", 2).message(), HasSubstr("3 parts"));
  EXPECT_EQ(Cut("lines:1", "a\nb\n", 2).size(), 2u) << "exactly the limit is fine";
}

TEST(SplitTest, AHugeRangeFailsFastWithoutBuildingParts) {
  // Building 9e18 strings would exhaust memory: the count is checked first.
  EXPECT_THAT(CutError("range:0..9000000000000000000", "", 100000).message(),
              HasSubstr("9000000000000000001 parts, over the limit of 100000"));
  EXPECT_THAT(CutError("range:-9223372036854775808..9223372036854775807", "", 10).message(),
              HasSubstr("18446744073709551616 parts"));
  EXPECT_THAT(CutError("range:-9223372036854775808..9223372036854775807", "", SIZE_MAX).message(),
              HasSubstr("18446744073709551616 parts"));
}

TEST(SplitTest, APartOverTheSizeLimitIsRefused) {
  EXPECT_EQ(CutError("lines:1", "short\nthis one is long\n", kMax, 8).message(),
            "lines: part 1 is 17 bytes, over the limit of 8 bytes per part (--max-payload-bytes)");
  EXPECT_THAT(CutError("chunk:bytes=5", "abcdefghij", kMax, 4).message(),
              HasSubstr("chunk:bytes: part 0 is 5 bytes"));
  EXPECT_THAT(CutError("chunk:parts=2", "abcde", kMax, 2).message(), HasSubstr("part 0 is 3"));
  EXPECT_THAT(CutError("json-array:2", "[1, 2, 3]", kMax, 4).message(),
              HasSubstr("json-array: part 0 is 5 bytes"));
  EXPECT_THAT(CutError("range:9..10", "", kMax, 1).message(), HasSubstr("range: part 1 is 2"));
  EXPECT_EQ(Cut("chunk:bytes=4", "abcdefgh", kMax, 4).size(), 2u) << "exactly the limit is fine";
}

TEST(SplitTest, UnknownSplittersListTheKnownOnes) {
  EXPECT_EQ(SpecError("words:3"),
            "unknown splitter 'words': use chunk:bytes=N, chunk:parts=N, lines:N, json-array:N "
            "or range:A..B[:STEP]");
  EXPECT_THAT(SpecError("bogus"), HasSubstr("unknown splitter 'bogus'"));
  EXPECT_THAT(SpecError(""), HasSubstr("unknown splitter ''"));
  EXPECT_THAT(SpecError("LINES:3"), HasSubstr("unknown splitter"));
  EXPECT_THAT(SpecError(" lines:3"), HasSubstr("unknown splitter"));
  EXPECT_THAT(SpecError(std::string("x\n\xff:1")), HasSubstr("'x\\x0a\\xff'"))
      << "bytes are escaped in messages";
}

TEST(SplitTest, NMustBeAWholeNumberInRange) {
  EXPECT_THAT(SpecError("lines"), HasSubstr("missing its argument"));
  for (const char* bad :
       {"lines:0", "lines:", "lines:x", "lines:3x", "lines:-1", "lines:+3", "lines: 3", "lines:3 ",
        "lines:10000001", "lines:99999999999999999999", "json-array:0",
        "chunk:bytes=", "chunk:bytes=0", "chunk:parts=1.5", "chunk:parts=18446744073709551616"}) {
    EXPECT_THAT(SpecError(bad), HasSubstr("N must be a whole number 1..10000000")) << bad;
  }
  EXPECT_THAT(SpecError("chunk:3"), HasSubstr("use chunk:bytes=N or chunk:parts=N"));
  EXPECT_THAT(SpecError("chunk:lines=3"), HasSubstr("chunk:bytes=N"));
}

TEST(SplitTest, MalformedRangesSayWhatIsWrong) {
  EXPECT_THAT(SpecError("range:5..1"), HasSubstr("A is greater than B"));
  EXPECT_THAT(SpecError("range:1..5:0"), HasSubstr("STEP must be at least 1"));
  EXPECT_THAT(SpecError("range:1..5:-2"), HasSubstr("STEP must be at least 1"));
  EXPECT_THAT(SpecError("range:1-5"), HasSubstr("missing '..'"));
  EXPECT_THAT(SpecError("range:"), HasSubstr("missing '..'"));
  EXPECT_THAT(SpecError("range:a..5"), HasSubstr("A is not"));
  EXPECT_THAT(SpecError("range:..5"), HasSubstr("A is not"));
  EXPECT_THAT(SpecError("range:1..b"), HasSubstr("B is not"));
  EXPECT_THAT(SpecError("range:1.."), HasSubstr("B is not"));
  EXPECT_THAT(SpecError("range:1..5..7"), HasSubstr("B is not"));
  EXPECT_THAT(SpecError("range:1..9223372036854775808"), HasSubstr("B is not a 64-bit"));
  EXPECT_THAT(SpecError("range:1..5:x"), HasSubstr("STEP is not"));
  EXPECT_THAT(SpecError("range:1..5:"), HasSubstr("STEP is not"));
  EXPECT_THAT(SpecError("range:1..5:2:3"), HasSubstr("STEP is not")) << "trailing garbage";
}

TEST(SplitTest, HandBuiltSpecsAreCheckedToo) {
  SplitSpec zero;
  zero.kind = SplitSpec::Kind::kChunkBytes;
  EXPECT_THAT(Split(zero, "abc", kMax, kBig).status().message(), HasSubstr("N must be"));
  SplitSpec backwards;
  backwards.kind = SplitSpec::Kind::kRange;
  backwards.from = 5;
  backwards.to = 1;
  EXPECT_FALSE(Split(backwards, "", kMax, kBig).ok());
  SplitSpec no_step = backwards;
  no_step.from = 1;
  no_step.to = 5;
  no_step.step = 0;
  EXPECT_FALSE(Split(no_step, "", kMax, kBig).ok());
}

TEST(JsonTextTest, CompactJsonDropsOnlyWhitespaceOutsideStrings) {
  EXPECT_EQ(internal::CompactJson(" { \"a b\" : [ 1 ,\n\t2 ] } "), R"({"a b":[1,2]})");
  EXPECT_EQ(internal::CompactJson("\xEF\xBB\xBF [1]"), "[1]") << "a byte-order mark is dropped";
  EXPECT_EQ(internal::CompactJson(R"("\" ,")"), R"("\" ,")");
}

TEST(JsonTextTest, JsonArrayLengthCountsTopLevelElements) {
  EXPECT_EQ(internal::JsonArrayLength("[]"), 0u);
  EXPECT_EQ(internal::JsonArrayLength(" [ ] "), 0u);
  EXPECT_EQ(internal::JsonArrayLength(R"([[1,2],{"a":[3,4]},"5,6",""])"), 4u);
  EXPECT_EQ(internal::JsonArrayLength("{\"a\":1}"), std::nullopt);
  EXPECT_EQ(internal::JsonArrayLength("3"), std::nullopt);
}

TEST(JsonTextTest, QuoteEscapesAndCuts) {
  EXPECT_EQ(internal::Quote("abc"), "'abc'");
  EXPECT_EQ(internal::Quote("a\tb\x7f", 64), "'a\\x09b\\x7f'");
  EXPECT_EQ(internal::Quote(std::string(100, 'x')), "'" + std::string(64, 'x') + "'...");
  EXPECT_EQ(internal::Quote("abcdef", 3), "'abc'...");
}

}  // namespace
}  // namespace yard::jobs
