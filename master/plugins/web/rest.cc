#include "master/plugins/web/rest.h"

#include <charconv>
#include <set>

#include "common/duration.h"
#include "common/wall_time.h"

namespace yard::web {

std::string HttpError::Body() const {
  return protocol::DumpJson(Json{{"error", {{"code", code}, {"message", message}}}});
}

HttpError ErrorFor(const Status& st) {
  switch (st.code()) {
    case StatusCode::kInvalidArgument:
      return {400, "bad_field", st.message()};
    case StatusCode::kNotFound:
      return {404, "not_found", st.message()};
    case StatusCode::kFailedPrecondition:
    case StatusCode::kAlreadyExists:
      return {409, "conflict", st.message()};
    case StatusCode::kResourceExhausted:
      return {429, "queue_full", st.message()};
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
      return {503, "unavailable", st.message()};
    default:
      return {500, "internal", st.message()};
  }
}

StatusOr<Json> ParseObject(const std::string& body) {
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("the body is not JSON");
  if (!j.is_object()) return InvalidArgument("the body must be a JSON object");
  return j;
}

namespace {

// Reads fields of one JSON object, refusing unknown ones; errors name "where + field".
class Fields {
 public:
  Fields(const Json& j, std::string where) : j_(j), where_(std::move(where)) {}

  const Json* Get(const char* name) {
    seen_.insert(name);
    auto it = j_.find(name);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  Status String(const char* name, std::string* out, bool required = false) {
    const Json* v = Get(name);
    if (!v) return required ? Error(name, "is required") : Status::Ok();
    if (!v->is_string()) return Error(name, "expected a string");
    *out = v->get<std::string>();
    return Status::Ok();
  }
  template <typename T>
  Status Uint(const char* name, T* out, uint64_t max) {
    const Json* v = Get(name);
    if (!v) return Status::Ok();
    if (!v->is_number_unsigned() || v->get<uint64_t>() > max) {
      return Error(name, "expected an integer from 0 to " + std::to_string(max));
    }
    *out = static_cast<T>(v->get<uint64_t>());
    return Status::Ok();
  }
  Status Bool(const char* name, bool* out) {
    const Json* v = Get(name);
    if (!v) return Status::Ok();
    if (!v->is_boolean()) return Error(name, "expected true or false");
    *out = v->get<bool>();
    return Status::Ok();
  }
  Status StringList(const char* name, std::vector<std::string>* out) {
    const Json* v = Get(name);
    if (!v) return Status::Ok();
    if (!v->is_array()) return Error(name, "expected a list of strings");
    for (const auto& item : *v) {
      if (!item.is_string()) return Error(name, "expected a list of strings");
      out->push_back(item.get<std::string>());
    }
    return Status::Ok();
  }
  Status CheckNoOthers() const {
    for (auto it = j_.begin(); it != j_.end(); ++it) {
      if (!seen_.count(it.key())) return Error(it.key(), "unknown field");
    }
    return Status::Ok();
  }
  Status Error(const std::string& name, const std::string& why) const {
    return InvalidArgument(where_ + name + ": " + why);
  }

 private:
  const Json& j_;
  std::string where_;
  std::set<std::string, std::less<>> seen_;
};

// The task fields shared by task and job specs.
Status ReadTaskFields(Fields& f, protocol::TaskSpec* s) {
  RETURN_IF_ERROR(f.String("type", &s->type, /*required=*/true));
  if (s->type.empty()) return f.Error("type", "must not be empty");
  const Json* payload = f.Get("payload");
  std::string b64;
  RETURN_IF_ERROR(f.String("payload_base64", &b64));
  if (payload && !b64.empty()) return f.Error("payload_base64", "give payload or payload_base64");
  if (payload) {
    s->payload = payload->is_string() ? payload->get<std::string>() : protocol::DumpJson(*payload);
  } else if (!b64.empty()) {
    auto bytes = protocol::Base64Decode(b64);
    if (!bytes) return f.Error("payload_base64", "not base64");
    s->payload = std::move(*bytes);
  }
  RETURN_IF_ERROR(f.String("key", &s->key));
  RETURN_IF_ERROR(f.Uint("priority", &s->priority, protocol::kLowestPriority));
  RETURN_IF_ERROR(f.Uint("max_attempts", &s->max_attempts, 1000000));
  RETURN_IF_ERROR(f.Uint("timeout_ms", &s->timeout_ms, UINT32_MAX));
  RETURN_IF_ERROR(f.Uint("delay_ms", &s->delay_ms, UINT32_MAX));
  RETURN_IF_ERROR(f.Uint("deadline_ms", &s->deadline_ms, UINT32_MAX));
  if (const Json* nb = f.Get("not_before")) {
    std::string text;
    if (nb->is_string()) {
      text = nb->get<std::string>();
    } else if (nb->is_number()) {
      text = nb->dump();
    } else {
      return f.Error("not_before", "expected Unix seconds or an ISO-8601 time with a zone");
    }
    auto us = ParseWallTime(text);
    if (!us.ok()) return f.Error("not_before", us.status().message());
    s->not_before_us = *us;
  }
  RETURN_IF_ERROR(f.StringList("requires", &s->requirements));
  return Status::Ok();
}

}  // namespace

StatusOr<protocol::TaskSpec> TaskSpecFromJson(const Json& j, const std::string& where) {
  if (!j.is_object()) return InvalidArgument(where + "expected a task object");
  Fields f(j, where);
  protocol::TaskSpec s;
  RETURN_IF_ERROR(ReadTaskFields(f, &s));
  RETURN_IF_ERROR(f.String("idempotency_key", &s.idempotency_key));
  RETURN_IF_ERROR(f.CheckNoOthers());
  return s;
}

StatusOr<protocol::JobSpec> JobSpecFromJson(const Json& j) {
  if (!j.is_object()) return InvalidArgument("expected a job object");
  Fields f(j, "");
  protocol::JobSpec s;
  RETURN_IF_ERROR(ReadTaskFields(f, &s.task));
  RETURN_IF_ERROR(f.String("split", &s.split, /*required=*/true));
  RETURN_IF_ERROR(f.String("aggregate", &s.aggregate));
  std::string policy;
  RETURN_IF_ERROR(f.String("policy", &policy));
  if (!policy.empty()) {
    auto p = protocol::ParseJobPolicy(policy);
    if (!p.ok()) return f.Error("policy", p.status().message());
    s.policy = *p;
  }
  RETURN_IF_ERROR(f.CheckNoOthers());
  return s;
}

Status IdsOrAllFromJson(const Json& j, std::vector<uint64_t>* ids, bool* all) {
  // Fields::CheckNoOthers reads keys: on an array it would throw, not refuse.
  if (!j.is_object()) return InvalidArgument("expected {\"ids\": [...]} or {\"all\": true}");
  Fields f(j, "");
  RETURN_IF_ERROR(f.Bool("all", all));
  if (const Json* v = f.Get("ids")) {
    if (!v->is_array()) return f.Error("ids", "expected a list of task ids");
    for (const auto& id : *v) {
      if (!id.is_number_unsigned() || id.get<uint64_t>() == 0) {
        return f.Error("ids", "expected a list of task ids");
      }
      ids->push_back(id.get<uint64_t>());
    }
  }
  RETURN_IF_ERROR(f.CheckNoOthers());
  if (*all == !ids->empty()) return f.Error("ids", "give a non-empty ids list, or all: true");
  return Status::Ok();
}

std::optional<uint64_t> ParseId(const std::string& text) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v == 0) {
    return std::nullopt;
  }
  return v;
}

