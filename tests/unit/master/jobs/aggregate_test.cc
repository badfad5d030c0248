#include "master/jobs/aggregate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace yard::jobs {
namespace {

using ::testing::HasSubstr;
using Outputs = std::vector<std::pair<uint32_t, std::string>>;

std::string Combine(std::string_view spec, uint32_t parts, const Outputs& outputs) {
  auto a = ParseAggregate(spec);
  EXPECT_TRUE(a.ok()) << a.status().ToString();
  if (!a.ok()) return "";
  Aggregation agg(*a, parts);
  for (const auto& [part, out] : outputs) {
    const Status st = agg.Add(part, out);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  EXPECT_EQ(agg.added(), outputs.size());
  auto r = agg.Finish();
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : "";
}

// The result of every permutation of `outputs` must be the same; returns it.
std::string CombineInAnyOrder(std::string_view spec, uint32_t parts, Outputs outputs) {
  std::sort(outputs.begin(), outputs.end());
  const std::string first = Combine(spec, parts, outputs);
  while (std::next_permutation(outputs.begin(), outputs.end())) {
    EXPECT_EQ(Combine(spec, parts, outputs), first) << spec;
  }
  return first;
}

Status AddError(std::string_view spec, std::string_view output) {
  Aggregation agg(*ParseAggregate(spec), 1);
  return agg.Add(0, output);
}

TEST(AggregateTest, ParsesEveryAggregator) {
  using K = AggregateSpec::Kind;
  const std::vector<std::pair<std::string, K>> cases = {
      {"collect", K::kCollect}, {"concat", K::kConcat}, {"count", K::kCount},    {"sum", K::kSum},
      {"min", K::kMin},         {"max", K::kMax},       {"reduce:t", K::kReduce}};
  for (const auto& [spec, kind] : cases) {
    auto a = ParseAggregate(spec);
    ASSERT_TRUE(a.ok()) << spec;
    EXPECT_EQ(a->kind, kind) << spec;
  }
  EXPECT_EQ(ParseAggregate("reduce:" + std::string(128, 't'))->reduce_type, std::string(128, 't'));
}

TEST(AggregateTest, SpecErrorsSayWhatIsWrong) {
  EXPECT_EQ(ParseAggregate("median").status().message(),
            "unknown aggregator 'median': use collect, concat, count, sum, min, max or "
            "reduce:TYPE");
  EXPECT_THAT(ParseAggregate("").status().message(), HasSubstr("unknown aggregator ''"));
  EXPECT_THAT(ParseAggregate("Sum").status().message(), HasSubstr("unknown aggregator"));
  EXPECT_THAT(ParseAggregate("sum ").status().message(), HasSubstr("unknown aggregator"));
  EXPECT_THAT(ParseAggregate("reduce").status().message(), HasSubstr("unknown aggregator"));
  EXPECT_THAT(ParseAggregate("reduce:").status().message(), HasSubstr("TYPE must be 1..128"));
  EXPECT_THAT(ParseAggregate("reduce:a b").status().message(), HasSubstr("without whitespace"));
  EXPECT_THAT(ParseAggregate("reduce:a\tb").status().message(), HasSubstr("'reduce:a\\x09b'"));
  EXPECT_THAT(ParseAggregate("reduce:" + std::string(129, 't')).status().message(),
              HasSubstr("TYPE must be"));
  EXPECT_EQ(ParseAggregate("bogus").status().code(), StatusCode::kInvalidArgument);
}

TEST(AggregateTest, CollectIsInPartOrderWithJsonEmbeddedAndNullForMissingParts) {
  EXPECT_EQ(CombineInAnyOrder("collect", 5,
                              {{2, "\"c\""}, {0, "{\"a\": 1}"}, {3, "plain text"}, {4, " 7\n"}}),
            R"([{"a":1},null,"c","plain text",7])");
  EXPECT_EQ(Combine("collect", 2, {{1, ""}, {0, "[1, 2]"}}), R"([[1,2],""])");
  EXPECT_EQ(Combine("collect", 3, {}), "[null,null,null]");
  EXPECT_EQ(Combine("collect", 0, {}), "[]");
}

TEST(AggregateTest, CollectKeepsJsonAsWrittenAndQuotesWhatIsNotJson) {
  EXPECT_EQ(Combine("collect", 3,
                    {{0, R"({"b": 1, "a": 12345678901234567890123})"},
                     {1, "1 2"},
                     {2, "line \"one\"\nline two"}}),
            R"([{"b":1,"a":12345678901234567890123},"1 2","line \"one\"\nline two"])");
}

TEST(AggregateTest, CollectReplacesInvalidUtf8) {
  EXPECT_EQ(Combine("collect", 1, {{0, std::string("a\xff")}}), "[\"a\xEF\xBF\xBD\"]");
  EXPECT_EQ(Combine("collect", 1, {{0, std::string("\"a\xff\"")}}), "[\"\\\"a\xEF\xBF\xBD\\\"\"]")
      << "a JSON string with invalid UTF-8 is not JSON";
}

TEST(AggregateTest, ConcatIsInPartOrderWhateverTheOrderOfArrival) {
  EXPECT_EQ(CombineInAnyOrder("concat", 4, {{2, "C"}, {0, "A"}, {1, "B"}, {3, "\nD"}}), "ABC\nD");
  EXPECT_EQ(Combine("concat", 3, {{2, "C"}, {0, "A"}}), "AC") << "a missing part adds nothing";
  EXPECT_EQ(Combine("concat", 2, {}), "");
}

TEST(AggregateTest, CountCountsArrayElementsOrLines) {
  EXPECT_EQ(Combine("count", 1, {{0, "[1,2,3]"}}), "3");
  EXPECT_EQ(Combine("count", 1, {{0, " [[1,2], {\"a\": [3]}, \"x,y\"]\n"}}), "3");
  EXPECT_EQ(Combine("count", 1, {{0, "[]"}}), "0");
  EXPECT_EQ(Combine("count", 1, {{0, "a\nb\n"}}), "2");
  EXPECT_EQ(Combine("count", 1, {{0, "a\nb"}}), "2") << "a last line without its newline";
  EXPECT_EQ(Combine("count", 1, {{0, "\n"}}), "1");
  EXPECT_EQ(Combine("count", 1, {{0, ""}}), "0");
  EXPECT_EQ(Combine("count", 1, {{0, "[not json\nsecond"}}), "2") << "not JSON: lines";
  EXPECT_EQ(Combine("count", 1, {{0, "{\"a\": [1,2]}"}}), "1") << "an object is one line";
  EXPECT_EQ(CombineInAnyOrder("count", 4, {{0, "[1,2,3]"}, {1, "a\nb\n"}, {2, "c"}, {3, ""}}), "6");
  EXPECT_EQ(Combine("count", 3, {}), "0");
}

TEST(AggregateTest, CountNeverFails) {
  for (const std::string out : {"", "x", "[", "\xff\xfe", "[1,2", "null", "\"[1]\""}) {
    EXPECT_TRUE(AddError("count", out).ok()) << out;
  }
}

TEST(AggregateTest, SumIsExactForIntegers) {
  EXPECT_EQ(CombineInAnyOrder("sum", 3, {{0, "1"}, {1, " 2\n"}, {2, "-10"}}), "-7");
  EXPECT_EQ(Combine("sum", 2, {{0, "-0"}, {1, "0"}}), "0");
  EXPECT_EQ(Combine("sum", 2, {{0, "9007199254740993"}, {1, "1"}}), "9007199254740994")
      << "beyond a double's 53 bits";
  EXPECT_EQ(Combine("sum", 2, {}), "0") << "no part: the empty sum";
}

TEST(AggregateTest, SumFallsBackToDoubleForFractionsAndOverflow) {
  EXPECT_EQ(Combine("sum", 2, {{0, "1.5"}, {1, "2"}}), "3.5");
  EXPECT_EQ(Combine("sum", 2, {{0, "0.1"}, {1, "0.2"}}), "0.30000000000000004")
      << "shortest text that reads back as the same double";
  EXPECT_EQ(Combine("sum", 1, {{0, "1e3"}}), "1000");
  EXPECT_EQ(Combine("sum", 1, {{0, "2.0"}}), "2");
  EXPECT_EQ(Combine("sum", 2, {{0, "9223372036854775807"}, {1, "1"}}), "9223372036854775808");
  EXPECT_EQ(Combine("sum", 2, {{0, "-9223372036854775808"}, {1, "-1"}}), "-9223372036854775808")
      << "-2^63 - 1 rounds to -2^63 as a double";
  EXPECT_EQ(Combine("sum", 1, {{0, "18446744073709551616"}}), "18446744073709551616")
      << "an integer beyond int64 is a double";
  EXPECT_EQ(Combine("sum", 2, {{0, "1e300"}, {1, "-1e300"}}), "0");
}

TEST(AggregateTest, SumOfIntegersDoesNotDependOnWhereItWouldHaveOverflowed) {
  // Added in order MAX, 1, -1 a running int64 would overflow; the total fits, so it is exact.
  EXPECT_EQ(CombineInAnyOrder("sum", 3, {{0, "9223372036854775807"}, {1, "1"}, {2, "-1"}}),
            "9223372036854775807");
}

TEST(AggregateTest, SumBeyondADoubleIsAnError) {
  Aggregation agg(*ParseAggregate("sum"), 2);
  ASSERT_TRUE(agg.Add(0, "1.5e308").ok());
  ASSERT_TRUE(agg.Add(1, "1.5e308").ok());
  EXPECT_EQ(agg.Finish().status().code(), StatusCode::kOutOfRange);
}

TEST(AggregateTest, MinAndMax) {
  EXPECT_EQ(CombineInAnyOrder("min", 3, {{0, "5"}, {1, "-2"}, {2, "3.5"}}), "-2");
  EXPECT_EQ(CombineInAnyOrder("max", 3, {{0, "5"}, {1, "-2"}, {2, "7.25"}}), "7.25");
  EXPECT_EQ(Combine("max", 2, {{0, "9223372036854775807"}, {1, "9223372036854775806"}}),
            "9223372036854775807")
      << "integers compare exactly";
  EXPECT_EQ(CombineInAnyOrder("max", 2, {{0, "9007199254740993"}, {1, "9007199254740992.0"}}),
            "9007199254740993")
      << "an integer and a double compare exactly";
  EXPECT_EQ(CombineInAnyOrder("min", 2, {{0, "5.0"}, {1, "5"}}), "5") << "ties go to the integer";
  EXPECT_EQ(CombineInAnyOrder("min", 2, {{0, "0.0"}, {1, "-0.0"}}), "-0");
  EXPECT_EQ(CombineInAnyOrder("max", 2, {{0, "0.0"}, {1, "-0.0"}}), "0");
  EXPECT_EQ(Combine("min", 1, {{0, " 42 "}}), "42");
  EXPECT_EQ(Combine("max", 3, {{1, "1e3"}}), "1000") << "parts never added do not count";
}

TEST(AggregateTest, MinOrMaxOfNoPartIsAnError) {
  for (const char* spec : {"min", "max"}) {
    Aggregation none(*ParseAggregate(spec), 2);
    const auto r = none.Finish();
    EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_THAT(r.status().message(), HasSubstr("no part succeeded"));
  }
}

TEST(AggregateTest, ANonNumberIsRefusedNamingThePartAndQuotingTheOutput) {
  Aggregation agg(*ParseAggregate("sum"), 4);
  ASSERT_TRUE(agg.Add(0, "1").ok());
  const Status st = agg.Add(1, "twelve");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "part 1 output is not a number: 'twelve'");
  const Status long_one = agg.Add(2, std::string(200, 'x'));
  EXPECT_EQ(long_one.message(), "part 2 output is not a number: '" + std::string(64, 'x') + "'...");
  EXPECT_THAT(agg.Add(3, "a\nb").message(), HasSubstr("'a\\x0ab'"));
  EXPECT_EQ(agg.added(), 1u) << "refused outputs change nothing";
  EXPECT_EQ(*agg.Finish(), "1");
  EXPECT_TRUE(agg.Add(1, "2").ok()) << "a refused part may still be added";
  EXPECT_EQ(*agg.Finish(), "3");
}

