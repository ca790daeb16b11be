#include "compress/energy/session.h"

#include <algorithm>
#include <cmath>

namespace joule::energy {

Session::Session(const Settings& s) : settings_(s), cpu_(detect_cpu_profile()) {
  if (s.cpu_watts > 0) {
    cpu_.watts_per_core = s.cpu_watts;
    cpu_.source = "given by the user (--cpu-watts)";
  }
  if (s.gpu) {
    Probe nvml = probe_nvml();
    if (nvml.meter) meters_.push_back(std::move(nvml.meter));
    else unavailable_.push_back({"nvml", nvml.why});
  } else {
    unavailable_.push_back({"nvml", "model runs on the CPU: the GPU's energy would not be the model's"});
  }
  Probe rapl = probe_rapl(s.powercap_root);
  if (rapl.meter) meters_.push_back(std::move(rapl.meter));
  else unavailable_.push_back({"rapl", rapl.why});
  meters_.push_back(make_time_power_meter(cpu_.watts_per_core, s.op.dram_pj_per_byte * 1e-12));
}

double Session::window_s() const {
  double w = settings_.min_window_s;
  for (const auto& m : meters_) w = std::max(w, m->min_window_s());
  return w;
}

nlohmann::json Session::describe() const {
  auto unavailable = nlohmann::json::object();
  for (const auto& u : unavailable_) unavailable[u.source] = u.why;
  auto sources = nlohmann::json::array();
  for (const auto& m : meters_)
    sources.push_back({{"source", m->source()}, {"measured", m->measured()}, {"method", m->method()}});
  sources.push_back({{"source", "estimate:op-model"}, {"measured", false},
                     {"method", "MACs x energy per MAC + weight bytes x DRAM energy + activation bytes x SRAM energy"}});
  return {{"sources", sources},
          {"unavailable", unavailable},
          {"cpu", {{"model", cpu_.model}, {"watts_per_core", cpu_.watts_per_core}, {"source", cpu_.source}}},
          {"grid", {{"region", settings_.grid.region}, {"g_per_kwh", settings_.grid.g_per_kwh},
                    {"year", settings_.grid.year}, {"source", settings_.grid.source}}},
          {"op_model_constants", settings_.op.to_json()},
          {"windows", settings_.windows},
          {"window_s", window_s()}};
}

Stats mean_ci95(const std::vector<double>& x) {
  Stats s;
  s.n = static_cast<int>(x.size());
  if (x.empty()) return s;
  for (double v : x) s.mean += v;
  s.mean /= s.n;
  if (s.n < 2) return s;
  double ss = 0;
  for (double v : x) ss += (v - s.mean) * (v - s.mean);
  s.ci95 = t975(s.n - 1) * std::sqrt(ss / (s.n - 1)) / std::sqrt(double(s.n));
  return s;
}

}  // namespace joule::energy
