// TableReader: reads a plugin's TOML section key by key with typed checks, and remembers which
// keys were read so that CheckAllRead() refuses the rest: a misspelt key is an error, never
// silently ignored. Every error is kInvalidArgument and names the key path ("web.threads: ...").
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "common/duration.h"
#include "common/status.h"

namespace yard::plugins {

class TableReader {
 public:
  TableReader(const toml::table& table, std::string path) : table_(table), path_(std::move(path)) {}

  Status String(const char* key, std::string* out) {
    const toml::node* n = Find(key);
    if (!n) return Status::Ok();
    auto v = n->value<std::string>();
    if (!v) return Error(key, "expected a string");
    *out = *v;
    return Status::Ok();
  }
  Status Bool(const char* key, bool* out) {
    const toml::node* n = Find(key);
    if (!n) return Status::Ok();
    auto v = n->value_exact<bool>();  // exact: toml++'s value<bool>() takes 1 as true
    if (!v) return Error(key, "expected true or false");
    *out = *v;
    return Status::Ok();
  }
  template <typename T>
  Status Uint(const char* key, T* out, uint64_t min = 0,
              uint64_t max = std::numeric_limits<T>::max()) {
    const toml::node* n = Find(key);
    if (!n) return Status::Ok();
    auto v = n->value_exact<int64_t>();  // exact: value<int64_t>() takes true as 1, 8.0 as 8
    if (!v || *v < 0 || static_cast<uint64_t>(*v) < min || static_cast<uint64_t>(*v) > max) {
      return Error(
          key, "expected an integer from " + std::to_string(min) + " to " + std::to_string(max));
    }
    *out = static_cast<T>(*v);
    return Status::Ok();
  }
  // "250ms", "10s", or a number of seconds (as everywhere in yard-master's config).
  Status Duration(const char* key, Micros* out) {
    const toml::node* n = Find(key);
    if (!n) return Status::Ok();
    std::string text;
    if (auto s = n->value<std::string>()) {
      text = *s;
    } else if (auto i = n->value_exact<int64_t>(); i && *i >= 0) {
      text = std::to_string(*i);
    } else {
      return Error(key, "expected a duration such as \"500ms\"");
    }
    auto d = ParseDuration(text);
    if (!d.ok()) return Error(key, d.status().message());
    if (*d < 0) return Error(key, "must not be negative");
    *out = *d;
    return Status::Ok();
  }
  Status StringList(const char* key, std::vector<std::string>* out) {
    const toml::node* n = Find(key);
    if (!n) return Status::Ok();
    if (auto s = n->value<std::string>()) {  // one value is accepted for a list of one
      *out = {*s};
      return Status::Ok();
    }
    const auto* arr = n->as_array();
    if (!arr) return Error(key, "expected a list of strings");
    out->clear();
    for (const auto& item : *arr) {
      auto s = item.value<std::string>();
      if (!s) return Error(key, "expected a list of strings");
      out->push_back(*s);
    }
    return Status::Ok();
  }
  const toml::array* Array(const char* key) {
    const toml::node* n = Find(key);
    return n ? n->as_array() : nullptr;
  }
  bool Has(const char* key) const { return table_.contains(key); }
  Status CheckAllRead() const {
    for (const auto& [k, v] : table_) {
      if (!read_.count(std::string(k.str()))) {
        return InvalidArgument(path_ + "." + std::string(k.str()) + ": unknown key");
      }
    }
    return Status::Ok();
  }
  Status Error(const char* key, const std::string& why) const {
    return InvalidArgument(path_ + "." + key + ": " + why);
  }
  const std::string& path() const { return path_; }

 private:
  const toml::node* Find(const char* key) {
    read_.insert(key);
    return table_.get(key);
  }
  const toml::table& table_;
  std::string path_;
  std::set<std::string> read_;
};

}  // namespace yard::plugins
