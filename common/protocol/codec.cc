// Grammar (MessagePack, see docs/protocol.md for the full field tables):
//   frame    = header body
//   header   = 'Y' 'D' version:u8 command:u8
//   body     = array(fields...)            ; one value, no trailing bytes
//   task     = [id:uint, attempt:uint, type:str, payload:bin, lease_ms:uint]
//   result   = [id:uint, attempt:uint, outcome:uint, output:bin, error:str, duration_us:uint]
//   ref      = [id:uint, attempt:uint]
//   spec     = [type:str, payload:bin, key:str, priority:uint, max_attempts:uint, timeout_ms:uint,
//               idempotency_key:str, delay_ms:uint, not_before_us:int, deadline_ms:uint,
//               requirements:[str...]]                     ; the last 4 optional on decode
//   info     = [id, type, state, priority, key, attempt, failures, max_attempts, timeout_ms,
//               payload:bin, result:bin, error, worker, submitted_us, dispatched_us,
//               finished_us, run_after_us, idempotency_key, deadline_us, requirements,
//               job_id, part]                              ; 16 fields at least on decode
//   job_spec = [task:spec, split:str, aggregate:str, policy:uint]
//   job_info = [id, type, split, aggregate, policy, state, parts, first_task_id,
//               reduce_task_id, queued, running, succeeded, failed, cancelled, result:bin,
//               error, failures:[failure...], submitted_us, finished_us, priority, key,
//               max_attempts, timeout_ms, requirements]
//   failure  = [part:uint, task_id:uint, state:uint, error:str]
// Decoders take `bin` and `str` interchangeably for byte fields and accept extra trailing
// array elements, so later versions may append fields.
#include "common/protocol/codec.h"

#include <limits>
#include <msgpack.hpp>
#include <type_traits>

namespace yard::protocol {
namespace {

// ---------------------------------------------------------------- encoding

class StringSink {
 public:
  explicit StringSink(std::string* s) : s_(s) {}
  void write(const char* data, size_t n) { s_->append(data, n); }  // NOLINT: msgpack API name

 private:
  std::string* s_;
};

using Packer = msgpack::packer<StringSink>;

void PackStr(Packer& p, std::string_view s) {
  p.pack_str(static_cast<uint32_t>(s.size()));
  p.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}
void PackBool(Packer& p, bool b) {
  if (b) {
    p.pack_true();
  } else {
    p.pack_false();
  }
}

void PackBin(Packer& p, std::string_view s) {
  p.pack_bin(static_cast<uint32_t>(s.size()));
  p.pack_bin_body(s.data(), static_cast<uint32_t>(s.size()));
}
void PackStrings(Packer& p, const std::vector<std::string>& v) {
  p.pack_array(static_cast<uint32_t>(v.size()));
  for (const auto& s : v) PackStr(p, s);
}
void PackRef(Packer& p, const TaskRef& r) {
  p.pack_array(2);
  p.pack_uint64(r.id);
  p.pack_uint32(r.attempt);
}
void PackRefs(Packer& p, const std::vector<TaskRef>& refs) {
  p.pack_array(static_cast<uint32_t>(refs.size()));
  for (const auto& r : refs) PackRef(p, r);
}

template <typename Fn>
std::string Pack(Fn&& fn) {
  std::string out;
  StringSink sink(&out);
  Packer p(sink);
  fn(p);
  return out;
}

void PackTaskSpec(Packer& p, const TaskSpec& t) {
  p.pack_array(11);
  PackStr(p, t.type);
  PackBin(p, t.payload);
  PackStr(p, t.key);
  p.pack_uint8(t.priority);
  p.pack_uint32(t.max_attempts);
  p.pack_uint32(t.timeout_ms);
  PackStr(p, t.idempotency_key);
  p.pack_uint64(t.delay_ms);
  p.pack_int64(t.not_before_us);
  p.pack_uint64(t.deadline_ms);
  PackStrings(p, t.requirements);
}

void PackTaskInfo(Packer& p, const TaskInfo& t) {
  p.pack_array(22);
  p.pack_uint64(t.id);
  PackStr(p, t.type);
  p.pack_uint8(static_cast<uint8_t>(t.state));
  p.pack_uint8(t.priority);
  PackStr(p, t.key);
  p.pack_uint32(t.attempt);
  p.pack_uint32(t.failures);
  p.pack_uint32(t.max_attempts);
  p.pack_uint32(t.timeout_ms);
  PackBin(p, t.payload);
  PackBin(p, t.result);
  PackStr(p, t.error);
  PackStr(p, t.worker);
  p.pack_int64(t.submitted_us);
  p.pack_int64(t.dispatched_us);
  p.pack_int64(t.finished_us);
  p.pack_int64(t.run_after_us);
  PackStr(p, t.idempotency_key);
  p.pack_int64(t.deadline_us);
  PackStrings(p, t.requirements);
  p.pack_uint64(t.job_id);
  p.pack_uint32(t.part);
}

void PackJobInfo(Packer& p, const JobInfo& j) {
  p.pack_array(24);
  p.pack_uint64(j.id);
  PackStr(p, j.type);
  PackStr(p, j.split);
  PackStr(p, j.aggregate);
  p.pack_uint8(static_cast<uint8_t>(j.policy));
  p.pack_uint8(static_cast<uint8_t>(j.state));
  p.pack_uint32(j.parts);
  p.pack_uint64(j.first_task_id);
  p.pack_uint64(j.reduce_task_id);
  p.pack_uint32(j.queued);
  p.pack_uint32(j.running);
  p.pack_uint32(j.succeeded);
  p.pack_uint32(j.failed);
  p.pack_uint32(j.cancelled);
  PackBin(p, j.result);
  PackStr(p, j.error);
  p.pack_array(static_cast<uint32_t>(j.failures.size()));
  for (const auto& f : j.failures) {
    p.pack_array(4);
    p.pack_uint32(f.part);
    p.pack_uint64(f.task_id);
    p.pack_uint8(static_cast<uint8_t>(f.state));
    PackStr(p, f.error);
  }
  p.pack_int64(j.submitted_us);
  p.pack_int64(j.finished_us);
  p.pack_uint8(j.priority);
  PackStr(p, j.key);
  p.pack_uint32(j.max_attempts);
  p.pack_uint32(j.timeout_ms);
  PackStrings(p, j.requirements);
}

// ---------------------------------------------------------------- decoding

using Obj = msgpack::object;

// Largest known value of each enum: decoders reject anything above.
constexpr auto kMaxOutcome = static_cast<uint8_t>(Outcome::kCancelled);
constexpr auto kMaxTaskState = static_cast<uint8_t>(TaskState::kExpired);
constexpr auto kMaxJobPolicy = static_cast<uint8_t>(JobPolicy::kContinue);
constexpr auto kMaxJobState = static_cast<uint8_t>(JobState::kCancelled);

Status Bad(std::string_view where, std::string_view what) {
  std::string m(where);
  m += ": ";
  m += what;
  return InvalidArgument(std::move(m));
}

// A field path such as "TASKS.tasks[3].type", built only on error.
struct Where {
  const char* msg;
  const char* field;
  int64_t index = -1;
  std::string Str() const {
    std::string s(msg);
    if (index >= 0) s += "[" + std::to_string(index) + "]";
    if (field && *field) {
      s += ".";
      s += field;
    }
    return s;
  }
};

Status AsArray(const Obj& o, size_t min, const Where& w, const Obj** items, size_t* n) {
  if (o.type != msgpack::type::ARRAY) return Bad(w.Str(), "expected array");
  if (o.via.array.size < min) {
    return Bad(w.Str(), "expected at least " + std::to_string(min) + " fields, got " +
                            std::to_string(o.via.array.size));
  }
  *items = o.via.array.ptr;
  *n = o.via.array.size;
  return Status::Ok();
}

template <typename T>
Status AsUint(const Obj& o, const Where& w, T* out) {
  static_assert(std::is_unsigned_v<T>);
  if (o.type != msgpack::type::POSITIVE_INTEGER) return Bad(w.Str(), "expected unsigned int");
  if (o.via.u64 > std::numeric_limits<T>::max()) return Bad(w.Str(), "value out of range");
  *out = static_cast<T>(o.via.u64);
  return Status::Ok();
}

Status AsInt64(const Obj& o, const Where& w, int64_t* out) {
  if (o.type == msgpack::type::NEGATIVE_INTEGER) {
    *out = o.via.i64;
    return Status::Ok();
  }
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    if (o.via.u64 > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Bad(w.Str(), "value out of range");
    }
    *out = static_cast<int64_t>(o.via.u64);
    return Status::Ok();
  }
  return Bad(w.Str(), "expected int");
}

Status AsBool(const Obj& o, const Where& w, bool* out) {
  if (o.type != msgpack::type::BOOLEAN) return Bad(w.Str(), "expected bool");
  *out = o.via.boolean;
  return Status::Ok();
}

// Text fields must be str; byte fields accept bin or str.
Status AsStr(const Obj& o, const Where& w, std::string* out) {
  if (o.type != msgpack::type::STR) return Bad(w.Str(), "expected str");
  out->assign(o.via.str.ptr, o.via.str.size);
  return Status::Ok();
}
Status AsBytes(const Obj& o, const Where& w, std::string* out) {
  if (o.type == msgpack::type::BIN) {
    out->assign(o.via.bin.ptr, o.via.bin.size);
    return Status::Ok();
  }
  if (o.type == msgpack::type::STR) {
    out->assign(o.via.str.ptr, o.via.str.size);
    return Status::Ok();
  }
  return Bad(w.Str(), "expected bin or str");
}

std::string ElementPath(const Where& list, size_t i) {
  return list.Str() + "[" + std::to_string(i) + "]";
}

// A list of str; element errors are named "<list path>[i]".
Status AsStrings(const Obj& o, const Where& w, std::vector<std::string>* out) {
  const Obj* items;
  size_t n;
  RETURN_IF_ERROR(AsArray(o, 0, w, &items, &n));
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (items[i].type != msgpack::type::STR) return Bad(ElementPath(w, i), "expected str");
    (*out)[i].assign(items[i].via.str.ptr, items[i].via.str.size);
  }
  return Status::Ok();
}