TEST(AggregateTest, OnlyJsonNumbersAreNumbers) {
  for (const char* spec : {"sum", "min", "max"}) {
    for (const std::string out :
         {"",      " ",   "01",    "+1",  "1.",   ".5",   "1e", "0x10", "inf", "nan", "Infinity",
          "1_000", "1 2", "\"1\"", "[1]", "true", "null", "-",  "--1",  "1e+", "١"}) {
      const Status st = AddError(spec, out);
      EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << spec << " '" << out << "'";
      EXPECT_THAT(st.message(), HasSubstr("part 0 output is not a number")) << out;
    }
    for (const std::string out : {"0", "-0", "1e3", "1E+3", "2.5e-3", "-3.5", "\t 7 \r\n\f\v"}) {
      EXPECT_TRUE(AddError(spec, out).ok()) << spec << " '" << out << "'";
    }
  }
  EXPECT_THAT(AddError("sum", "1e400").message(), HasSubstr("beyond the range of a double"));
}

TEST(AggregateTest, APartIsAddedOnce) {
  for (const char* spec : {"collect", "concat", "count", "sum", "min", "max", "reduce:r"}) {
    Aggregation agg(*ParseAggregate(spec), 2);
    ASSERT_TRUE(agg.Add(0, "1").ok()) << spec;
    const Status twice = agg.Add(0, "2");
    EXPECT_EQ(twice.code(), StatusCode::kFailedPrecondition) << spec;
    EXPECT_EQ(twice.message(), "part 0 was added twice");
    EXPECT_EQ(agg.Add(2, "3").code(), StatusCode::kFailedPrecondition) << spec;
    EXPECT_EQ(agg.added(), 1u);
  }
  Aggregation agg(*ParseAggregate("concat"), 2);
  ASSERT_TRUE(agg.Add(1, "b").ok());
  ASSERT_FALSE(agg.Add(1, "x").ok());
  EXPECT_EQ(*agg.Finish(), "b") << "the second output is ignored";
}

TEST(AggregateTest, ReducePayloadIsTheCollectArray) {
  auto reduce = ParseAggregate("reduce:telemetry.merge");
  ASSERT_TRUE(reduce.ok());
  EXPECT_EQ(reduce->kind, AggregateSpec::Kind::kReduce);
  EXPECT_EQ(reduce->reduce_type, "telemetry.merge");
  const Outputs outputs = {{1, "2"}, {0, "x"}, {3, "{\"k\": [1]}"}};
  EXPECT_EQ(Combine("reduce:m", 4, outputs), Combine("collect", 4, outputs));
  EXPECT_EQ(Combine("reduce:m", 4, outputs), R"(["x",2,null,{"k":[1]}])");
}

}  // namespace
}  // namespace yard::jobs
