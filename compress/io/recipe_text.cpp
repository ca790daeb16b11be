// YAML (or JSON) text -> JSON, guarded: the recipe parser's first half, LibTorch-free so that the fuzz target
// (tests/fuzz/fuzz_recipe.cpp) links only joule_io and yaml-cpp.
#include "compress/io/recipe_text.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <set>
#include <sstream>
#include <vector>

#include "compress/base/error.h"

namespace joule::io {

// YAML -> JSON with scalars typed the way YAML 1.2 core schema reads them, so that `sparsity: 0.5` is a
// number and `method: 2:4` stays a string.
static nlohmann::json yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Sequence: {
      auto a = nlohmann::json::array();
      for (const auto& e : n) a.push_back(yaml_to_json(e));
      return a;
    }
    case YAML::NodeType::Map: {
      auto o = nlohmann::json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return o;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted
      if (s == "true" || s == "false") return s == "true";
      if (s == "null" || s == "~") return nullptr;
      char* end = nullptr;
      errno = 0;
      long long i = std::strtoll(s.c_str(), &end, 10);
      if (!s.empty() && *end == '\0' && errno != ERANGE) return i;  // beyond int64: read as a number below
      double d = std::strtod(s.c_str(), &end);
      if (!s.empty() && *end == '\0') return d;
      return s;
    }
  }
  return nullptr;
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

nlohmann::json recipe_text_json(const std::string& text, const std::string& where) {
  // JSON strings are UTF-8: a recipe's option strings end up in the report and the archive's provenance, whose
  // writer would throw on invalid bytes after the whole run.
  if (text.find('\0') != std::string::npos) fail("recipe '{}': contains a NUL byte (not a text file)", where);
  for (size_t i = 0, line = 1; i < text.size(); ++i) {
    const size_t n = utf8_length(text, i);
    if (n == 0) fail("recipe '{}', line {}: byte 0x{:02x} is not UTF-8", where, line, static_cast<unsigned char>(text[i]));
    if (text[i] == '\n') ++line;
    i += n - 1;
  }
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
  nlohmann::json j = yaml_to_json(root);
  // yaml-cpp reads text starting with NUL bytes as UTF-16/32 and can hand back strings that are not UTF-8 (a fuzz
  // finding): the check above sees only the raw bytes, so the parsed result is checked once more here.
  try {
    (void)j.dump();
  } catch (const nlohmann::json::exception&) {
    fail("recipe '{}': decodes to text that is not UTF-8 (a recipe is UTF-8 YAML or JSON)", where);
  }
  return j;
}

}  // namespace joule::io
