#include "compress/energy/carbon.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace joule::energy {

// Annual average carbon intensity of electricity generation, 2023, rounded to whole grams, from Ember's
// Yearly Electricity Data (Global Electricity Review 2024), which harmonises national statistics with
// IPCC AR5 lifecycle emission factors. Values move every year: prefer --grid-intensity with your
// supplier's or grid operator's figure when you have it.
const std::vector<GridIntensity>& grid_table() {
  static const std::string ember = "Ember, Yearly Electricity Data / Global Electricity Review 2024 (lifecycle, 2023)";
  static const std::vector<GridIntensity> t = {
      {"WORLD", 480, 2023, ember}, {"EU", 244, 2023, ember}, {"US", 369, 2023, ember},
      {"CN", 582, 2023, ember},    {"IN", 713, 2023, ember}, {"DE", 381, 2023, ember},
      {"FR", 56, 2023, ember},     {"GB", 238, 2023, ember}, {"PL", 662, 2023, ember},
      {"SE", 41, 2023, ember},     {"NO", 30, 2023, ember},  {"JP", 485, 2023, ember},
      {"CA", 170, 2023, ember},    {"BR", 98, 2023, ember},  {"AU", 549, 2023, ember},
  };
  return t;
}

GridIntensity world_average() { return grid_table().front(); }

GridIntensity grid_for_region(const std::string& region) {
  std::string up = region;
  std::transform(up.begin(), up.end(), up.begin(), [](unsigned char c) { return char(std::toupper(c)); });
  // ISO 3166-1 alpha-3 (what CodeCarbon's country_iso_code uses) and common spellings -> the table's alpha-2.
  static const std::pair<const char*, const char*> kAlias[] = {
      {"WLD", "WORLD"}, {"EU27", "EU"}, {"USA", "US"}, {"CHN", "CN"}, {"IND", "IN"}, {"DEU", "DE"},
      {"FRA", "FR"},    {"GBR", "GB"},  {"UK", "GB"},  {"POL", "PL"}, {"SWE", "SE"}, {"NOR", "NO"},
      {"JPN", "JP"},    {"CAN", "CA"},  {"BRA", "BR"}, {"AUS", "AU"}};
  for (const auto& [alias, code] : kAlias)
    if (up == alias) up = code;
  std::string codes;
  for (const auto& g : grid_table()) {
    if (g.region == up) return g;
    codes += (codes.empty() ? "" : ", ") + g.region;
  }
  throw std::invalid_argument("unknown region '" + region + "' (known: " + codes +
                              ", or their ISO alpha-3 codes USA, DEU, ...; or use --grid-intensity)");
}

GridIntensity grid_custom(double g_per_kwh) {
  if (!(g_per_kwh >= 0)) throw std::invalid_argument("grid intensity must be >= 0 gCO2e/kWh");
  return {"custom", g_per_kwh, 0, "given by the user (--grid-intensity)"};
}

std::optional<double> break_even_inferences(double pass_cost_j, double saved_j_per_inference) {
  if (!(saved_j_per_inference > 0)) return std::nullopt;
  return pass_cost_j / saved_j_per_inference;
}

}  // namespace joule::energy
