// Option specs: validation with one-line errors, defaults, help lines and report labels from one declaration.
#include "compress/passes/options.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

#include "compress/base/error.h"

namespace joule {

namespace {

const OptionSpec* find_in(const std::vector<OptionSpec>& specs, const std::string& name) {
  for (const auto& o : specs)
    if (o.name == name) return &o;
  return nullptr;
}

// A number as people write it: 0.5, 1, 1e-05.
std::string num(double v) { return fmt::format("{:g}", v); }

std::string range_text(const OptionSpec& o) {
  std::string lo = o.min ? num(*o.min) : "-inf", hi = o.max ? num(*o.max) : "inf";
  return fmt::format("{}{}, {}{}", o.min_open || !o.min ? "(" : "[", lo, hi, o.max_open || !o.max ? ")" : "]");
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The choice `given` names (itself in any case, or an alias), or "" when none.
std::string canonical_choice(const OptionSpec& o, const std::string& given) {
  const std::string g = lower(given);
  for (const auto& c : o.choices)
    if (lower(c) == g) return c;
  for (const auto& [alias, c] : o.aliases)
    if (lower(alias) == g) return c;
  return "";
}

std::string choices_text(const OptionSpec& o) {
  std::string s = fmt::format("{}", fmt::join(o.choices, ", "));
  if (o.aliases.empty()) return s;
  std::vector<std::string> a;
  for (const auto& [alias, c] : o.aliases) a.push_back(alias + "=" + c);
  return fmt::format("{}; also {}", s, fmt::join(a, ", "));
}

// Checks `v` against its spec and normalises it in place (a choice's alias or case becomes the choice).
void check_value(const OptionSpec& o, nlohmann::json& v, const std::string& where, const std::string& key) {
  switch (o.type) {
    case OptType::Bool:
      if (!v.is_boolean()) fail("{}: '{}' must be true or false", where, key);
      return;
    case OptType::Int:
      if (!v.is_number_integer()) fail("{}: '{}' must be an integer, got {}", where, key, v.dump());
      break;
    case OptType::Float:
      if (!v.is_number()) fail("{}: '{}' must be a number, got {}", where, key, v.dump());
      break;
    case OptType::String:
      if (!v.is_string()) {
        if (!o.choices.empty()) fail("{}: unknown {} {} ({})", where, key, v.dump(), choices_text(o));
        fail("{}: '{}' must be a string, got {}", where, key, v.dump());
      }
      if (!o.choices.empty()) {
        std::string c = canonical_choice(o, v.get<std::string>());
        if (c.empty()) fail("{}: unknown {} {} ({})", where, key, v.dump(), choices_text(o));
        v = c;
      }
      return;
    case OptType::Globs: {
      bool ok = v.is_string() || v.is_array();
      if (v.is_array())
        for (const auto& e : v) ok = ok && e.is_string();
      if (!ok) fail("{}: '{}' must be a glob or a list of globs", where, key);
      return;
    }
    case OptType::Object: {
      std::vector<std::string> names;
      for (const auto& f : o.fields) names.push_back(f.name);
      if (!v.is_object()) fail("{}: '{}' must be a mapping ({})", where, key, fmt::join(names, ", "));
      for (auto it = v.begin(); it != v.end(); ++it) {
        const OptionSpec* f = find_in(o.fields, it.key());
        if (!f) fail("{}: unknown {} key '{}' ({})", where, key, it.key(), fmt::join(names, ", "));
        check_value(*f, it.value(), where, key + "." + it.key());
      }
      return;
    }
  }
  // Int and Float: the range.
  double d = v.get<double>();
  bool below = o.min && (o.min_open ? !(d > *o.min) : !(d >= *o.min));
  bool above = o.max && (o.max_open ? !(d < *o.max) : !(d <= *o.max));
  if (below || above || std::isnan(d)) fail("{}: {} {} is outside {}", where, key, num(d), range_text(o));
}

}  // namespace

const OptionSpec* PassSpec::find(const std::string& option) const { return find_in(options, option); }

OptionValues parse_options(const PassSpec& spec, const nlohmann::json& given) {
  if (!given.is_object()) fail("{}: options must be a mapping", spec.name);
  std::vector<std::string> names;
  for (const auto& o : spec.options) names.push_back(o.name);
  nlohmann::json j = given;  // normalised by check_value
  for (auto it = j.begin(); it != j.end(); ++it) {
    const OptionSpec* o = spec.find(it.key());
    if (!o) fail("{}: unknown option '{}' ({})", spec.name, it.key(), fmt::join(names, ", "));
    check_value(*o, it.value(), spec.name, it.key());
  }
  for (const auto& o : spec.options)
    if (o.required && !j.contains(o.name)) fail("{}: {} is required ({})", spec.name, o.name, o.help);
  return OptionValues(&spec.options, j, spec.name);
}

const OptionSpec& OptionValues::spec(const std::string& name) const {
  const OptionSpec* o = specs_ ? find_in(*specs_, name) : nullptr;
  if (!o) throw std::logic_error(where_ + ": no option '" + name + "' in the spec");  // a pass bug, not user input
  return *o;
}

const nlohmann::json& OptionValues::get(const std::string& name) const {
  const OptionSpec& o = spec(name);
  auto it = given_.find(name);
  return it != given_.end() ? *it : o.default_value;
}

double OptionValues::number(const std::string& name) const { return get(name).get<double>(); }
int64_t OptionValues::integer(const std::string& name) const { return get(name).get<int64_t>(); }
bool OptionValues::flag(const std::string& name) const { return has(name) && get(name).get<bool>(); }
std::string OptionValues::str(const std::string& name) const { return has(name) ? get(name).get<std::string>() : ""; }

std::vector<std::string> OptionValues::globs(const std::string& name) const {
  const auto& v = get(name);
  if (v.is_null()) return {};
  if (v.is_string()) return {v.get<std::string>()};
  return v.get<std::vector<std::string>>();
}

OptionValues OptionValues::object(const std::string& name) const {
  const OptionSpec& o = spec(name);
  return OptionValues(&o.fields, given(name) ? given_[name] : nlohmann::json::object(), where_ + ": " + name);
}

std::string flag_name(const OptionSpec& o) {
  std::string f = "--" + o.name;
  for (char& c : f)
    if (c == '_') c = '-';
  return f;
}

std::string help_line(const OptionSpec& o) {
  std::vector<std::string> notes;
  if (!o.choices.empty()) notes.push_back(fmt::format("{}", fmt::join(o.choices, " | ")));
  if (!o.aliases.empty()) {
    std::vector<std::string> a;
    for (const auto& [alias, c] : o.aliases) a.push_back(alias + "=" + c);
    notes.push_back(fmt::format("also {}", fmt::join(a, ", ")));
  }
  if (o.min || o.max) notes.push_back("in " + range_text(o));
  if (!o.default_value.is_null() && o.type != OptType::Bool)
    notes.push_back("default " + (o.default_value.is_string() ? o.default_value.get<std::string>()
                                  : o.default_value.is_number_float() ? num(o.default_value.get<double>())
                                                                        : o.default_value.dump()));
  if (notes.empty()) return o.help;
  return fmt::format("{} ({})", o.help, fmt::join(notes, "; "));
}

std::string label_for(const PassSpec& spec, const nlohmann::json& options) {
  std::string l = spec.name;
  if (!options.is_object()) return l;
  for (const auto& o : spec.options) {
    if (o.label.empty() || !options.contains(o.name)) continue;
    const auto& v = options[o.name];
    if (!o.label_omit.is_null() && v == o.label_omit) continue;
    if (v.is_string()) l += " " + fmt::format(fmt::runtime(o.label), v.get<std::string>());
    else if (v.is_number_integer()) l += " " + fmt::format(fmt::runtime(o.label), v.get<int64_t>());
    else if (v.is_number()) l += " " + fmt::format(fmt::runtime(o.label), v.get<double>());
  }
  return l;
}

}  // namespace joule
