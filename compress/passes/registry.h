// The one table of passes. Each entry is the pass's spec (its name, summary and options) and its factory;
// the table drives recipe parsing (compress/pipeline/recipe.h), the CLI's per-pass subcommands with their flags
// and --help (tools/cmd_pass.cpp), and report labels. Adding a pass is one line in registry.cpp.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compress/passes/options.h"
#include "compress/passes/pass.h"

namespace joule {

struct PassInfo {
  const PassSpec& (*spec)();
  std::unique_ptr<Pass> (*make)(const nlohmann::json& options);  // validates the options (one-line errors)
};

const std::vector<PassInfo>& pass_registry();
const PassInfo* find_pass(const std::string& name);  // nullptr when unknown
// The pass `name` with `options`; unknown names are a one-line error listing the known ones.
std::unique_ptr<Pass> make_pass(const std::string& name, const nlohmann::json& options);

}  // namespace joule
