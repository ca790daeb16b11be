#include "compress/pipeline/recipe.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>
#include <vector>

#include "compress/base/error.h"
#include "compress/io/read_file.h"
#include "compress/passes/registry.h"

namespace joule {

// YAML -> JSON with scalars typed the way YAML 1.2 core schema reads them, so that `sparsity: 0.5` is a
// number and `method: 2:4` stays a string.
static nlohmann::json to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Sequence: {
      auto a = nlohmann::json::array();
      for (const auto& e : n) a.push_back(to_json(e));
      return a;
    }
    case YAML::NodeType::Map: {
      auto o = nlohmann::json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = to_json(kv.second);
      return o;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted
      if (s == "true" || s == "false") return s == "true";
      if (s == "null" || s == "~") return nullptr;
      char* end = nullptr;
      long long i = std::strtoll(s.c_str(), &end, 10);
      if (!s.empty() && *end == '\0') return i;
      double d = std::strtod(s.c_str(), &end);
      if (!s.empty() && *end == '\0') return d;
      return s;
    }
  }
  return nullptr;
}

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
    if (k != "passes" && k != "workload") fail("recipe '{}': unknown key '{}' (passes, workload)", where, k);
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

namespace {

// A first pass over the parser's events, before any node is built: a recipe is a small tree, so aliases (which
// make self-referencing nodes and alias bombs), nesting deeper than 32, more than 100k nodes, keys that are not
// scalars and keys given twice (YAML keeps one silently) are errors naming the line.
class RecipeGuard : public YAML::EventHandler {
 public:
  explicit RecipeGuard(std::string where) : where_(std::move(where)) {}
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { value(m, ""); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override {
    fail("recipe '{}', line {}: YAML aliases (*name) are not accepted in recipes; write the value out", where_, m.line + 1);
  }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t, const std::string& v) override { value(m, v); }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    open(m, false);
  }
  void OnSequenceEnd() override { stack_.pop_back(); }
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    open(m, true);
  }
  void OnMapEnd() override { stack_.pop_back(); }

 private:
  struct Level {
    bool map;
    bool expect_key = true;
    std::set<std::string> keys;
  };
  void count(const YAML::Mark& m) {
    if (++nodes_ > 100000) fail("recipe '{}', line {}: more than 100000 values", where_, m.line + 1);
  }
  // A key position in a map must hold a scalar; the value position toggles back.
  bool at_key() const { return !stack_.empty() && stack_.back().map && stack_.back().expect_key; }
  void value(const YAML::Mark& m, const std::string& v) {
    count(m);
    if (at_key() && !stack_.back().keys.insert(v).second)
      fail("recipe '{}', line {}: key '{}' given twice", where_, m.line + 1, v);
    toggle();
  }
  void open(const YAML::Mark& m, bool map) {
    count(m);
    if (at_key()) fail("recipe '{}', line {}: a mapping key must be a plain value", where_, m.line + 1);
    toggle();
    if (stack_.size() >= 32) fail("recipe '{}', line {}: nested deeper than 32 levels", where_, m.line + 1);
    stack_.push_back({map});
  }
  void toggle() {
    if (!stack_.empty() && stack_.back().map) stack_.back().expect_key = !stack_.back().expect_key;
  }
  std::string where_;
  std::vector<Level> stack_;
  size_t nodes_ = 0;
};

}  // namespace

nlohmann::json recipe_json(const std::string& text, const std::string& where) {
  YAML::Node root;
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    RecipeGuard guard(where);
    while (parser.HandleNextDocument(guard)) {}
    root = YAML::Load(text);  // YAML is a superset of JSON: both recipe forms parse here
  } catch (const YAML::Exception& e) {
    fail("recipe '{}': not valid YAML/JSON: {}", where, e.what());
  }
  return to_json(root);
}

Recipe load_recipe(const std::string& path) {
  const std::string text = io::read_regular_file(path, 1 << 20, "recipe");
  std::string base = std::filesystem::path(path).parent_path().string();
  return parse_recipe(recipe_json(text, path), path, base.empty() ? "." : base);
}

}  // namespace joule
