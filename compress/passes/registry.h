// The one table of passes. It drives recipe parsing (YAML/JSON), the CLI's per-pass subcommands, and
// --help listings; adding a pass is one line in registry.cpp.
#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compress/passes/pass.h"

namespace joule {

struct PassInfo {
  const char* name;
  const char* summary;
  std::function<std::unique_ptr<Pass>(const nlohmann::json& options)> make;  // validates the options
};

const std::vector<PassInfo>& pass_registry();
std::unique_ptr<Pass> make_pass(const std::string& name, const nlohmann::json& options);

struct Recipe {
  std::vector<std::unique_ptr<Pass>> passes;
  nlohmann::json workload;  // optional "workload:" section, null when absent
};

// A recipe file: `passes: [{prune: {method: "2:4"}}, ...]` in YAML or JSON, optionally with `workload:`.
Recipe load_recipe(const std::string& path);
Recipe parse_recipe(const nlohmann::json& doc, const std::string& where);

}  // namespace joule