// A list of u64; element errors are named "<list path>[i]".
Status AsUint64s(const Obj& o, const Where& w, std::vector<uint64_t>* out) {
  const Obj* items;
  size_t n;
  RETURN_IF_ERROR(AsArray(o, 0, w, &items, &n));
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (items[i].type != msgpack::type::POSITIVE_INTEGER) {
      return Bad(ElementPath(w, i), "expected unsigned int");
    }
    (*out)[i] = items[i].via.u64;
  }
  return Status::Ok();
}

template <typename E>
Status AsEnum(const Obj& o, const Where& w, uint8_t max, E* out) {
  uint8_t v;
  RETURN_IF_ERROR(AsUint(o, w, &v));
  if (v > max) return Bad(w.Str(), "unknown value " + std::to_string(v));
  *out = static_cast<E>(v);
  return Status::Ok();
}

// A list of [id, attempt]; errors are named "<msg>.refs[i].<field>".
Status AsRefs(const Obj& o, const char* msg, std::vector<TaskRef>* out) {
  const Where list{msg, "refs"};
  const Obj* items;
  size_t n;
  RETURN_IF_ERROR(AsArray(o, 0, list, &items, &n));
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    const Obj& e = items[i];
    if (e.type != msgpack::type::ARRAY || e.via.array.size < 2) {
      return Bad(ElementPath(list, i), "expected [id, attempt]");
    }
    const Obj* f = e.via.array.ptr;
    if (f[0].type != msgpack::type::POSITIVE_INTEGER) {
      return Bad(ElementPath(list, i) + ".id", "expected unsigned int");
    }
    if (f[1].type != msgpack::type::POSITIVE_INTEGER ||
        f[1].via.u64 > std::numeric_limits<uint32_t>::max()) {
      return Bad(ElementPath(list, i) + ".attempt", "expected u32");
    }
    (*out)[i] = {f[0].via.u64, static_cast<uint32_t>(f[1].via.u64)};
  }
  return Status::Ok();
}

Status AsTaskInfo(const Obj& o, const Where& w, TaskInfo* t) {
  const Obj* f;
  size_t n;
  RETURN_IF_ERROR(AsArray(o, 16, w, &f, &n));
  const char* m = w.msg;
  int64_t i = w.index;
  RETURN_IF_ERROR(AsUint(f[0], {m, "id", i}, &t->id));
  RETURN_IF_ERROR(AsStr(f[1], {m, "type", i}, &t->type));
  RETURN_IF_ERROR(AsEnum(f[2], {m, "state", i}, kMaxTaskState, &t->state));
  RETURN_IF_ERROR(AsUint(f[3], {m, "priority", i}, &t->priority));
  RETURN_IF_ERROR(AsStr(f[4], {m, "key", i}, &t->key));
  RETURN_IF_ERROR(AsUint(f[5], {m, "attempt", i}, &t->attempt));
  RETURN_IF_ERROR(AsUint(f[6], {m, "failures", i}, &t->failures));
  RETURN_IF_ERROR(AsUint(f[7], {m, "max_attempts", i}, &t->max_attempts));
  RETURN_IF_ERROR(AsUint(f[8], {m, "timeout_ms", i}, &t->timeout_ms));
  RETURN_IF_ERROR(AsBytes(f[9], {m, "payload", i}, &t->payload));
  RETURN_IF_ERROR(AsBytes(f[10], {m, "result", i}, &t->result));
  RETURN_IF_ERROR(AsStr(f[11], {m, "error", i}, &t->error));
  RETURN_IF_ERROR(AsStr(f[12], {m, "worker", i}, &t->worker));
  RETURN_IF_ERROR(AsInt64(f[13], {m, "submitted_us", i}, &t->submitted_us));
  RETURN_IF_ERROR(AsInt64(f[14], {m, "dispatched_us", i}, &t->dispatched_us));
  RETURN_IF_ERROR(AsInt64(f[15], {m, "finished_us", i}, &t->finished_us));
  // Added in protocol 1.1 and later; absent from older records, which leave them at their
  // defaults (`t` may be a reused record).
  t->run_after_us = 0;
  t->idempotency_key.clear();
  t->deadline_us = 0;
  t->requirements.clear();
  t->job_id = 0;
  t->part = 0;
  if (n > 16) RETURN_IF_ERROR(AsInt64(f[16], {m, "run_after_us", i}, &t->run_after_us));
  if (n > 17) RETURN_IF_ERROR(AsStr(f[17], {m, "idempotency_key", i}, &t->idempotency_key));
  if (n > 18) RETURN_IF_ERROR(AsInt64(f[18], {m, "deadline_us", i}, &t->deadline_us));
  if (n > 19) RETURN_IF_ERROR(AsStrings(f[19], {m, "requirements", i}, &t->requirements));
  if (n > 20) RETURN_IF_ERROR(AsUint(f[20], {m, "job_id", i}, &t->job_id));
  if (n > 21) RETURN_IF_ERROR(AsUint(f[21], {m, "part", i}, &t->part));
  return Status::Ok();
}

