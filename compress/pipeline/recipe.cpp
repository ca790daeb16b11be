#include "compress/pipeline/recipe.h"

#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>
#include <vector>

#include "compress/base/error.h"
#include "compress/io/read_file.h"
#include "compress/io/recipe_text.h"
#include "compress/passes/registry.h"

namespace joule {

// Relative file options (OptionSpec::path) of a recipe read from a file name files beside the recipe, so a recipe
// runs the same from any working directory.
static void resolve_paths(const std::string& pass, nlohmann::json& opts, const std::string& base) {
  const PassInfo* info = find_pass(pass);
  if (!info || base.empty() || !opts.is_object()) return;
  for (auto& [k, v] : opts.items()) {
    const OptionSpec* o = info->spec().find(k);
    if (o && o->path && v.is_string() && !v.get<std::string>().empty() && std::filesystem::path(v.get<std::string>()).is_relative())
      v = (std::filesystem::path(base) / v.get<std::string>()).lexically_normal().string();
  }
}

Recipe parse_recipe(const nlohmann::json& doc, const std::string& where, const std::string& base) {
  if (!doc.is_object() || !doc.contains("passes"))
    fail("recipe '{}': expected a mapping with 'passes: [...]'", where);
  Recipe r;
  for (const auto& [k, v] : doc.items())
    if (k != "passes" && k != "workload") fail("recipe '{}': unknown key '{}' (passes, workload)", where, printable(k));
  if (doc.contains("workload")) r.workload = doc["workload"];
  const auto& passes = doc["passes"];
  if (!passes.is_array() || passes.empty()) fail("recipe '{}': 'passes' must be a non-empty list", where);
  for (size_t i = 0; i < passes.size(); ++i) {
    const auto& p = passes[i];
    if (!p.is_object() || p.size() != 1)
      fail("recipe '{}': pass {} must be a single-key mapping such as {{prune: {{method: \"2:4\"}}}}", where, i + 1);
    auto it = p.begin();
    nlohmann::json opts = it.value().is_null() ? nlohmann::json::object() : it.value();
    resolve_paths(it.key(), opts, base);
    try {
      r.passes.push_back(make_pass(it.key(), opts));
    } catch (const Error& e) {
      fail("recipe '{}', pass {}: {}", where, i + 1, e.what());
    }
  }
  return r;
}

nlohmann::json recipe_json(const std::string& text, const std::string& where) { return io::recipe_text_json(text, where); }

Recipe load_recipe(const std::string& path) {
  const std::string text = io::read_regular_file(path, 1 << 20, "recipe");
  std::string base = std::filesystem::path(path).parent_path().string();
  return parse_recipe(recipe_json(text, path), path, base.empty() ? "." : base);
}

}  // namespace joule
