#include "common/protocol/json.h"

#include <array>

namespace yard::protocol {

bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t extra;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // past U+10FFFF
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;
    for (size_t k = 1; k <= extra; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (k == 1 ? (b < lo || b > hi) : (b >> 6) != 0x2) return false;
    }
    i += extra + 1;
  }
  return true;
}

namespace {
constexpr char kBase64Table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}  // namespace

std::string Base64(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(in[k])); };
  const auto* t = kBase64Table;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (i + 1 == in.size()) {
    const uint32_t v = byte(i) << 16;
    out += {t[v >> 18], t[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view in) {
  static const std::array<int8_t, 256> kValue = [] {
    std::array<int8_t, 256> v{};
    v.fill(-1);
    for (int i = 0; i < 64; ++i) v[static_cast<uint8_t>(kBase64Table[i])] = static_cast<int8_t>(i);
    return v;
  }();
  if (in.size() % 4 != 0) return std::nullopt;
  size_t pad = 0;
  while (pad < 2 && pad < in.size() && in[in.size() - 1 - pad] == '=') ++pad;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < in.size() - pad; ++i) {
    const int8_t v = kValue[static_cast<uint8_t>(in[i])];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

std::string DumpJson(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void PutBytes(Json& j, const std::string& name, const std::string& bytes) {
  if (IsUtf8(bytes)) {
    j[name] = bytes;
  } else {
    j[name + "_base64"] = Base64(bytes);
  }
}

Json TaskJson(const TaskInfo& t, bool with_result) {
  Json j = {{"id", t.id},
            {"type", t.type},
            {"state", TaskStateName(t.state)},
            {"priority", t.priority},
            {"key", t.key},
            {"attempt", t.attempt},
            {"failures", t.failures},
            {"max_attempts", t.max_attempts},
            {"timeout_ms", t.timeout_ms},
            {"error", t.error},
            {"worker", t.worker},
            {"submitted_us", t.submitted_us},
            {"dispatched_us", t.dispatched_us},
            {"finished_us", t.finished_us}};
  if (t.run_after_us != 0) j["run_after_us"] = t.run_after_us;
  if (t.deadline_us != 0) j["deadline_us"] = t.deadline_us;
  if (!t.requirements.empty()) j["requirements"] = t.requirements;
  if (t.job_id != 0) {
    j["job_id"] = t.job_id;
    if (t.part == kReducePart) {
      j["reduce"] = true;
    } else {
      j["part"] = t.part;
    }
  }
  if (!t.idempotency_key.empty()) j["idempotency_key"] = t.idempotency_key;
  if (with_result) PutBytes(j, "result", t.result);
  if (!t.payload.empty()) PutBytes(j, "payload", t.payload);
  return j;
}

Json JobFailuresJson(const JobInfo& j) {
  Json arr = Json::array();
  for (const auto& f : j.failures) {
    arr.push_back({{"part", f.part},
                   {"task_id", f.task_id},
                   {"state", TaskStateName(f.state)},
                   {"error", f.error}});
  }
  return arr;
}

void PutJobResult(Json& out, const std::string& result) {
  const bool text = IsUtf8(result);
  out["result"] = text ? result : Base64(result);
  out["result_base64"] = !text;
}

Json JobJson(const JobInfo& j, bool with_result) {
  Json out = {{"id", j.id},
              {"type", j.type},
              {"state", JobStateName(j.state)},
              {"policy", JobPolicyName(j.policy)},
              {"split", j.split},
              {"aggregate", j.aggregate},
              {"parts", j.parts},
              {"first_task_id", j.first_task_id},
              {"progress",
               {{"queued", j.queued},
                {"running", j.running},
                {"succeeded", j.succeeded},
                {"failed", j.failed},
                {"cancelled", j.cancelled}}},
              {"error", j.error},
              {"failures", JobFailuresJson(j)},
              {"priority", j.priority},
              {"key", j.key},
              {"max_attempts", j.max_attempts},
              {"timeout_ms", j.timeout_ms},
              {"requirements", j.requirements},
              {"submitted_us", j.submitted_us},
              {"finished_us", j.finished_us}};
  if (j.reduce_task_id != 0) out["reduce_task_id"] = j.reduce_task_id;
  if (with_result && (j.state == JobState::kSucceeded || j.state == JobState::kPartial)) {
    PutJobResult(out, j.result);
  }
  return out;
}

Json WorkerJson(const WorkerInfo& w) {
  return {{"id", w.worker_id},
          {"host", w.hostname},
          {"pid", w.pid},
          {"handlers", w.handlers},
          {"slots", w.slots},
          {"credit", w.credit},
          {"inflight", w.inflight},
          {"completed", w.completed},
          {"failed", w.failed},
          {"connected_us", w.connected_us},
          {"last_seen_ms", w.last_seen_ms}};
}

}  // namespace yard::protocol
