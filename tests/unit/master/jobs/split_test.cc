#include "master/jobs/split.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return {};
  auto parts = Split(*s, payload, max_parts, max_bytes);
  EXPECT_TRUE(parts.ok()) << parts.status().ToString();
  return parts.ok() ? *parts : std::vector<std::string>{};
}

Status CutError(std::string_view spec, std::string_view payload, size_t max_parts = kMax,
                size_t max_bytes = kBig) {
  auto s = ParseSplit(spec);
  if (!s.ok()) return s.status();
  return Split(*s, payload, max_parts, max_bytes).status();
}

TEST(SplitTest, ChunkBytesCutsEqualPiecesAndAShorterLastOne) {
  EXPECT_THAT(Cut("chunk:bytes=3", "abcdefgh"), ElementsAre("abc", "def", "gh"));
  EXPECT_THAT(Cut("chunk:bytes=8", "abcdefgh"), ElementsAre("abcdefgh"));
  EXPECT_THAT(Cut("chunk:bytes=100", "ab"), ElementsAre("ab"));
}

TEST(SplitTest, ChunkPartsSizesDifferByAtMostOne) {
  EXPECT_THAT(Cut("chunk:parts=3", "abcdefgh"), ElementsAre("abc", "def", "gh"));
  EXPECT_THAT(Cut("chunk:parts=4", "abcdefghij"), ElementsAre("abc", "def", "gh", "ij"));
  EXPECT_THAT(Cut("chunk:parts=5", "ab"), ElementsAre("a", "b")) << "one part per byte";
  EXPECT_THAT(Cut("chunk:parts=1", "abc"), ElementsAre("abc"));
}

TEST(SplitTest, LinesKeepTheirNewlinesAndALastLineWithoutOne) {
  EXPECT_THAT(Cut("lines:2", "a\nb\nc\n"), ElementsAre("a\nb\n", "c\n"));
  EXPECT_THAT(Cut("lines:2", "a\nb\nc"), ElementsAre("a\nb\n", "c"));
  EXPECT_THAT(Cut("lines:1", "a\r\nb\r\n"), ElementsAre("a\r\n", "b\r\n"));
  EXPECT_THAT(Cut("lines:10", "one line"), ElementsAre("one line"));
  EXPECT_THAT(Cut("lines:1", "\n\n"), ElementsAre("\n", "\n")) << "empty lines are lines";
}

TEST(SplitTest, JoiningChunksOrLinesGivesThePayloadBack) {
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::string payload(1 + rng() % 500, ' ');
    for (char& c : payload) c = "ab\n"[rng() % 3];
    const uint64_t n = 1 + rng() % 20;
    for (const std::string& spec :
         {"chunk:bytes=" + std::to_string(n), "chunk:parts=" + std::to_string(n),
          "lines:" + std::to_string(n)}) {
      std::string joined;
      for (const auto& p : Cut(spec, payload)) {
        EXPECT_FALSE(p.empty()) << spec;
        joined += p;
      }
      EXPECT_EQ(joined, payload) << spec;
    }
  }
}

TEST(SplitTest, JsonArrayCutsElementsIntoSmallerArrays) {
  EXPECT_THAT(Cut("json-array:2", R"([1, {"a": [2, 3]}, "x", null, 5])"),
              ElementsAre(R"([1,{"a":[2,3]}])", R"(["x",null])", "[5]"));
  EXPECT_THAT(Cut("json-array:10", "[1,2]"), ElementsAre("[1,2]"));
}

TEST(SplitTest, JsonArrayRefusesWhatIsNotANonEmptyArray) {
  EXPECT_THAT(CutError("json-array:1", "[1,").message(), HasSubstr("not valid JSON"));
  EXPECT_THAT(CutError("json-array:1", R"({"a":1})").message(), HasSubstr("not a JSON array"));
  EXPECT_THAT(CutError("json-array:1", "[]").message(), HasSubstr("empty"));
}

TEST(SplitTest, RangeGivesOneIntegerPerPart) {
  EXPECT_THAT(Cut("range:1..4", ""), ElementsAre("1", "2", "3", "4"));
  EXPECT_THAT(Cut("range:0..10:4", ""), ElementsAre("0", "4", "8")) << "B is not reached";
  EXPECT_THAT(Cut("range:-2..2:2", ""), ElementsAre("-2", "0", "2"));
  EXPECT_THAT(Cut("range:7..7", ""), ElementsAre("7"));
}

TEST(SplitTest, RangeWantsAnEmptyPayload) {
  EXPECT_THAT(CutError("range:1..3", "x").message(), HasSubstr("payload must be empty"));
}

TEST(SplitTest, AnEmptyPayloadIsRefused) {
  for (const char* spec : {"chunk:bytes=1", "chunk:parts=2", "lines:1", "json-array:1"}) {
    EXPECT_THAT(CutError(spec, "").message(), HasSubstr("empty")) << spec;
  }
}

TEST(SplitTest, TooManyPartsIsRefusedBeforeTheyAreBuilt) {
  EXPECT_THAT(CutError("lines:1", "a\nb\nc\n", 2).message(), HasSubstr("3 parts"));
  EXPECT_THAT(CutError("chunk:bytes=1", "abc", 2).message(), HasSubstr("over the limit of 2"));
  EXPECT_THAT(CutError("json-array:1", "[1,2,3]", 2).message(), HasSubstr("3 parts"));
  // Building 9e18 strings would never finish: the count is checked first.
  EXPECT_THAT(CutError("range:0..9000000000000000000", "", 100000).message(),
              HasSubstr("9000000000000000001 parts"));
  EXPECT_THAT(CutError("range:-9223372036854775808..9223372036854775807", "", 10).message(),
              HasSubstr("over the limit"));
}

TEST(SplitTest, APartOverThePayloadLimitIsRefused) {
  EXPECT_THAT(CutError("lines:1", "short\nthis one is long\n", kMax, 8).message(),
              HasSubstr("part 1 is 17 bytes"));
}

TEST(SplitTest, SpecErrorsSayWhatIsWrong) {
  EXPECT_THAT(ParseSplit("words:3").status().message(), HasSubstr("unknown splitter 'words'"));
  EXPECT_THAT(ParseSplit("lines").status().message(), HasSubstr("no argument"));
  for (const char* bad : {"lines:0", "lines:", "lines:x", "lines:3x", "lines:-1", "lines:10000001",
                          "lines:99999999999999999999", "json-array:0"}) {
    EXPECT_THAT(ParseSplit(bad).status().message(), HasSubstr("N must be")) << bad;
  }
  EXPECT_THAT(ParseSplit("chunk:3").status().message(), HasSubstr("chunk:bytes=N"));
  EXPECT_THAT(ParseSplit("range:5..1").status().message(), HasSubstr("greater than B"));
  EXPECT_THAT(ParseSplit("range:1..5:0").status().message(), HasSubstr("STEP must be"));
  EXPECT_THAT(ParseSplit("range:1-5").status().message(), HasSubstr("missing '..'"));
  EXPECT_THAT(ParseSplit("range:a..5").status().message(), HasSubstr("A is not"));
  EXPECT_THAT(ParseSplit("range:1..b").status().message(), HasSubstr("B is not"));
  EXPECT_THAT(ParseSplit("range:1..5:x").status().message(), HasSubstr("STEP is not"));
  EXPECT_EQ(ParseSplit("lines:1000")->n, 1000u);
}

}  // namespace
}  // namespace yard::jobs
