#include "master/server/ready_file.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace yard::server {

Status WriteReadyFile(const std::string& path, const std::map<std::string, std::string>& fields) {
  nlohmann::json j = fields;
  j["pid"] = getpid();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    if (!f) return Unavailable("cannot write ready file " + tmp);
    f << j.dump() << "\n";
    if (!f.flush()) return Unavailable("cannot write ready file " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Unavailable("cannot rename ready file: " + ec.message());
  return Status::Ok();
}

}  // namespace yard::server
