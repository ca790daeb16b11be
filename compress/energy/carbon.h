// Grid carbon intensity, CO2e and break-even arithmetic. Intensities are annual averages of electricity
// generation (gCO2e/kWh) with their year and source; users pass their own with --grid-intensity.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace joule::energy {

struct GridIntensity {
  std::string region;  // "WORLD", "FR", ... (ISO 3166-1 alpha-2)
  double g_per_kwh = 0;
  int year = 0;
  std::string source;
};

const std::vector<GridIntensity>& grid_table();
GridIntensity world_average();
// `region` from the table (case-insensitive; alpha-3 codes such as "FRA" too); throws std::invalid_argument listing the codes otherwise.
GridIntensity grid_for_region(const std::string& region);
GridIntensity grid_custom(double g_per_kwh);

constexpr double kJoulesPerKwh = 3.6e6;

inline double co2e_g(double joules, double g_per_kwh) { return joules / kJoulesPerKwh * g_per_kwh; }
inline double co2e_g_per_million(double j_per_inference, double g_per_kwh) {
  return co2e_g(j_per_inference * 1e6, g_per_kwh);
}
// Inferences after which the pass's own energy is paid back; nullopt when the pass saves nothing.
std::optional<double> break_even_inferences(double pass_cost_j, double saved_j_per_inference);

}  // namespace joule::energy
