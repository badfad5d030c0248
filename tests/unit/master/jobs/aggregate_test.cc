#include "master/jobs/aggregate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace yard::jobs {
namespace {

using ::testing::HasSubstr;

std::string Combine(std::string_view spec, uint32_t parts,
                    const std::vector<std::pair<uint32_t, std::string>>& outputs) {
  auto a = ParseAggregate(spec);
  EXPECT_TRUE(a.ok()) << a.status().ToString();
  Aggregation agg(*a, parts);
  for (const auto& [part, out] : outputs) {
    const Status st = agg.Add(part, out);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  auto r = agg.Finish();
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : "";
}

TEST(AggregateTest, CollectIsInPartOrderWithJsonEmbeddedAndNullForMissingParts) {
  EXPECT_EQ(Combine("collect", 4, {{2, "\"c\""}, {0, "{\"a\": 1}"}, {3, "plain text"}}),
            R"([{"a":1},null,"c","plain text"])");
  EXPECT_EQ(Combine("collect", 2, {{1, ""}, {0, "7"}}), R"([7,""])");
}

TEST(AggregateTest, CollectReplacesInvalidUtf8) {
  EXPECT_EQ(Combine("collect", 1, {{0, std::string("a\xff")}}), "[\"a\xEF\xBF\xBD\"]");
}

TEST(AggregateTest, ConcatIsInPartOrderWhateverTheOrderOfArrival) {
  EXPECT_EQ(Combine("concat", 3, {{2, "C"}, {0, "A"}, {1, "B"}}), "ABC");
  EXPECT_EQ(Combine("concat", 3, {{2, "C"}, {0, "A"}}), "AC") << "a missing part adds nothing";
}

TEST(AggregateTest, CountCountsArrayElementsOrLines) {
  EXPECT_EQ(Combine("count", 4, {{0, "[1,2,3]"}, {1, "a\nb\n"}, {2, "last line"}, {3, ""}}), "6");
  EXPECT_EQ(Combine("count", 1, {{0, "[not json\nsecond"}}), "2") << "not JSON: lines";
}

TEST(AggregateTest, SumIsExactForIntegersAndFallsBackToDouble) {
  EXPECT_EQ(Combine("sum", 3, {{0, "1"}, {1, " 2\n"}, {2, "-10"}}), "-7");
  EXPECT_EQ(Combine("sum", 2, {{0, "1.5"}, {1, "2"}}), "3.5");
  EXPECT_EQ(Combine("sum", 2, {{0, "9223372036854775807"}, {1, "1"}}), "9223372036854775808")
      << "overflow falls back to double";
  EXPECT_EQ(Combine("sum", 1, {{0, "1e3"}}), "1000");
  EXPECT_EQ(Combine("sum", 2, {}), "0");
}

TEST(AggregateTest, MinAndMax) {
  EXPECT_EQ(Combine("min", 3, {{0, "5"}, {1, "-2"}, {2, "3.5"}}), "-2");
  EXPECT_EQ(Combine("max", 3, {{0, "5"}, {1, "-2"}, {2, "7.25"}}), "7.25");
  Aggregation none(*ParseAggregate("max"), 2);
  EXPECT_THAT(none.Finish().status().message(), HasSubstr("no part succeeded"));
}

TEST(AggregateTest, ANonNumberIsRefusedNamingThePartAndQuotingTheOutput) {
  Aggregation agg(*ParseAggregate("sum"), 3);
  ASSERT_TRUE(agg.Add(0, "1").ok());
  const Status st = agg.Add(1, "twelve");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("part 1 output is not a number: 'twelve'"));
  EXPECT_THAT(agg.Add(2, std::string(200, 'x')).message(), HasSubstr("...'"));
  EXPECT_EQ(agg.added(), 1u) << "refused outputs change nothing";
  EXPECT_EQ(*agg.Finish(), "1");
}

TEST(AggregateTest, APartIsAddedOnce) {
  Aggregation agg(*ParseAggregate("concat"), 2);
  ASSERT_TRUE(agg.Add(0, "a").ok());
  EXPECT_EQ(agg.Add(0, "b").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(agg.Add(2, "c").code(), StatusCode::kFailedPrecondition);
}

TEST(AggregateTest, ReducePayloadIsTheCollectArray) {
  auto reduce = ParseAggregate("reduce:telemetry.merge");
  ASSERT_TRUE(reduce.ok());
  EXPECT_EQ(reduce->kind, AggregateSpec::Kind::kReduce);
  EXPECT_EQ(reduce->reduce_type, "telemetry.merge");
  EXPECT_EQ(Combine("reduce:m", 2, {{1, "2"}, {0, "x"}}),
            Combine("collect", 2, {{1, "2"}, {0, "x"}}));
}

TEST(AggregateTest, SpecErrorsSayWhatIsWrong) {
  EXPECT_THAT(ParseAggregate("median").status().message(), HasSubstr("unknown aggregator"));
  EXPECT_THAT(ParseAggregate("reduce:").status().message(), HasSubstr("TYPE"));
  EXPECT_THAT(ParseAggregate("reduce:a b").status().message(), HasSubstr("without spaces"));
  EXPECT_FALSE(ParseAggregate("reduce:" + std::string(129, 't')).ok());
  EXPECT_FALSE(ParseAggregate("").ok());
}

}  // namespace
}  // namespace yard::jobs
