// Golden bytes for the wire format: the file at YARD_GOLDEN_FILE was written independently of
// this codec (lines "NAME HEX", body bytes only). Each message below, with exactly these
// values, must encode to those bytes and decode from them. A change here is a protocol change.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "common/protocol/codec.h"
#include "tests/testing/hex.h"
#include "tests/testing/message_tie.h"

#ifndef YARD_GOLDEN_FILE
#error "YARD_GOLDEN_FILE must name the golden frames file (see tests/CMakeLists.txt)"
#endif

namespace yard::protocol {
namespace {

using testing::FromHex;
using testing::ToHex;

struct GoldenFile {
  bool opened = false;
  std::map<std::string, std::string> bodies;  // NAME -> body bytes
  std::vector<std::string> problems;          // malformed or duplicate lines
};

const GoldenFile& Golden() {
  static const GoldenFile file = [] {
    GoldenFile g;
    std::ifstream in(YARD_GOLDEN_FILE);
    g.opened = static_cast<bool>(in);
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
      ++number;
      const size_t start = line.find_first_not_of(" \t\r");
      if (start == std::string::npos || line[start] == '#') continue;
      std::istringstream fields(line.substr(start));
      std::string name;
      fields >> name;
      std::string rest;
      std::getline(fields, rest);
      std::string bytes;
      if (rest.find_first_not_of(" \t\r") == std::string::npos || !FromHex(rest, &bytes)) {
        g.problems.push_back("line " + std::to_string(number) + ": not 'NAME HEX': " + line);
        continue;
      }
      if (!g.bodies.emplace(name, bytes).second) {
        g.problems.push_back("line " + std::to_string(number) + ": " + name + " given twice");
      }
    }
    return g;
  }();
  return file;
}

// One golden message: its encoding, and a check of a decoded golden body.
struct Case {
  std::function<std::string()> encode;
  std::function<void(std::string_view)> check_decode;
};

template <typename M>
Case MakeCase(M value) {
  return {[value] { return EncodeBody(value); },
          [value](std::string_view body) {
            M got;
            const Status st = DecodeBody(body, &got);
            ASSERT_TRUE(st.ok()) << st.ToString();
            EXPECT_EQ(Tie(got), Tie(value));
          }};
}

const std::map<std::string, Case>& Cases() {
  static const std::map<std::string, Case> cases = [] {
    std::map<std::string, Case> c;
    c["HELLO"] = MakeCase(Hello{"w1", 7, {"echo", "sleep"}, 2, 64, "h", 42, {}});
    c["WELCOME"] = MakeCase(Welcome{1, 1000, 3, 16777216, 256});
    c["TASKS"] = MakeCase(Tasks{{{1, 1, "echo", "hi", 30000}}});
    c["RESULTS"] = MakeCase(Results{1, {{1, 1, Outcome::kOk, "hi", "", 12}}});
    c["CREDIT"] = MakeCase(Credit{10});
    c["ACK"] = MakeCase(Ack{{{1, 1}, {2, 1}}});
    c["HEARTBEAT"] = MakeCase(Heartbeat{});
    c["EXTEND"] = MakeCase(Extend{{{1, 1}}, 60000});
    c["DISCONNECT"] = MakeCase(Disconnect{DisconnectReason::kUnknownSession, "unknown session"});
    c["SUBMIT"] = MakeCase(Submit{5, {{"echo", "hello", "", 5, 0, 0, ""}}});
    c["SUBMIT_REPLY"] = MakeCase(SubmitReply{5, {1}});
    c["ERROR"] = MakeCase(Error{5, 3, "bad"});
    return c;
  }();
  return cases;
}

TEST(Golden, FileIsReadable) {
  const GoldenFile& g = Golden();
  ASSERT_TRUE(g.opened) << "cannot read the golden file " << YARD_GOLDEN_FILE;
  EXPECT_THAT(g.problems, ::testing::IsEmpty());
}

TEST(Golden, FileNamesOnlyKnownMessages) {
  const GoldenFile& g = Golden();
  ASSERT_TRUE(g.opened) << "cannot read the golden file " << YARD_GOLDEN_FILE;
  for (const auto& [name, bytes] : g.bodies) {
    EXPECT_TRUE(Cases().contains(name))
        << "the golden file has " << name << ", which this test does not know: add its values "
        << "to Cases() or remove the line";
  }
}

class GoldenMessage : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenMessage, EncodesToTheGoldenBytes) {
  const GoldenFile& g = Golden();
  ASSERT_TRUE(g.opened) << "cannot read the golden file " << YARD_GOLDEN_FILE;
  auto it = g.bodies.find(GetParam());
  ASSERT_NE(it, g.bodies.end()) << "the golden file has no line for " << GetParam();
  EXPECT_EQ(ToHex(Cases().at(GetParam()).encode()), ToHex(it->second));
}

TEST_P(GoldenMessage, DecodesTheGoldenBytes) {
  const GoldenFile& g = Golden();
  ASSERT_TRUE(g.opened) << "cannot read the golden file " << YARD_GOLDEN_FILE;
  auto it = g.bodies.find(GetParam());
  ASSERT_NE(it, g.bodies.end()) << "the golden file has no line for " << GetParam();
  SCOPED_TRACE(GetParam() + " " + ToHex(it->second));
  Cases().at(GetParam()).check_decode(it->second);
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenMessage,
                         ::testing::Values("HELLO", "WELCOME", "TASKS", "RESULTS", "CREDIT", "ACK",
                                           "HEARTBEAT", "EXTEND", "DISCONNECT", "SUBMIT",
                                           "SUBMIT_REPLY", "ERROR"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return param.param;
                         });

TEST(Golden, EveryKnownMessageIsInstantiated) {
  // Cases() and the instantiation above list the same names.
  EXPECT_EQ(Cases().size(), 12u);
}

TEST(Golden, HeaderBytes) {
  EXPECT_EQ(ToHex(EncodeHeader(Command::kHello)), "59 44 01 01");
  EXPECT_EQ(ToHex(EncodeHeader(Command::kSubmit)), "59 44 01 20");
}

}  // namespace
}  // namespace yard::protocol