// A spec; `w` names the spec itself ("SUBMIT.tasks[2]", "JOB_SUBMIT.job.task").
Status AsTaskSpec(const Obj& o, const Where& w, TaskSpec* t) {
  const Obj* f;
  size_t n;
  RETURN_IF_ERROR(AsArray(o, 7, w, &f, &n));
  const char* m = w.msg;
  int64_t i = w.index;
  RETURN_IF_ERROR(AsStr(f[0], {m, "type", i}, &t->type));
  RETURN_IF_ERROR(AsBytes(f[1], {m, "payload", i}, &t->payload));
  RETURN_IF_ERROR(AsStr(f[2], {m, "key", i}, &t->key));
  RETURN_IF_ERROR(AsUint(f[3], {m, "priority", i}, &t->priority));
  RETURN_IF_ERROR(AsUint(f[4], {m, "max_attempts", i}, &t->max_attempts));
  RETURN_IF_ERROR(AsUint(f[5], {m, "timeout_ms", i}, &t->timeout_ms));
  RETURN_IF_ERROR(AsStr(f[6], {m, "idempotency_key", i}, &t->idempotency_key));
  // Added with delays, deadlines and requirements; absent from older clients' specs, which
  // leave them at their defaults (`t` may be reused).
  t->delay_ms = 0;
  t->not_before_us = 0;
  t->deadline_ms = 0;
  t->requirements.clear();
  if (n > 7) RETURN_IF_ERROR(AsUint(f[7], {m, "delay_ms", i}, &t->delay_ms));
  if (n > 8) RETURN_IF_ERROR(AsInt64(f[8], {m, "not_before_us", i}, &t->not_before_us));
  if (n > 9) RETURN_IF_ERROR(AsUint(f[9], {m, "deadline_ms", i}, &t->deadline_ms));
  if (n > 10) RETURN_IF_ERROR(AsStrings(f[10], {m, "requirements", i}, &t->requirements));
  return Status::Ok();
}

// A job record; `m` names it ("JOB_REPLY.job", "JOB_INFO") and `failures` names its failure
// list ("JOB_REPLY.job.failures"), so that paths need no string building unless they fail.
Status AsJobInfo(const Obj& o, const char* m, const char* failures, JobInfo* j) {
  const Obj* f;
  size_t n;
  RETURN_IF_ERROR(AsArray(o, 24, {m, ""}, &f, &n));
  RETURN_IF_ERROR(AsUint(f[0], {m, "id"}, &j->id));
  RETURN_IF_ERROR(AsStr(f[1], {m, "type"}, &j->type));
  RETURN_IF_ERROR(AsStr(f[2], {m, "split"}, &j->split));
  RETURN_IF_ERROR(AsStr(f[3], {m, "aggregate"}, &j->aggregate));
  RETURN_IF_ERROR(AsEnum(f[4], {m, "policy"}, kMaxJobPolicy, &j->policy));
  RETURN_IF_ERROR(AsEnum(f[5], {m, "state"}, kMaxJobState, &j->state));
  RETURN_IF_ERROR(AsUint(f[6], {m, "parts"}, &j->parts));
  RETURN_IF_ERROR(AsUint(f[7], {m, "first_task_id"}, &j->first_task_id));
  RETURN_IF_ERROR(AsUint(f[8], {m, "reduce_task_id"}, &j->reduce_task_id));
  RETURN_IF_ERROR(AsUint(f[9], {m, "queued"}, &j->queued));
  RETURN_IF_ERROR(AsUint(f[10], {m, "running"}, &j->running));
  RETURN_IF_ERROR(AsUint(f[11], {m, "succeeded"}, &j->succeeded));
  RETURN_IF_ERROR(AsUint(f[12], {m, "failed"}, &j->failed));
  RETURN_IF_ERROR(AsUint(f[13], {m, "cancelled"}, &j->cancelled));
  RETURN_IF_ERROR(AsBytes(f[14], {m, "result"}, &j->result));
  RETURN_IF_ERROR(AsStr(f[15], {m, "error"}, &j->error));
  const Obj* items;
  size_t count;
  RETURN_IF_ERROR(AsArray(f[16], 0, {m, "failures"}, &items, &count));
  j->failures.resize(count);
  for (size_t k = 0; k < count; ++k) {
    const auto idx = static_cast<int64_t>(k);
    const Obj* e;
    size_t en;
    RETURN_IF_ERROR(AsArray(items[k], 4, {failures, "", idx}, &e, &en));
    auto& out = j->failures[k];
    RETURN_IF_ERROR(AsUint(e[0], {failures, "part", idx}, &out.part));
    RETURN_IF_ERROR(AsUint(e[1], {failures, "task_id", idx}, &out.task_id));
    RETURN_IF_ERROR(AsEnum(e[2], {failures, "state", idx}, kMaxTaskState, &out.state));
    RETURN_IF_ERROR(AsStr(e[3], {failures, "error", idx}, &out.error));
  }
  RETURN_IF_ERROR(AsInt64(f[17], {m, "submitted_us"}, &j->submitted_us));
  RETURN_IF_ERROR(AsInt64(f[18], {m, "finished_us"}, &j->finished_us));
  RETURN_IF_ERROR(AsUint(f[19], {m, "priority"}, &j->priority));
  RETURN_IF_ERROR(AsStr(f[20], {m, "key"}, &j->key));
  RETURN_IF_ERROR(AsUint(f[21], {m, "max_attempts"}, &j->max_attempts));
  RETURN_IF_ERROR(AsUint(f[22], {m, "timeout_ms"}, &j->timeout_ms));
  return AsStrings(f[23], {m, "requirements"}, &j->requirements);
}

