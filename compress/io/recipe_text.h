// Recipe text (YAML or JSON) as a JSON document, YAML scalars typed as YAML 1.2's core schema reads them
// (`sparsity: 0.5` a number, `method: 2:4` a string, quoted scalars strings). The text is checked event by event
// before any node is built: aliases (self-referencing nodes, alias bombs), nesting deeper than 32, more than 100k
// values, keys that are not plain values and keys given twice are one-line errors naming `where` and the line.
// LibTorch-free (compress/pipeline/recipe.h builds the passes from the result).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace joule::io {

nlohmann::json recipe_text_json(const std::string& text, const std::string& where);

}  // namespace joule::io
