// Pass options declared once. Each pass lists its options in a PassSpec (name, type, default, allowed range or
// values, one-line help); recipe parsing and validation (parse_options), the CLI's flags and --help
// (tools/cli_options.h), the normalised options recorded in reports and the report's pass label (label_for) all
// come from that spec. A pass's own from_json() reads the validated values and adds only the checks that
// relate several options (e.g. "act_order applies to method gptq").
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace joule {

enum class OptType {
  Bool,    // true / false; a CLI flag without a value
  Int,     // integer
  Float,   // number
  String,  // string; with `choices`, one of them
  Globs,   // a glob or a list of globs over module paths; a repeatable CLI option
  Object,  // a mapping with its own `fields` (recipe only)
};

struct OptionSpec {
  std::string name;                  // recipe key ("calib_samples"); CLI flag "--calib-samples"
  OptType type = OptType::String;
  bool path = false;                 // a file or folder: relative in a recipe = relative to the recipe's folder
  bool required = false;             // must be given (no default makes sense: the training data)
  std::string help;                  // one line, for --help
  nlohmann::json default_value = nullptr;  // value when absent; null: none (the option is then unset)
  std::vector<std::string> choices;  // String: the allowed values (empty: any, checked by the pass)
  // String: other names users know for a choice ({"W4A16", "w4"}). Choices and aliases match case-insensitively
  // and the value is normalised to the choice, so recipes, flags and reports all see one spelling.
  std::vector<std::pair<std::string, std::string>> aliases;
  std::optional<double> min, max;    // Int / Float: allowed range
  bool min_open = false, max_open = false;  // exclude the bound itself: (min, ...) / (..., max)
  std::string short_flag;            // "-s", or ""
  bool cli = true;                   // exposed as a CLI flag (Object options are recipe-only)
  std::vector<OptionSpec> fields;    // Object: its keys
  // Report label: the value is appended to the pass name in tables, formatted with this fmt pattern ("{}",
  // "g{}", "sq{:g}"), unless it equals label_omit (the unremarkable default). Empty: not in the label.
  std::string label;
  nlohmann::json label_omit = nullptr;
};

struct PassSpec {
  std::string name;     // "prune": recipe key, CLI subcommand
  std::string summary;  // one line, for --help and the registry listing
  std::vector<OptionSpec> options;
  const OptionSpec* find(const std::string& option) const;
};

// Validated options: the given values and the spec's defaults.
class OptionValues {
 public:
  OptionValues() = default;
  OptionValues(const std::vector<OptionSpec>* specs, nlohmann::json given, std::string where)
      : specs_(specs), given_(std::move(given)), where_(std::move(where)) {}

  bool given(const std::string& name) const { return given_.contains(name); }  // set by the user
  const nlohmann::json& get(const std::string& name) const;  // given, else the default (null when neither)
  bool has(const std::string& name) const { return !get(name).is_null(); }
  double number(const std::string& name) const;
  int64_t integer(const std::string& name) const;
  bool flag(const std::string& name) const;
  std::string str(const std::string& name) const;
  std::vector<std::string> globs(const std::string& name) const;
  OptionValues object(const std::string& name) const;  // an Object option's fields (defaults when not given)
  const nlohmann::json& given_json() const { return given_; }

 private:
  const OptionSpec& spec(const std::string& name) const;
  const std::vector<OptionSpec>* specs_ = nullptr;
  nlohmann::json given_ = nlohmann::json::object();
  std::string where_;
};

// Checks `j` against the spec and throws joule::Error with one line naming the pass and the option:
// not a mapping, unknown key (listing the known ones), wrong type, value out of range or not a choice.
OptionValues parse_options(const PassSpec& spec, const nlohmann::json& j);

// "calib_samples" -> "--calib-samples".
std::string flag_name(const OptionSpec& o);
// The help line with the allowed values and default appended: "... (w8a8 | w4; default w8a8)".
std::string help_line(const OptionSpec& o);
// "quantize w4 g128 gptq": the pass name and the labelled options of the normalised `options`, in spec order.
std::string label_for(const PassSpec& spec, const nlohmann::json& options);

}  // namespace joule
