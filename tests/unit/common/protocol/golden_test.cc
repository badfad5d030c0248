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

// Field-by-field views: Tie() from message_tie.h, completed with the messages that hold
// task specs.
template <typename M>
auto Fields(const M& m) {
  return Tie(m);
}
auto Fields(const Submit& m) {
  std::vector<decltype(Fields(TaskSpec{}))> tasks;
  for (const auto& t : m.tasks) tasks.push_back(Fields(t));
  return std::make_tuple(m.req_id, tasks);
}
auto Fields(const CancelTasks& m) { return std::make_tuple(Ties(m.refs)); }
auto Fields(const JobSubmit& m) {
  return std::make_tuple(m.req_id, Fields(m.job.task), m.job.split, m.job.aggregate, m.job.policy);
}
auto Fields(const List& m) {
  return std::tie(m.req_id, m.after_id, m.limit, m.state, m.type, m.key, m.job_id);
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
            EXPECT_EQ(Fields(got), Fields(value));
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
    c["SUBMIT"] = MakeCase(Submit{5, {{"echo", "hello", "", 5, 0, 0, "", 0, 0, 0, {}}}});
    c["SUBMIT_REPLY"] = MakeCase(SubmitReply{5, {1}});
    c["ERROR"] = MakeCase(Error{5, 3, "bad"});
    c["CANCEL_TASKS"] = MakeCase(CancelTasks{{{3, 2}}});
    const TaskSpec part_settings{"echo", "a\nb\n", "", 5, 0, 0, "", 0, 0, 60000, {"gpu"}};
    c["JOB_SUBMIT"] =
        MakeCase(JobSubmit{6, {part_settings, "lines:1", "concat", JobPolicy::kContinue}});
    c["LIST"] = MakeCase(List{7, 0, 100, TaskState::kQueued, "", "", 12});
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
                                           "SUBMIT_REPLY", "ERROR", "CANCEL_TASKS", "JOB_SUBMIT",
                                           "LIST"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return param.param;
                         });

TEST(Golden, EveryKnownMessageIsInstantiated) {
  // Cases() and the instantiation above list the same names.
  EXPECT_EQ(Cases().size(), 15u);
}

TEST(Golden, HeaderBytes) {
  EXPECT_EQ(ToHex(EncodeHeader(Command::kHello)), "59 44 01 01");
  EXPECT_EQ(ToHex(EncodeHeader(Command::kSubmit)), "59 44 01 20");
  EXPECT_EQ(ToHex(EncodeHeader(Command::kCancelTasks)), "59 44 01 80");
  EXPECT_EQ(ToHex(EncodeHeader(Command::kJobSubmit)), "59 44 01 40");
  EXPECT_EQ(ToHex(EncodeHeader(Command::kList)), "59 44 01 46");
}

}  // namespace
}  // namespace yard::protocol