// A view of a body's top-level elements as one array object, for the decoders of records whose
// body is itself their field array (TaskInfo, JobInfo).
Obj ArrayView(const Obj* f, size_t n) {
  msgpack::object arr;
  arr.type = msgpack::type::ARRAY;
  arr.via.array.size = static_cast<uint32_t>(n);
  arr.via.array.ptr = const_cast<Obj*>(f);  // NOLINT: read-only view for the decoders
  return arr;
}

// Unpacks `body` as one msgpack value under limits scaled to its size, then checks that it is
// an array of at least `min_fields` and hands its elements to `fn`.
template <typename Fn>
Status Unpack(std::string_view body, const char* msg, size_t min_fields, Fn&& fn) {
  // Each element of a container takes at least one byte of input, so no container can
  // legitimately claim more elements than the body has bytes: this bounds what msgpack-c
  // allocates up front (msgpack-c issue #1013).
  const size_t len = body.size();
  const msgpack::unpack_limit limit(/*array=*/len, /*map=*/len / 2, /*str=*/len, /*bin=*/len,
                                    /*ext=*/0, /*depth=*/8);
  msgpack::object_handle oh;
  size_t offset = 0;
  try {
    oh = msgpack::unpack(body.data(), len, offset, nullptr, nullptr, limit);
  } catch (const msgpack::insufficient_bytes&) {
    return Bad(msg, "truncated body");
  } catch (const msgpack::depth_size_overflow&) {
    return Bad(msg, "nesting too deep");
  } catch (const msgpack::size_overflow& e) {
    return Bad(msg, std::string("decode limit exceeded (") + e.what() + ")");
  } catch (const std::bad_alloc&) {
    return Bad(msg, "body too large to decode");
  } catch (const std::exception& e) {
    return Bad(msg, std::string("malformed body (") + e.what() + ")");
  }
  if (offset != len) return Bad(msg, "trailing bytes after body");
  const Obj* f;
  size_t n;
  RETURN_IF_ERROR(AsArray(oh.get(), min_fields, {msg, ""}, &f, &n));
  return fn(f, n);
}

}  // namespace

// ---------------------------------------------------------------- header

std::string EncodeHeader(Command command) {
  return std::string{static_cast<char>(kMagic0), static_cast<char>(kMagic1),
                     static_cast<char>(kVersion), static_cast<char>(command)};
}

HeaderCheck CheckHeader(std::string_view frame, Command* command) {
  if (frame.size() != kHeaderSize || static_cast<uint8_t>(frame[0]) != kMagic0 ||
      static_cast<uint8_t>(frame[1]) != kMagic1) {
    return HeaderCheck::kMalformed;
  }
  if (static_cast<uint8_t>(frame[2]) != kVersion) return HeaderCheck::kBadVersion;
  const auto c = static_cast<uint8_t>(frame[3]);
  if (!IsKnownCommand(c)) {
    return c >= kFirstOptionalCommand ? HeaderCheck::kUnknownOptional
                                      : HeaderCheck::kUnknownRequired;
  }
  *command = static_cast<Command>(c);
  return HeaderCheck::kOk;
}

// ---------------------------------------------------------------- worker port

std::string EncodeBody(const Hello& m) {
  return Pack([&](Packer& p) {
    p.pack_array(8);
    PackStr(p, m.worker_id);
    p.pack_uint64(m.incarnation);
    PackStrings(p, m.handlers);
    p.pack_uint32(m.slots);
    p.pack_uint32(m.credit);
    PackStr(p, m.hostname);
    p.pack_uint32(m.pid);
    PackStrings(p, m.tags);
  });
}

Status DecodeBody(std::string_view body, Hello* m) {
  return Unpack(body, "HELLO", 8, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsStr(f[0], {"HELLO", "worker_id"}, &m->worker_id));
    RETURN_IF_ERROR(AsUint(f[1], {"HELLO", "incarnation"}, &m->incarnation));
    RETURN_IF_ERROR(AsStrings(f[2], {"HELLO", "handlers"}, &m->handlers));
    RETURN_IF_ERROR(AsUint(f[3], {"HELLO", "slots"}, &m->slots));
    RETURN_IF_ERROR(AsUint(f[4], {"HELLO", "credit"}, &m->credit));
    RETURN_IF_ERROR(AsStr(f[5], {"HELLO", "hostname"}, &m->hostname));
    RETURN_IF_ERROR(AsUint(f[6], {"HELLO", "pid"}, &m->pid));
    return AsStrings(f[7], {"HELLO", "tags"}, &m->tags);
  });
}

std::string EncodeBody(const Welcome& m) {
  return Pack([&](Packer& p) {
    p.pack_array(5);
    p.pack_uint64(m.session);
    p.pack_uint32(m.heartbeat_ms);
    p.pack_uint32(m.liveness);
    p.pack_uint32(m.max_message_bytes);
    p.pack_uint32(m.max_batch);
  });
}

Status DecodeBody(std::string_view body, Welcome* m) {
  return Unpack(body, "WELCOME", 5, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"WELCOME", "session"}, &m->session));
    RETURN_IF_ERROR(AsUint(f[1], {"WELCOME", "heartbeat_ms"}, &m->heartbeat_ms));
    RETURN_IF_ERROR(AsUint(f[2], {"WELCOME", "liveness"}, &m->liveness));
    RETURN_IF_ERROR(AsUint(f[3], {"WELCOME", "max_message_bytes"}, &m->max_message_bytes));
    return AsUint(f[4], {"WELCOME", "max_batch"}, &m->max_batch);
  });
}

std::string EncodeBody(const Tasks& m) {
  return Pack([&](Packer& p) {
    p.pack_array(1);
    p.pack_array(static_cast<uint32_t>(m.tasks.size()));
    for (const auto& t : m.tasks) {
      p.pack_array(5);
      p.pack_uint64(t.id);
      p.pack_uint32(t.attempt);
      PackStr(p, t.type);
      PackBin(p, t.payload);
      p.pack_uint32(t.lease_ms);
    }
  });
}

Status DecodeBody(std::string_view body, Tasks* m) {
  return Unpack(body, "TASKS", 1, [&](const Obj* f, size_t) {
    const Obj* items;
    size_t n;
    RETURN_IF_ERROR(AsArray(f[0], 0, {"TASKS", "tasks"}, &items, &n));
    m->tasks.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const auto idx = static_cast<int64_t>(i);
      const Obj* t;
      size_t tn;
      RETURN_IF_ERROR(AsArray(items[i], 5, {"TASKS.tasks", "", idx}, &t, &tn));
      auto& out = m->tasks[i];
      RETURN_IF_ERROR(AsUint(t[0], {"TASKS.tasks", "id", idx}, &out.id));
      RETURN_IF_ERROR(AsUint(t[1], {"TASKS.tasks", "attempt", idx}, &out.attempt));
      RETURN_IF_ERROR(AsStr(t[2], {"TASKS.tasks", "type", idx}, &out.type));
      RETURN_IF_ERROR(AsBytes(t[3], {"TASKS.tasks", "payload", idx}, &out.payload));
      RETURN_IF_ERROR(AsUint(t[4], {"TASKS.tasks", "lease_ms", idx}, &out.lease_ms));
    }
    return Status::Ok();
  });
}

