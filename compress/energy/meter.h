// Energy meters behind one interface: open a window, close it, get joules with the source and an
// uncertainty. Measured sources (NVML, RAPL) and estimates (time x power) share it, and every reading says
// which it is. LibTorch-free: meters read sysfs, dlopen NVML, or read the process clock.
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace joule::energy {

struct Reading {
  double joules = 0;
  double uncertainty_rel = 0;  // model/instrument uncertainty as a fraction of `joules` (not statistics)
  double seconds = 0;          // wall time of the window
};

struct WindowInfo {
  double dram_bytes = 0;  // estimated bytes moved to/from DRAM in the window (used by estimates only)
};

class Meter {
 public:
  virtual ~Meter() = default;
  virtual std::string source() const = 0;  // "nvml", "rapl", "estimate:time-power"
  virtual bool measured() const = 0;        // false for estimates, always
  virtual std::string method() const = 0;   // one line: what is counted and how
  virtual double min_window_s() const = 0;  // shorter windows are lengthened by repeating the workload
  virtual void start() = 0;
  virtual Reading stop(const WindowInfo& w) = 0;
};

// CPU model, cores and the per-core active power the time x power estimate uses.
struct CpuProfile {
  std::string model;
  int cores = 1;
  double package_watts = 0;   // TDP of the package
  int package_cores = 1;      // cores the TDP is spread over
  double watts_per_core = 0;  // package_watts / package_cores, or --cpu-watts
  std::string source;         // where the figure comes from
};
CpuProfile detect_cpu_profile(const std::string& cpuinfo_path = "/proc/cpuinfo");

// Process CPU time x per-core active power, plus DRAM energy for the bytes the window moved. Attributes to
// the process only what it kept busy (no idle or other processes), which is what a compression saves.
std::unique_ptr<Meter> make_time_power_meter(double watts_per_core, double dram_j_per_byte);

// Linux powercap RAPL: package-* and dram zones (Intel and AMD), counter wrap-around handled.
// `available` is false with a one-line `why` when there are no zones or they cannot be read.
struct Probe {
  std::unique_ptr<Meter> meter;  // null when unavailable
  std::string why;               // reason when unavailable
};
Probe probe_rapl(const std::string& powercap_root = "/sys/class/powercap");

// NVIDIA GPU through NVML loaded with dlopen (no link-time dependency): the total-energy counter
// (mJ, Volta+), else power sampling every 10 ms integrated over the window.
Probe probe_nvml(int device = 0, const std::string& library = "libnvidia-ml.so.1");

// Student t quantile t(0.975, df): the half-width of a 95% confidence interval is t * sd / sqrt(n).
double t975(int df);

}  // namespace joule::energy
