#include "common/status.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace yard {
namespace {

using ::testing::HasSubstr;

TEST(Status, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kOk);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_TRUE(Status::Ok().ok());
}

TEST(Status, CarriesCodeAndMessage) {
  Status s(StatusCode::kNotFound, "no task 7");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "no task 7");
  EXPECT_EQ(s.ToString(), "NOT_FOUND: no task 7");
}

TEST(Status, HelpersSetTheirCodes) {
  EXPECT_EQ(InvalidArgument("x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(NotFound("x").code(), StatusCode::kNotFound);
  EXPECT_EQ(AlreadyExists("x").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(ResourceExhausted("x").code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(FailedPrecondition("x").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Unavailable("x").code(), StatusCode::kUnavailable);
  EXPECT_EQ(DeadlineExceeded("x").code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Internal("x").code(), StatusCode::kInternal);
  EXPECT_EQ(DataLoss("x").code(), StatusCode::kDataLoss);
  EXPECT_EQ(Unimplemented("x").code(), StatusCode::kUnimplemented);
  EXPECT_EQ(Cancelled("x").code(), StatusCode::kCancelled);
  EXPECT_EQ(InvalidArgument("why").message(), "why");
}

TEST(Status, NamesEveryCode) {
  EXPECT_EQ(StatusCodeName(StatusCode::kOk), "OK");
  EXPECT_EQ(StatusCodeName(StatusCode::kCancelled), "CANCELLED");
  EXPECT_EQ(StatusCodeName(StatusCode::kUnknown), "UNKNOWN");
  EXPECT_EQ(StatusCodeName(StatusCode::kInvalidArgument), "INVALID_ARGUMENT");
  EXPECT_EQ(StatusCodeName(StatusCode::kDeadlineExceeded), "DEADLINE_EXCEEDED");
  EXPECT_EQ(StatusCodeName(StatusCode::kNotFound), "NOT_FOUND");
  EXPECT_EQ(StatusCodeName(StatusCode::kAlreadyExists), "ALREADY_EXISTS");
  EXPECT_EQ(StatusCodeName(StatusCode::kPermissionDenied), "PERMISSION_DENIED");
  EXPECT_EQ(StatusCodeName(StatusCode::kResourceExhausted), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(StatusCodeName(StatusCode::kFailedPrecondition), "FAILED_PRECONDITION");
  EXPECT_EQ(StatusCodeName(StatusCode::kAborted), "ABORTED");
  EXPECT_EQ(StatusCodeName(StatusCode::kOutOfRange), "OUT_OF_RANGE");
  EXPECT_EQ(StatusCodeName(StatusCode::kUnimplemented), "UNIMPLEMENTED");
  EXPECT_EQ(StatusCodeName(StatusCode::kInternal), "INTERNAL");
  EXPECT_EQ(StatusCodeName(StatusCode::kUnavailable), "UNAVAILABLE");
  EXPECT_EQ(StatusCodeName(StatusCode::kDataLoss), "DATA_LOSS");
  // A code this build does not name (e.g. from a newer peer) still prints.
  EXPECT_EQ(StatusCodeName(static_cast<StatusCode>(200)), "UNKNOWN");
}

TEST(Status, WithContextPrefixesTheMessageAndKeepsTheCode) {
  const Status s = NotFound("no such file").WithContext("--config");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "--config: no such file");
  EXPECT_EQ(s.WithContext("startup").message(), "startup: --config: no such file");
}

TEST(Status, WithContextLeavesOkAlone) {
  const Status s = Status::Ok().WithContext("ignored");
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.message(), "");
}

TEST(StatusOr, HoldsAValue) {
  StatusOr<int> v(42);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v.status().ok());
  EXPECT_EQ(v.value(), 42);
  EXPECT_EQ(*v, 42);
  *v = 43;
  EXPECT_EQ(v.value(), 43);
}

TEST(StatusOr, HoldsAnError) {
  StatusOr<int> v(NotFound("gone"));
  EXPECT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(v.status().message(), "gone");
}

TEST(StatusOr, ArrowReachesMembers) {
  StatusOr<std::string> v(std::string("abc"));
  EXPECT_EQ(v->size(), 3u);
  const StatusOr<std::string>& c = v;
  EXPECT_EQ(c->front(), 'a');
  EXPECT_EQ(*c, "abc");
}

TEST(StatusOr, MovesOutMoveOnlyValues) {
  StatusOr<std::unique_ptr<int>> v(std::make_unique<int>(5));
  ASSERT_TRUE(v.ok());
  std::unique_ptr<int> p = std::move(v).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 5);
}

TEST(StatusOrDeathTest, ValueOfAnErrorAborts) {
  StatusOr<int> v(Internal("boom"));
  EXPECT_DEATH((void)v.value(), "INTERNAL: boom");
}

TEST(StatusOrDeathTest, BuildingFromOkAborts) {
  EXPECT_DEATH(
      {
        StatusOr<int> v(Status::Ok());
        (void)v;
      },
      "OK status");
}

Status FailIf(bool fail) { return fail ? InvalidArgument("asked to fail") : Status::Ok(); }

Status TwoSteps(bool fail_first, bool fail_second, int* steps) {
  RETURN_IF_ERROR(FailIf(fail_first));
  ++*steps;
  RETURN_IF_ERROR(FailIf(fail_second).WithContext("second"));
  ++*steps;
  return Status::Ok();
}

TEST(StatusMacros, ReturnIfErrorPassesOkThrough) {
  int steps = 0;
  EXPECT_TRUE(TwoSteps(false, false, &steps).ok());
  EXPECT_EQ(steps, 2);
}

TEST(StatusMacros, ReturnIfErrorStopsAtTheFirstError) {
  int steps = 0;
  const Status s = TwoSteps(true, false, &steps);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "asked to fail");
  EXPECT_EQ(steps, 0);

  steps = 0;
  const Status t = TwoSteps(false, true, &steps);
  EXPECT_EQ(t.message(), "second: asked to fail");
  EXPECT_EQ(steps, 1);
}

StatusOr<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgument(std::to_string(x) + " is odd");
  return x / 2;
}

StatusOr<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

StatusOr<std::unique_ptr<int>> MakeBox(bool fail) {
  if (fail) return Unavailable("no box");
  return std::make_unique<int>(9);
}

Status UseBox(bool fail, int* out) {
  ASSIGN_OR_RETURN(std::unique_ptr<int> box, MakeBox(fail));
  *out = *box;
  return Status::Ok();
}

TEST(StatusMacros, AssignOrReturnAssignsValues) {
  auto q = Quarter(12);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, 3);
}

TEST(StatusMacros, AssignOrReturnPropagatesErrors) {
  auto odd_first = Quarter(7);
  EXPECT_EQ(odd_first.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(odd_first.status().message(), HasSubstr("7 is odd"));
  auto odd_second = Quarter(6);
  EXPECT_THAT(odd_second.status().message(), HasSubstr("3 is odd"));
}

TEST(StatusMacros, AssignOrReturnMovesMoveOnlyValues) {
  int out = 0;
  EXPECT_TRUE(UseBox(false, &out).ok());
  EXPECT_EQ(out, 9);
  out = 0;
  const Status s = UseBox(true, &out);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(out, 0);
}

}  // namespace
}  // namespace yard
