// Recipes: `passes: [{prune: {method: "2:4"}}, {quantize: {scheme: w8a8}}]` in YAML or JSON, optionally with a
// `workload:` section. Each pass's options are validated by its spec (compress/passes/registry.h).
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compress/passes/pass.h"

namespace joule {

struct Recipe {
  std::vector<std::unique_ptr<Pass>> passes;
  nlohmann::json workload;  // optional "workload:" section, null when absent
};

Recipe load_recipe(const std::string& path);
// `where` names the recipe in one-line errors ("recipe 'r.yaml', pass 2: prune: ...").
// `base`: the folder relative file options are resolved against (load_recipe: the recipe's); empty: as given.
Recipe parse_recipe(const nlohmann::json& doc, const std::string& where, const std::string& base = "");
// A recipe text (YAML or JSON) as the JSON document parse_recipe takes, YAML scalars typed as YAML 1.2's core
// schema reads them (`sparsity: 0.5` a number, `method: 2:4` a string, quoted scalars strings).
nlohmann::json recipe_json(const std::string& text, const std::string& where);

}  // namespace joule