std::string EncodeBody(const Results& m) {
  return Pack([&](Packer& p) {
    p.pack_array(2);
    p.pack_uint32(m.credit);
    p.pack_array(static_cast<uint32_t>(m.results.size()));
    for (const auto& r : m.results) {
      p.pack_array(6);
      p.pack_uint64(r.id);
      p.pack_uint32(r.attempt);
      p.pack_uint8(static_cast<uint8_t>(r.outcome));
      PackBin(p, r.output);
      PackStr(p, r.error);
      p.pack_uint64(r.duration_us);
    }
  });
}

Status DecodeBody(std::string_view body, Results* m) {
  return Unpack(body, "RESULTS", 2, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"RESULTS", "credit"}, &m->credit));
    const Obj* items;
    size_t n;
    RETURN_IF_ERROR(AsArray(f[1], 0, {"RESULTS", "results"}, &items, &n));
    m->results.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const auto idx = static_cast<int64_t>(i);
      const Obj* r;
      size_t rn;
      RETURN_IF_ERROR(AsArray(items[i], 6, {"RESULTS.results", "", idx}, &r, &rn));
      auto& out = m->results[i];
      RETURN_IF_ERROR(AsUint(r[0], {"RESULTS.results", "id", idx}, &out.id));
      RETURN_IF_ERROR(AsUint(r[1], {"RESULTS.results", "attempt", idx}, &out.attempt));
      RETURN_IF_ERROR(AsEnum(r[2], {"RESULTS.results", "outcome", idx}, kMaxOutcome, &out.outcome));
      RETURN_IF_ERROR(AsBytes(r[3], {"RESULTS.results", "output", idx}, &out.output));
      RETURN_IF_ERROR(AsStr(r[4], {"RESULTS.results", "error", idx}, &out.error));
      RETURN_IF_ERROR(AsUint(r[5], {"RESULTS.results", "duration_us", idx}, &out.duration_us));
    }
    return Status::Ok();
  });
}

std::string EncodeBody(const Credit& m) {
  return Pack([&](Packer& p) {
    p.pack_array(1);
    p.pack_uint32(m.credit);
  });
}

Status DecodeBody(std::string_view body, Credit* m) {
  return Unpack(body, "CREDIT", 1, [&](const Obj* f, size_t) {
    return AsUint(f[0], {"CREDIT", "credit"}, &m->credit);
  });
}

std::string EncodeBody(const Ack& m) {
  return Pack([&](Packer& p) {
    p.pack_array(1);
    PackRefs(p, m.refs);
  });
}

Status DecodeBody(std::string_view body, Ack* m) {
  return Unpack(body, "ACK", 1,
                [&](const Obj* f, size_t) { return AsRefs(f[0], "ACK", &m->refs); });
}

std::string EncodeBody(const Heartbeat&) {
  return Pack([&](Packer& p) { p.pack_array(0); });
}

Status DecodeBody(std::string_view body, Heartbeat*) {
  return Unpack(body, "HEARTBEAT", 0, [&](const Obj*, size_t) { return Status::Ok(); });
}

std::string EncodeBody(const Extend& m) {
  return Pack([&](Packer& p) {
    p.pack_array(2);
    PackRefs(p, m.refs);
    p.pack_uint32(m.lease_ms);
  });
}

Status DecodeBody(std::string_view body, Extend* m) {
  return Unpack(body, "EXTEND", 2, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsRefs(f[0], "EXTEND", &m->refs));
    return AsUint(f[1], {"EXTEND", "lease_ms"}, &m->lease_ms);
  });
}

std::string EncodeBody(const Disconnect& m) {
  return Pack([&](Packer& p) {
    p.pack_array(2);
    p.pack_uint8(static_cast<uint8_t>(m.reason));
    PackStr(p, m.message);
  });
}

Status DecodeBody(std::string_view body, Disconnect* m) {
  return Unpack(body, "DISCONNECT", 2, [&](const Obj* f, size_t) {
    // Unknown reasons are kept as numbers: a newer peer may send one we do not name.
    uint8_t reason;
    RETURN_IF_ERROR(AsUint(f[0], {"DISCONNECT", "reason"}, &reason));
    m->reason = static_cast<DisconnectReason>(reason);
    return AsStr(f[1], {"DISCONNECT", "message"}, &m->message);
  });
}

std::string EncodeBody(const CancelTasks& m) {
  return Pack([&](Packer& p) {
    p.pack_array(1);
    PackRefs(p, m.refs);
  });
}

Status DecodeBody(std::string_view body, CancelTasks* m) {
  return Unpack(body, "CANCEL_TASKS", 1,
                [&](const Obj* f, size_t) { return AsRefs(f[0], "CANCEL_TASKS", &m->refs); });
}

// ---------------------------------------------------------------- client port

std::string EncodeBody(const Submit& m) {
  return Pack([&](Packer& p) {
    p.pack_array(2);
    p.pack_uint64(m.req_id);
    p.pack_array(static_cast<uint32_t>(m.tasks.size()));
    for (const auto& t : m.tasks) PackTaskSpec(p, t);
  });
}

Status DecodeBody(std::string_view body, Submit* m) {
  return Unpack(body, "SUBMIT", 2, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"SUBMIT", "req_id"}, &m->req_id));
    const Obj* items;
    size_t n;
    RETURN_IF_ERROR(AsArray(f[1], 0, {"SUBMIT", "tasks"}, &items, &n));
    m->tasks.resize(n);
    for (size_t i = 0; i < n; ++i) {
      RETURN_IF_ERROR(
          AsTaskSpec(items[i], {"SUBMIT.tasks", "", static_cast<int64_t>(i)}, &m->tasks[i]));
    }
    return Status::Ok();
  });
}

std::string EncodeBody(const SubmitReply& m) {
  return Pack([&](Packer& p) {
    p.pack_array(2);
    p.pack_uint64(m.req_id);
    p.pack_array(static_cast<uint32_t>(m.ids.size()));
    for (uint64_t id : m.ids) p.pack_uint64(id);
  });
}

Status DecodeBody(std::string_view body, SubmitReply* m) {
  return Unpack(body, "SUBMIT_REPLY", 2, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"SUBMIT_REPLY", "req_id"}, &m->req_id));
    return AsUint64s(f[1], {"SUBMIT_REPLY", "ids"}, &m->ids);
  });
}

std::string EncodeBody(const Get& m) {
  return Pack([&](Packer& p) {
    p.pack_array(3);
    p.pack_uint64(m.req_id);
    p.pack_array(static_cast<uint32_t>(m.ids.size()));
    for (uint64_t id : m.ids) p.pack_uint64(id);
    PackBool(p, m.with_payload);
  });
}

