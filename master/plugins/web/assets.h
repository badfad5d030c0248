// The dashboard's files, embedded in the binary at build time (cmake/EmbedFiles.cmake) from
// master/plugins/web/dashboard/, so the page works offline and no request path reaches the
// file system.
#pragma once

#include <string_view>

namespace yard::web {

struct Asset {
  std::string_view path;  // as requested: "/", "/static/app.js"
  std::string_view content_type;
  std::string_view body;
};

// nullptr when no embedded file has this exact path.
const Asset* FindAsset(std::string_view path);

}  // namespace yard::web
