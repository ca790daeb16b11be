// The meters available on this machine, built once per run from the user's energy settings, plus the
// statistics that turn windows into a per-inference figure with a 95% confidence interval.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compress/energy/carbon.h"
#include "compress/energy/meter.h"
#include "compress/energy/op_model.h"

namespace joule::energy {

struct Settings {
  double cpu_watts = 0;  // per busy core; 0 = from the CPU profile
  GridIntensity grid = world_average();
  OpModelConstants op;
  int windows = 8;             // measurement windows per model state (the CI comes from their spread)
  double min_window_s = 0.1;   // each window lasts at least this long (and at least each meter's minimum)
  std::string powercap_root = "/sys/class/powercap";
  bool gpu = false;            // the model runs on a GPU: use NVML
};

struct Unavailable {
  std::string source, why;
};

class Session {
 public:
  explicit Session(const Settings& s);
  const Settings& settings() const { return settings_; }
  const CpuProfile& cpu() const { return cpu_; }
  // Measured meters first, then the time x power estimate: the first is the report's headline source.
  const std::vector<std::unique_ptr<Meter>>& meters() const { return meters_; }
  const std::vector<Unavailable>& unavailable() const { return unavailable_; }
  double window_s() const;  // the window length all meters accept
  nlohmann::json describe() const;

 private:
  Settings settings_;
  CpuProfile cpu_;
  std::vector<std::unique_ptr<Meter>> meters_;
  std::vector<Unavailable> unavailable_;
};

// When other processes are runnable on the machine right now (the running count of /proc/loadavg, less this
// process, the median of five samples 20 ms apart) and they, with the `threads` measurement threads, exceed the
// cores this process may run on: a warning saying latency and energy figures will not be the model's. On shared
// cores OpenMP's spinning barriers make a forward 10-100x slower (docs/EXECUTOR.md). Empty when the cores are free.
std::string busy_machine_warning(int threads);

struct Stats {
  double mean = 0, ci95 = 0;
  int n = 0;
};
Stats mean_ci95(const std::vector<double>& samples);

}  // namespace joule::energy