StatusOr<ListQuery> ParseListQuery(const std::multimap<std::string, std::string>& params) {
  ListQuery q;
  q.list.limit = kDefaultPageLimit;
  for (const auto& [name, value] : params) {
    auto bad = [&](const std::string& why) { return InvalidArgument(name + ": " + why); };
    if (name == "state") {
      auto s = protocol::ParseTaskState(value);
      if (!s.ok()) return bad(s.status().message());
      q.list.state = *s;
    } else if (name == "type") {
      q.list.type = value;
    } else if (name == "key") {
      q.list.key = value;
    } else if (name == "job") {
      auto id = ParseId(value);
      if (!id) return bad("expected a job id");
      q.list.job_id = *id;
    } else if (name == "cursor") {
      auto id = ParseId(value);
      if (!id) return bad("expected the next_cursor of a previous page");
      q.list.after_id = *id;
    } else if (name == "limit") {
      auto n = ParseId(value);
      if (!n || *n > kMaxPageLimit) {
        return bad("expected an integer from 1 to " + std::to_string(kMaxPageLimit));
      }
      q.list.limit = static_cast<uint32_t>(*n);
    } else if (name == "since" || name == "until") {
      auto us = ParseWallTime(value);
      if (!us.ok()) return bad(us.status().message());
      (name == "since" ? q.since_us : q.until_us) = *us;
    } else {
      return InvalidArgument(name +
                             ": unknown parameter (state, type, key, job, since, until, "
                             "limit, cursor)");
    }
  }
  return q;
}

StatusOr<Micros> ParseWaitParam(const std::string& name, const std::string& text, Micros max) {
  auto d = ParseDuration(text);
  if (!d.ok()) return InvalidArgument(name + ": " + d.status().message());
  if (*d < 0 || *d > max) {
    return InvalidArgument(name + ": must be from 0 to " + std::to_string(max / kSeconds) + "s");
  }
  return *d;
}

StatusOr<bool> ParseBoolParam(const std::string& name, const std::string& text) {
  if (text == "true" || text == "1") return true;
  if (text == "false" || text == "0") return false;
  return InvalidArgument(name + ": expected true or false");
}

Json TaskHistory(const protocol::TaskInfo& t) {
  Json h = Json::array();
  h.push_back({{"event", "submitted"}, {"at_us", t.submitted_us}});
  // A queued task waiting for its time: a delayed one (before any dispatch), or a retry in
  // back-off (after the dispatch that failed), so the events stay oldest first.
  const bool scheduled = t.run_after_us != 0 && t.state == protocol::TaskState::kQueued;
  const bool scheduled_first = t.dispatched_us == 0 || t.run_after_us < t.dispatched_us;
  if (scheduled && scheduled_first) {
    h.push_back({{"event", "scheduled"}, {"at_us", t.run_after_us}});
  }
  if (t.dispatched_us != 0) {
    h.push_back({{"event", "dispatched"},
                 {"at_us", t.dispatched_us},
                 {"worker", t.worker},
                 {"attempt", t.attempt}});
  }
  if (scheduled && !scheduled_first) {
    h.push_back({{"event", "scheduled"}, {"at_us", t.run_after_us}});
  }
  if (protocol::IsTerminal(t.state)) {
    Json end = {{"event", protocol::TaskStateName(t.state)}, {"at_us", t.finished_us}};
    if (!t.error.empty()) end["error"] = t.error;
    h.push_back(std::move(end));
  }
  return h;
}

}  // namespace yard::web
