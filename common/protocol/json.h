// The JSON views of protocol records, shared by the `yard` CLI (--json) and the web plugin's
// REST API, so that a task, job or worker reads the same wherever a script meets it.
//
// Bytes (payloads, results) become JSON strings when they are UTF-8, else base64 under a
// "_base64" name.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/protocol/messages.h"

namespace yard::protocol {

using Json = nlohmann::json;

// Whether `s` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool IsUtf8(std::string_view s);
// Standard base64 with padding, and back (nullopt for anything that is not base64).
std::string Base64(std::string_view in);
std::optional<std::string> Base64Decode(std::string_view in);

// JSON text on one line; bytes that are not UTF-8 inside strings are replaced, never fatal.
std::string DumpJson(const Json& j);
// Bytes as `j[name]` when UTF-8, else `j[name + "_base64"]`.
void PutBytes(Json& j, const std::string& name, const std::string& bytes);

// `with_result` false for listings, whose tasks come without results.
Json TaskJson(const TaskInfo& t, bool with_result = true);
Json JobFailuresJson(const JobInfo& j);
// A job's result as "result", with "result_base64": true when the bytes were not UTF-8 and
// "result" holds their base64.
void PutJobResult(Json& out, const std::string& result);
// With the result (PutJobResult) once succeeded or partial, when `with_result`.
Json JobJson(const JobInfo& j, bool with_result);
Json WorkerJson(const WorkerInfo& w);

}  // namespace yard::protocol
