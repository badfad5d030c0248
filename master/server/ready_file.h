// The ready file (--ready-file): what a started master publishes for scripts and tests, as
// one JSON object of strings (client and worker endpoints, plugins' announcements such as
// "web_url") plus "pid". Written whole to a temporary file and renamed over the old one, so
// a reader never sees half of it.
#pragma once

#include <map>
#include <string>

#include "common/status.h"

namespace yard::server {

Status WriteReadyFile(const std::string& path, const std::map<std::string, std::string>& fields);

}  // namespace yard::server
