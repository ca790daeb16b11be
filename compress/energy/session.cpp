#include "compress/energy/session.h"

#include <fmt/format.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <thread>

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

std::string busy_machine_warning(int threads) {
  std::vector<int> others;
  for (int i = 0; i < 5; ++i) {
    if (i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream f("/proc/loadavg");
    double l1, l5, l15;
    int running = 0, total = 0;
    char slash = 0;
    if (!(f >> l1 >> l5 >> l15 >> running >> slash >> total) || slash != '/') return "";  // not Linux: no check
    others.push_back(std::max(0, running - 1));
  }
  std::sort(others.begin(), others.end());
  const int busy = others[others.size() / 2];
  cpu_set_t set;
  int cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : int(std::thread::hardware_concurrency());
  if (busy == 0 || busy + threads <= cores) return "";
  return fmt::format("the machine is busy: {} other process{} running on {} core{} this run uses with {} thread{}; "
                     "latency and energy figures will not be the model's alone (docs/EXECUTOR.md)",
                     busy, busy == 1 ? " is" : "es are", cores, cores == 1 ? "" : "s", threads, threads == 1 ? "" : "s");
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
