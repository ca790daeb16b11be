// libFuzzer target: the recipe text parser (compress/io/recipe_text.h: YAML/JSON with the alias, depth, size and
// duplicate-key guards) on arbitrary text. A refusal is a joule::Error; anything else (a crash, unbounded
// recursion or memory, a YAML or JSON exception escaping) is a finding.
#include <cstdint>
#include <string>

#include "compress/base/error.h"
#include "compress/io/recipe_text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    nlohmann::json j = joule::io::recipe_text_json(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
    (void)j.dump();
  } catch (const joule::Error&) {
  }
  return 0;
}
