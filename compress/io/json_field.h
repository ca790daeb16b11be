// Typed reads of JSON fields from files Joule did not write (config.json, tokenizer_config.json, modules.json, an
// archive's joule/*.json): a wrong type is one line naming the file and the key ("'config.json': key
// 'num_hidden_layers': expected an integer, found a string"), not nlohmann's "[json.exception.type_error.302] type
// must be number, but is string". Integers are range-checked against the type read. LibTorch-free.
#pragma once
#include <nlohmann/json.hpp>

#include <limits>
#include <string>
#include <type_traits>

#include "compress/base/error.h"

namespace joule::io {

// "a string", "an object", ...: what a JSON value is, for messages.
inline std::string json_kind(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::array: return "a list";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::number_float: return "a number with a fraction";
    default: return "a number";
  }
}

// `v` as a T (bool, an integer type, double, std::string), or a one-line error "'<where>': key '<key>': expected ...".
template <typename T>
T json_as(const nlohmann::json& v, const std::string& key, const std::string& where) {
  auto wrong = [&](const char* expected) -> T {
    fail("'{}': key '{}': expected {}, found {}", where, printable(key), expected, json_kind(v));
  };
  if constexpr (std::is_same_v<T, bool>) {
    return v.is_boolean() ? v.get<bool>() : wrong("true or false");
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) return wrong("an integer");
    using L = std::numeric_limits<T>;
    const bool fits_i64 = uint64_t(L::max()) <= uint64_t(std::numeric_limits<int64_t>::max());
    const int64_t x = v.is_number_unsigned() ? 0 : v.get<int64_t>();
    if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(L::max())
                               : (x < int64_t(L::min()) || (fits_i64 && x > int64_t(L::max()))))
      fail("'{}': key '{}': {} is out of range ({} to {})", where, printable(key), v.dump(), L::min(), L::max());
    return v.get<T>();
  } else if constexpr (std::is_floating_point_v<T>) {
    return v.is_number() ? v.get<T>() : wrong("a number");
  } else {
    static_assert(std::is_same_v<T, std::string>, "json_as: bool, integers, floating point or std::string");
    return v.is_string() ? v.get<std::string>() : wrong("a string");
  }
}

// obj[key] as a T; a missing key (or a non-object `obj`) is an error naming both.
template <typename T>
T json_get(const nlohmann::json& obj, const std::string& key, const std::string& where) {
  if (!obj.is_object()) fail("'{}': expected a JSON object, found {}", where, json_kind(obj));
  auto it = obj.find(key);
  if (it == obj.end()) fail("'{}': key '{}' is missing", where, printable(key));
  return json_as<T>(*it, key, where);
}

// obj[key] as a T, `fallback` when the key is absent (or null, as HF configs write unset fields).
template <typename T>
T json_value(const nlohmann::json& obj, const std::string& key, T fallback, const std::string& where) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  return json_as<T>(*it, key, where);
}

}  // namespace joule::io