Status DecodeBody(std::string_view body, Get* m) {
  return Unpack(body, "GET", 3, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"GET", "req_id"}, &m->req_id));
    RETURN_IF_ERROR(AsUint64s(f[1], {"GET", "ids"}, &m->ids));
    return AsBool(f[2], {"GET", "with_payload"}, &m->with_payload);
  });
}

std::string EncodeBody(const GetReply& m) {
  return Pack([&](Packer& p) {
    p.pack_array(2);
    p.pack_uint64(m.req_id);
    p.pack_array(static_cast<uint32_t>(m.tasks.size()));
    for (const auto& t : m.tasks) {
      if (t) {
        PackTaskInfo(p, *t);
      } else {
        p.pack_nil();
      }
    }
  });
}

Status DecodeBody(std::string_view body, GetReply* m) {
  return Unpack(body, "GET_REPLY", 2, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"GET_REPLY", "req_id"}, &m->req_id));
    const Obj* items;
    size_t n;
    RETURN_IF_ERROR(AsArray(f[1], 0, {"GET_REPLY", "tasks"}, &items, &n));
    m->tasks.assign(n, std::nullopt);
    for (size_t i = 0; i < n; ++i) {
      if (items[i].type == msgpack::type::NIL) continue;
      TaskInfo t;
      RETURN_IF_ERROR(AsTaskInfo(items[i], {"GET_REPLY.tasks", "", static_cast<int64_t>(i)}, &t));
      m->tasks[i] = std::move(t);
    }
    return Status::Ok();
  });
}

std::string EncodeBody(const Wait& m) {
  return Pack([&](Packer& p) {
    p.pack_array(3);
    p.pack_uint64(m.req_id);
    p.pack_uint64(m.id);
    p.pack_uint32(m.timeout_ms);
  });
}

Status DecodeBody(std::string_view body, Wait* m) {
  return Unpack(body, "WAIT", 3, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"WAIT", "req_id"}, &m->req_id));
    RETURN_IF_ERROR(AsUint(f[1], {"WAIT", "id"}, &m->id));
    return AsUint(f[2], {"WAIT", "timeout_ms"}, &m->timeout_ms);
  });
}

std::string EncodeBody(const Cancel& m) {
  return Pack([&](Packer& p) {
    p.pack_array(2);
    p.pack_uint64(m.req_id);
    p.pack_uint64(m.id);
  });
}

Status DecodeBody(std::string_view body, Cancel* m) {
  return Unpack(body, "CANCEL", 2, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"CANCEL", "req_id"}, &m->req_id));
    return AsUint(f[1], {"CANCEL", "id"}, &m->id);
  });
}

std::string EncodeBody(const CancelReply& m) {
  return Pack([&](Packer& p) {
    p.pack_array(2);
    p.pack_uint64(m.req_id);
    p.pack_uint8(static_cast<uint8_t>(m.state));
  });
}

Status DecodeBody(std::string_view body, CancelReply* m) {
  return Unpack(body, "CANCEL_REPLY", 2, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"CANCEL_REPLY", "req_id"}, &m->req_id));
    return AsEnum(f[1], {"CANCEL_REPLY", "state"}, kMaxTaskState, &m->state);
  });
}

namespace {
template <typename M>
std::string EncodeReqOnly(const M& m) {
  return Pack([&](Packer& p) {
    p.pack_array(1);
    p.pack_uint64(m.req_id);
  });
}
template <typename M>
Status DecodeReqOnly(std::string_view body, const char* name, M* m) {
  return Unpack(body, name, 1, [&](const Obj* f, size_t) {
    return AsUint(f[0], {name, "req_id"}, &m->req_id);
  });
}
}  // namespace

std::string EncodeBody(const Workers& m) { return EncodeReqOnly(m); }
Status DecodeBody(std::string_view body, Workers* m) { return DecodeReqOnly(body, "WORKERS", m); }
std::string EncodeBody(const Stats& m) { return EncodeReqOnly(m); }
Status DecodeBody(std::string_view body, Stats* m) { return DecodeReqOnly(body, "STATS", m); }

std::string EncodeBody(const WorkersReply& m) {
  return Pack([&](Packer& p) {
    p.pack_array(2);
    p.pack_uint64(m.req_id);
    p.pack_array(static_cast<uint32_t>(m.workers.size()));
    for (const auto& w : m.workers) {
      p.pack_array(11);
      PackStr(p, w.worker_id);
      PackStr(p, w.hostname);
      p.pack_uint32(w.pid);
      PackStrings(p, w.handlers);
      p.pack_uint32(w.slots);
      p.pack_uint32(w.credit);
      p.pack_uint32(w.inflight);
      p.pack_uint64(w.completed);
      p.pack_uint64(w.failed);
      p.pack_int64(w.connected_us);
      p.pack_uint32(w.last_seen_ms);
    }
  });
}

Status DecodeBody(std::string_view body, WorkersReply* m) {
  return Unpack(body, "WORKERS_REPLY", 2, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"WORKERS_REPLY", "req_id"}, &m->req_id));
    const Obj* items;
    size_t n;
    RETURN_IF_ERROR(AsArray(f[1], 0, {"WORKERS_REPLY", "workers"}, &items, &n));
    m->workers.resize(n);
    constexpr const char* kW = "WORKERS_REPLY.workers";
    for (size_t i = 0; i < n; ++i) {
      const auto idx = static_cast<int64_t>(i);
      const Obj* w;
      size_t wn;
      RETURN_IF_ERROR(AsArray(items[i], 11, {kW, "", idx}, &w, &wn));
      auto& out = m->workers[i];
      RETURN_IF_ERROR(AsStr(w[0], {kW, "worker_id", idx}, &out.worker_id));
      RETURN_IF_ERROR(AsStr(w[1], {kW, "hostname", idx}, &out.hostname));
      RETURN_IF_ERROR(AsUint(w[2], {kW, "pid", idx}, &out.pid));
      RETURN_IF_ERROR(AsStrings(w[3], {kW, "handlers", idx}, &out.handlers));
      RETURN_IF_ERROR(AsUint(w[4], {kW, "slots", idx}, &out.slots));
      RETURN_IF_ERROR(AsUint(w[5], {kW, "credit", idx}, &out.credit));
      RETURN_IF_ERROR(AsUint(w[6], {kW, "inflight", idx}, &out.inflight));
      RETURN_IF_ERROR(AsUint(w[7], {kW, "completed", idx}, &out.completed));
      RETURN_IF_ERROR(AsUint(w[8], {kW, "failed", idx}, &out.failed));
      RETURN_IF_ERROR(AsInt64(w[9], {kW, "connected_us", idx}, &out.connected_us));
      RETURN_IF_ERROR(AsUint(w[10], {kW, "last_seen_ms", idx}, &out.last_seen_ms));
    }
    return Status::Ok();
  });
}

std::string EncodeBody(const StatsReply& m) {
  return Pack([&](Packer& p) {
    p.pack_array(2);
    p.pack_uint64(m.req_id);
    p.pack_map(static_cast<uint32_t>(m.counters.size()));
    for (const auto& [k, v] : m.counters) {
      PackStr(p, k);
      p.pack_uint64(v);
    }
  });
}

