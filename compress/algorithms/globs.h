// Layer selection shared by the passes: include/exclude globs over module paths ("blocks.*.a").
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace joule {

bool glob_match(const std::string& pattern, const std::string& text);
// A glob or a list of globs from a pass option; `pass` and `key` name it in the one-line error.
std::vector<std::string> glob_list(const nlohmann::json& v, const char* pass, const char* key);
// True when `module` passes the filter: matches an include glob (or there are none) and no exclude glob.
bool selected(const std::string& module, const std::vector<std::string>& include, const std::vector<std::string>& exclude);
// True when an include entry names `module` itself (no wildcard): the user asked for that layer, so a layer a
// scheme cannot take is then an error rather than a skip with a warning.
bool named(const std::string& module, const std::vector<std::string>& include);

}  // namespace joule
