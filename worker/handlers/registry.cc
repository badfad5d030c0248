#include "worker/handlers/registry.h"

namespace yard::worker {

bool IsPermanentFailure(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kNotFound:
    case StatusCode::kPermissionDenied:
    case StatusCode::kUnimplemented:
      return true;
    default:
      return false;
  }
}

Status HandlerRegistry::Register(std::string type, Handler handler) {
  if (type.empty() || type.size() > 128) {
    return InvalidArgument("handler type must be 1..128 bytes");
  }
  if (handlers_.contains(type)) return AlreadyExists("handler '" + type + "' already registered");
  handlers_.emplace(std::move(type), std::move(handler));
  return Status::Ok();
}

const Handler* HandlerRegistry::Find(std::string_view type) const {
  auto it = handlers_.find(type);
  return it == handlers_.end() ? nullptr : &it->second;
}

std::vector<std::string> HandlerRegistry::Types() const {
  std::vector<std::string> out;
  for (const auto& [type, h] : handlers_) out.push_back(type);
  return out;
}

Status HandlerRegistry::Restrict(const std::vector<std::string>& types) {
  std::map<std::string, Handler, std::less<>> kept;
  for (const auto& t : types) {
    auto it = handlers_.find(t);
    if (it == handlers_.end()) return NotFound("no handler named '" + t + "'");
    kept.emplace(t, it->second);
  }
  handlers_ = std::move(kept);
  return Status::Ok();
}

}  // namespace yard::worker
