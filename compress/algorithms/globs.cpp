#include "compress/algorithms/globs.h"

#include <fnmatch.h>

#include "compress/base/error.h"

namespace joule {

bool glob_match(const std::string& pattern, const std::string& text) {
  return fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

std::vector<std::string> glob_list(const nlohmann::json& v, const char* pass, const char* key) {
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) fail("{}: '{}' must be a glob or a list of globs", pass, key);
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) fail("{}: '{}' must be a glob or a list of globs", pass, key);
    out.push_back(e.get<std::string>());
  }
  return out;
}

bool selected(const std::string& module, const std::vector<std::string>& include, const std::vector<std::string>& exclude) {
  bool in = include.empty();
  for (const auto& g : include) in = in || glob_match(g, module);
  for (const auto& g : exclude) in = in && !glob_match(g, module);
  return in;
}

bool named(const std::string& module, const std::vector<std::string>& include) {
  for (const auto& g : include)
    if (g == module && g.find_first_of("*?[") == std::string::npos) return true;
  return false;
}

}  // namespace joule
