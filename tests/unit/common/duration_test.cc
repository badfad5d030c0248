#include "common/duration.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace yard {
namespace {

using ::testing::HasSubstr;

Micros Parse(const std::string& text) {
  auto d = ParseDuration(text);
  EXPECT_TRUE(d.ok()) << text << ": " << d.status().ToString();
  return d.ok() ? *d : -1;
}

TEST(ParseDuration, AcceptsEveryUnit) {
  EXPECT_EQ(Parse("7us"), 7);
  EXPECT_EQ(Parse("250ms"), 250 * kMillis);
  EXPECT_EQ(Parse("30s"), 30 * kSeconds);
  EXPECT_EQ(Parse("5m"), 5 * 60 * kSeconds);
  EXPECT_EQ(Parse("1h"), 3600 * kSeconds);
  EXPECT_EQ(Parse("2d"), 2 * 86400 * kSeconds);
}

TEST(ParseDuration, BareNumberIsSeconds) {
  EXPECT_EQ(Parse("30"), 30 * kSeconds);
  EXPECT_EQ(Parse("30"), Parse("30s"));
  EXPECT_EQ(Parse("1"), kSeconds);
}

TEST(ParseDuration, AcceptsZero) {
  EXPECT_EQ(Parse("0"), 0);
  EXPECT_EQ(Parse("0ms"), 0);
}

TEST(ParseDuration, AcceptsTheTenYearLimitAndNotBeyond) {
  const Micros ten_years_s = Micros{10} * 365 * 86400;
  EXPECT_EQ(Parse(std::to_string(ten_years_s) + "s"), ten_years_s * kSeconds);
  EXPECT_EQ(Parse("3650d"), ten_years_s * kSeconds);
  auto over = ParseDuration("3651d");
  EXPECT_EQ(over.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(over.status().message(), HasSubstr("too long"));
}

TEST(ParseDuration, RejectsEmpty) {
  auto d = ParseDuration("");
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(), HasSubstr("not a duration"));
}

TEST(ParseDuration, RejectsJunk) {
  for (const char* text : {"abc", "s", "ms", "10x", "10 s", " 10s", "10s ", "-5s", "+5s", "1.5s",
                           "10sec", "10S", "10MS", "5mm", "1e3", "0x10", "10s5"}) {
    auto d = ParseDuration(text);
    EXPECT_FALSE(d.ok()) << "'" << text << "' parsed as " << (d.ok() ? *d : 0);
    if (!d.ok()) {
      EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument) << text;
      EXPECT_THAT(d.status().message(), HasSubstr(text)) << "the message quotes the input";
    }
  }
}

TEST(ParseDuration, RejectsOverflow) {
  for (const char* text : {"18446744073709551615", "18446744073709551616", "99999999999999999999d",
                           "18446744073709551615us", "9223372036854775807ms", "999999999999h"}) {
    auto d = ParseDuration(text);
    EXPECT_FALSE(d.ok()) << "'" << text << "' parsed as " << (d.ok() ? *d : 0);
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument) << text;
  }
}

}  // namespace
}  // namespace yard
