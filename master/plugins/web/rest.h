// The REST API's pure parts: JSON bodies to task and job specs (every field checked, unknown
// fields refused), query parameters to LIST filters, Status to HTTP status and error code,
// and a task's history. No I/O; unit-tested in tests/unit/master/plugins/web_test.cc.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/protocol/json.h"
#include "common/protocol/messages.h"
#include "common/status.h"

namespace yard::web {

using protocol::Json;

// An error as the API answers it: {"error": {"code": code, "message": message}}.
struct HttpError {
  int status = 500;
  std::string code = "internal";
  std::string message;
  std::string Body() const;
};

// A refusal of the core (or of a parser) as an HTTP error: kInvalidArgument 400 bad_field,
// kNotFound 404, kFailedPrecondition 409 conflict, kResourceExhausted 429 queue_full,
// kUnavailable and kDeadlineExceeded 503 unavailable, anything else 500.
HttpError ErrorFor(const Status& st);

// The body as a JSON object; 400 bad_json otherwise.
StatusOr<Json> ParseObject(const std::string& body);

// A task spec (README "Tasks"). kInvalidArgument naming the field ("priority: ...").
StatusOr<protocol::TaskSpec> TaskSpecFromJson(const Json& j, const std::string& where = "");
// A job spec (README "Jobs").
StatusOr<protocol::JobSpec> JobSpecFromJson(const Json& j);
// {"ids": [...]} or {"all": true}: the body of dead-letter requeue and purge.
Status IdsOrAllFromJson(const Json& j, std::vector<uint64_t>* ids, bool* all);

// An id in a path: decimal, > 0.
std::optional<uint64_t> ParseId(const std::string& text);

// The query of GET /tasks (and /jobs/{id}/tasks, /dead): a LIST request and the filters the
// plugin applies itself (submit time). kInvalidArgument naming the parameter.
struct ListQuery {
  protocol::List list;   // state, type, key, job_id, after_id (the cursor), limit
  int64_t since_us = 0;  // 0: none
  int64_t until_us = 0;  // 0: none
};
constexpr uint32_t kDefaultPageLimit = 100;
constexpr uint32_t kMaxPageLimit = 1000;
StatusOr<ListQuery> ParseListQuery(const std::multimap<std::string, std::string>& params);

// "5s", "250ms" or seconds, at most `max`. kInvalidArgument naming `name`.
StatusOr<Micros> ParseWaitParam(const std::string& name, const std::string& text, Micros max);
// "true"/"false"/"1"/"0".
StatusOr<bool> ParseBoolParam(const std::string& name, const std::string& text);

// The task's life as the master knows it, oldest first (README "Tasks").
Json TaskHistory(const protocol::TaskInfo& t);

}  // namespace yard::web
