#include "common/protocol/json.h"

#include <gtest/gtest.h>

#include <string>

namespace yard::protocol {
namespace {

TEST(IsUtf8, AcceptsTextAndRejectsEveryKindOfBadSequence) {
  EXPECT_TRUE(IsUtf8(""));
  EXPECT_TRUE(IsUtf8("plain ascii\n"));
  EXPECT_TRUE(IsUtf8("gr\xc3\xbc\xc3\x9f"));            // grüß
  EXPECT_TRUE(IsUtf8("\xe2\x82\xac"));                  // €
  EXPECT_TRUE(IsUtf8("\xf0\x9f\x98\x80"));              // U+1F600
  EXPECT_TRUE(IsUtf8("\xf4\x8f\xbf\xbf"));              // U+10FFFF
  EXPECT_FALSE(IsUtf8("\xff"));                         // never valid
  EXPECT_FALSE(IsUtf8("\x80"));                         // lone continuation
  EXPECT_FALSE(IsUtf8("\xc3"));                         // cut short
  EXPECT_FALSE(IsUtf8("\xe2\x82"));                     // cut short
  EXPECT_FALSE(IsUtf8("\xc0\xaf"));                     // overlong '/'
  EXPECT_FALSE(IsUtf8("\xe0\x80\xaf"));                 // overlong
  EXPECT_FALSE(IsUtf8("\xed\xa0\x80"));                 // surrogate U+D800
  EXPECT_FALSE(IsUtf8("\xf4\x90\x80\x80"));             // past U+10FFFF
  EXPECT_FALSE(IsUtf8("\xc3\x28"));                     // bad continuation
  EXPECT_FALSE(IsUtf8(std::string("ok\0\xfe", 4)));     // bad byte after a NUL
  EXPECT_TRUE(IsUtf8(std::string("nul\0inside", 10)));  // NUL is valid UTF-8
}

TEST(Base64, EncodesWithPadding) {
  EXPECT_EQ(Base64(""), "");
  EXPECT_EQ(Base64("f"), "Zg==");
  EXPECT_EQ(Base64("fo"), "Zm8=");
  EXPECT_EQ(Base64("foo"), "Zm9v");
  EXPECT_EQ(Base64("foob"), "Zm9vYg==");
  EXPECT_EQ(Base64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(Base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64(std::string("\xff\x00\xfe", 3)), "/wD+");
}

TEST(Base64, DecodesWhatItEncodesAndRefusesTheRest) {
  for (std::string s : {std::string(), std::string("f"), std::string("fo"), std::string("foo"),
                        std::string("\xff\x00\xfe\x01", 4)}) {
    auto back = Base64Decode(Base64(s));
    ASSERT_TRUE(back.has_value()) << s;
    EXPECT_EQ(*back, s);
  }
  EXPECT_FALSE(Base64Decode("Zg=").has_value());   // not a multiple of 4
  EXPECT_FALSE(Base64Decode("Z!==").has_value());  // not in the alphabet
  EXPECT_FALSE(Base64Decode("Zg=a").has_value());  // padding inside
}

TEST(TaskJson, PutsBinaryBytesUnderBase64NamesAndOptionalFieldsOnlyWhenSet) {
  TaskInfo t;
  t.id = 7;
  t.type = "echo";
  t.state = TaskState::kSucceeded;
  t.result = std::string("\xff\x01", 2);
  t.payload = "text";
  Json j = TaskJson(t);
  EXPECT_EQ(j["state"], "succeeded");
  EXPECT_EQ(j["payload"], "text");
  EXPECT_EQ(j["result_base64"], "/wE=");
  EXPECT_FALSE(j.contains("result"));
  EXPECT_FALSE(j.contains("job_id"));
  EXPECT_FALSE(j.contains("deadline_us"));
  t.job_id = 3;
  t.part = kReducePart;
  j = TaskJson(t, /*with_result=*/false);
  EXPECT_EQ(j["job_id"], 3);
  EXPECT_EQ(j["reduce"], true);
  EXPECT_FALSE(j.contains("result_base64"));
}

}  // namespace
}  // namespace yard::protocol