Status DecodeBody(std::string_view body, StatsReply* m) {
  return Unpack(body, "STATS_REPLY", 2, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"STATS_REPLY", "req_id"}, &m->req_id));
    if (f[1].type != msgpack::type::MAP) return Bad("STATS_REPLY.counters", "expected map");
    m->counters.clear();
    const auto& map = f[1].via.map;
    for (uint32_t i = 0; i < map.size; ++i) {
      std::string k;
      uint64_t v;
      RETURN_IF_ERROR(AsStr(map.ptr[i].key, {"STATS_REPLY", "counters.key"}, &k));
      RETURN_IF_ERROR(AsUint(map.ptr[i].val, {"STATS_REPLY", "counters.value"}, &v));
      m->counters[std::move(k)] = v;
    }
    return Status::Ok();
  });
}

std::string EncodeBody(const Error& m) {
  return Pack([&](Packer& p) {
    p.pack_array(3);
    p.pack_uint64(m.req_id);
    p.pack_uint8(m.code);
    PackStr(p, m.message);
  });
}

Status DecodeBody(std::string_view body, Error* m) {
  return Unpack(body, "ERROR", 3, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"ERROR", "req_id"}, &m->req_id));
    RETURN_IF_ERROR(AsUint(f[1], {"ERROR", "code"}, &m->code));
    return AsStr(f[2], {"ERROR", "message"}, &m->message);
  });
}

std::string EncodeBody(const TaskInfo& m) {
  return Pack([&](Packer& p) { PackTaskInfo(p, m); });
}

Status DecodeBody(std::string_view body, TaskInfo* m) {
  // A TaskInfo body is itself its field array (16 fields at least).
  return Unpack(body, "TASK_INFO", 16, [&](const Obj* f, size_t n) {
    return AsTaskInfo(ArrayView(f, n), {"TASK_INFO", ""}, m);
  });
}

namespace {
template <typename M>
std::string EncodeIdsOrAll(const M& m) {
  return Pack([&](Packer& p) {
    p.pack_array(3);
    p.pack_uint64(m.req_id);
    p.pack_array(static_cast<uint32_t>(m.ids.size()));
    for (uint64_t id : m.ids) p.pack_uint64(id);
    PackBool(p, m.all);
  });
}
template <typename M>
Status DecodeIdsOrAll(std::string_view body, const char* name, M* m) {
  return Unpack(body, name, 3, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {name, "req_id"}, &m->req_id));
    RETURN_IF_ERROR(AsUint64s(f[1], {name, "ids"}, &m->ids));
    return AsBool(f[2], {name, "all"}, &m->all);
  });
}
}  // namespace

std::string EncodeBody(const DeadList& m) {
  return Pack([&](Packer& p) {
    p.pack_array(3);
    p.pack_uint64(m.req_id);
    p.pack_uint64(m.after_id);
    p.pack_uint32(m.limit);
  });
}
Status DecodeBody(std::string_view body, DeadList* m) {
  return Unpack(body, "DEAD_LIST", 3, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"DEAD_LIST", "req_id"}, &m->req_id));
    RETURN_IF_ERROR(AsUint(f[1], {"DEAD_LIST", "after_id"}, &m->after_id));
    return AsUint(f[2], {"DEAD_LIST", "limit"}, &m->limit);
  });
}

std::string EncodeBody(const DeadListReply& m) {
  return Pack([&](Packer& p) {
    p.pack_array(3);
    p.pack_uint64(m.req_id);
    p.pack_array(static_cast<uint32_t>(m.tasks.size()));
    for (const auto& t : m.tasks) PackTaskInfo(p, t);
    PackBool(p, m.more);
  });
}
Status DecodeBody(std::string_view body, DeadListReply* m) {
  return Unpack(body, "DEAD_LIST_REPLY", 3, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"DEAD_LIST_REPLY", "req_id"}, &m->req_id));
    const Obj* items;
    size_t n;
    RETURN_IF_ERROR(AsArray(f[1], 0, {"DEAD_LIST_REPLY", "tasks"}, &items, &n));
    m->tasks.resize(n);
    for (size_t i = 0; i < n; ++i) {
      RETURN_IF_ERROR(AsTaskInfo(items[i], {"DEAD_LIST_REPLY.tasks", "", static_cast<int64_t>(i)},
                                 &m->tasks[i]));
    }
    return AsBool(f[2], {"DEAD_LIST_REPLY", "more"}, &m->more);
  });
}

std::string EncodeBody(const DeadRequeue& m) { return EncodeIdsOrAll(m); }
Status DecodeBody(std::string_view body, DeadRequeue* m) {
  return DecodeIdsOrAll(body, "DEAD_REQUEUE", m);
}
std::string EncodeBody(const DeadPurge& m) { return EncodeIdsOrAll(m); }
Status DecodeBody(std::string_view body, DeadPurge* m) {
  return DecodeIdsOrAll(body, "DEAD_PURGE", m);
}

std::string EncodeBody(const DeadReply& m) {
  return Pack([&](Packer& p) {
    p.pack_array(3);
    p.pack_uint64(m.req_id);
    p.pack_uint64(m.count);
    PackBool(p, m.more);
  });
}
Status DecodeBody(std::string_view body, DeadReply* m) {
  return Unpack(body, "DEAD_REPLY", 3, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"DEAD_REPLY", "req_id"}, &m->req_id));
    RETURN_IF_ERROR(AsUint(f[1], {"DEAD_REPLY", "count"}, &m->count));
    return AsBool(f[2], {"DEAD_REPLY", "more"}, &m->more);
  });
}

// ---------------------------------------------------------------- jobs

std::string EncodeBody(const JobSubmit& m) {
  return Pack([&](Packer& p) {
    p.pack_array(2);
    p.pack_uint64(m.req_id);
    p.pack_array(4);
    PackTaskSpec(p, m.job.task);
    PackStr(p, m.job.split);
    PackStr(p, m.job.aggregate);
    p.pack_uint8(static_cast<uint8_t>(m.job.policy));
  });
}
Status DecodeBody(std::string_view body, JobSubmit* m) {
  return Unpack(body, "JOB_SUBMIT", 2, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"JOB_SUBMIT", "req_id"}, &m->req_id));
    const Obj* j;
    size_t jn;
    RETURN_IF_ERROR(AsArray(f[1], 4, {"JOB_SUBMIT", "job"}, &j, &jn));
    RETURN_IF_ERROR(AsTaskSpec(j[0], {"JOB_SUBMIT.job.task", ""}, &m->job.task));
    RETURN_IF_ERROR(AsStr(j[1], {"JOB_SUBMIT.job", "split"}, &m->job.split));
    RETURN_IF_ERROR(AsStr(j[2], {"JOB_SUBMIT.job", "aggregate"}, &m->job.aggregate));
    return AsEnum(j[3], {"JOB_SUBMIT.job", "policy"}, kMaxJobPolicy, &m->job.policy);
  });
}

std::string EncodeBody(const JobSubmitReply& m) {
  return Pack([&](Packer& p) {
    p.pack_array(4);
    p.pack_uint64(m.req_id);
    p.pack_uint64(m.job_id);
    p.pack_uint32(m.parts);
    p.pack_uint64(m.first_task_id);
  });
}
Status DecodeBody(std::string_view body, JobSubmitReply* m) {
  return Unpack(body, "JOB_SUBMIT_REPLY", 4, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"JOB_SUBMIT_REPLY", "req_id"}, &m->req_id));
    RETURN_IF_ERROR(AsUint(f[1], {"JOB_SUBMIT_REPLY", "job_id"}, &m->job_id));
    RETURN_IF_ERROR(AsUint(f[2], {"JOB_SUBMIT_REPLY", "parts"}, &m->parts));
    return AsUint(f[3], {"JOB_SUBMIT_REPLY", "first_task_id"}, &m->first_task_id);
  });
}

std::string EncodeBody(const JobGet& m) {
  return Pack([&](Packer& p) {
    p.pack_array(3);
    p.pack_uint64(m.req_id);
    p.pack_uint64(m.job_id);
    PackBool(p, m.with_result);
  });
}
Status DecodeBody(std::string_view body, JobGet* m) {
  return Unpack(body, "JOB_GET", 3, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"JOB_GET", "req_id"}, &m->req_id));
    RETURN_IF_ERROR(AsUint(f[1], {"JOB_GET", "job_id"}, &m->job_id));
    return AsBool(f[2], {"JOB_GET", "with_result"}, &m->with_result);
  });
}

std::string EncodeBody(const JobCancel& m) {
  return Pack([&](Packer& p) {
    p.pack_array(2);
    p.pack_uint64(m.req_id);
    p.pack_uint64(m.job_id);
  });
}
Status DecodeBody(std::string_view body, JobCancel* m) {
  return Unpack(body, "JOB_CANCEL", 2, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"JOB_CANCEL", "req_id"}, &m->req_id));
    return AsUint(f[1], {"JOB_CANCEL", "job_id"}, &m->job_id);
  });
}

std::string EncodeBody(const JobReply& m) {
  return Pack([&](Packer& p) {
    p.pack_array(2);
    p.pack_uint64(m.req_id);
    PackJobInfo(p, m.job);
  });
}
Status DecodeBody(std::string_view body, JobReply* m) {
  return Unpack(body, "JOB_REPLY", 2, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"JOB_REPLY", "req_id"}, &m->req_id));
    return AsJobInfo(f[1], "JOB_REPLY.job", "JOB_REPLY.job.failures", &m->job);
  });
}

std::string EncodeBody(const JobInfo& m) {
  return Pack([&](Packer& p) { PackJobInfo(p, m); });
}
Status DecodeBody(std::string_view body, JobInfo* m) {
  // Like TaskInfo, a JobInfo body is itself its field array.
  return Unpack(body, "JOB_INFO", 24, [&](const Obj* f, size_t n) {
    return AsJobInfo(ArrayView(f, n), "JOB_INFO", "JOB_INFO.failures", m);
  });
}

// ---------------------------------------------------------------- listing

std::string EncodeBody(const List& m) {
  return Pack([&](Packer& p) {
    p.pack_array(7);
    p.pack_uint64(m.req_id);
    p.pack_uint64(m.after_id);
    p.pack_uint32(m.limit);
    if (m.state) {
      p.pack_uint8(static_cast<uint8_t>(*m.state));
    } else {
      p.pack_nil();
    }
    PackStr(p, m.type);
    PackStr(p, m.key);
    p.pack_uint64(m.job_id);
  });
}
Status DecodeBody(std::string_view body, List* m) {
  return Unpack(body, "LIST", 7, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"LIST", "req_id"}, &m->req_id));
    RETURN_IF_ERROR(AsUint(f[1], {"LIST", "after_id"}, &m->after_id));
    RETURN_IF_ERROR(AsUint(f[2], {"LIST", "limit"}, &m->limit));
    if (f[3].type == msgpack::type::NIL) {
      m->state.reset();
    } else {
      TaskState state;
      RETURN_IF_ERROR(AsEnum(f[3], {"LIST", "state"}, kMaxTaskState, &state));
      m->state = state;
    }
    RETURN_IF_ERROR(AsStr(f[4], {"LIST", "type"}, &m->type));
    RETURN_IF_ERROR(AsStr(f[5], {"LIST", "key"}, &m->key));
    return AsUint(f[6], {"LIST", "job_id"}, &m->job_id);
  });
}

std::string EncodeBody(const ListReply& m) {
  return Pack([&](Packer& p) {
    p.pack_array(4);
    p.pack_uint64(m.req_id);
    p.pack_array(static_cast<uint32_t>(m.tasks.size()));
    for (const auto& t : m.tasks) PackTaskInfo(p, t);
    PackBool(p, m.more);
    p.pack_uint64(m.next_after_id);
  });
}
Status DecodeBody(std::string_view body, ListReply* m) {
  return Unpack(body, "LIST_REPLY", 4, [&](const Obj* f, size_t) {
    RETURN_IF_ERROR(AsUint(f[0], {"LIST_REPLY", "req_id"}, &m->req_id));
    const Obj* items;
    size_t n;
    RETURN_IF_ERROR(AsArray(f[1], 0, {"LIST_REPLY", "tasks"}, &items, &n));
    m->tasks.resize(n);
    for (size_t i = 0; i < n; ++i) {
      RETURN_IF_ERROR(
          AsTaskInfo(items[i], {"LIST_REPLY.tasks", "", static_cast<int64_t>(i)}, &m->tasks[i]));
    }
    RETURN_IF_ERROR(AsBool(f[2], {"LIST_REPLY", "more"}, &m->more));
    return AsUint(f[3], {"LIST_REPLY", "next_after_id"}, &m->next_after_id);
  });
}

StatusOr<uint64_t> PeekReqId(std::string_view body) {
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  const size_t n = body.size();
  size_t at = 0;
  if (n >= 1 && p[0] >= 0x91 && p[0] <= 0x9f) {
    at = 1;  // fixarray of 1..15
  } else if (n >= 3 && p[0] == 0xdc) {
    at = 3;  // array 16
  } else if (n >= 5 && p[0] == 0xdd) {
    at = 5;  // array 32
  } else {
    return InvalidArgument("body: expected a non-empty array");
  }
  if (at >= n) return InvalidArgument("body: no req_id");
  const unsigned char tag = p[at];
  size_t width = 0;
  if (tag <= 0x7f) return uint64_t{tag};
  if (tag == 0xcc) width = 1;
  if (tag == 0xcd) width = 2;
  if (tag == 0xce) width = 4;
  if (tag == 0xcf) width = 8;
  if (width == 0 || at + 1 + width > n)
    return InvalidArgument("body: req_id is not an unsigned integer");
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v = (v << 8) | p[at + 1 + i];
  return v;
}

}  // namespace yard::protocol
