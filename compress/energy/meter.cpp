#include "compress/energy/meter.h"

#include <dirent.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

namespace joule::energy {

static double process_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

static double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double t975(int df) {
  static const double t[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                             2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086};
  if (df < 1) return INFINITY;
  if (df <= 20) return t[df - 1];
  if (df <= 30) return 2.042;
  if (df <= 60) return 2.000;
  return 1.960;
}

// ---- CPU profile -------------------------------------------------------------------------------------

namespace {
struct KnownCpu {
  const char* match;  // substring of /proc/cpuinfo "model name"
  double watts;
  int cores;
  const char* source;
};
// Vendor TDPs. A model name that only says the family (as some VMs report) gets the family's common
// cloud SKU, labelled as such.
const KnownCpu kCpus[] = {
    {"EPYC 7B13", 240, 64, "AMD EPYC 7B13 (Milan): 240 W TDP, 64 cores (vendor spec)"},
    {"EPYC 7763", 280, 64, "AMD EPYC 7763 (Milan): 280 W TDP, 64 cores (vendor spec)"},
    {"EPYC 9654", 360, 96, "AMD EPYC 9654 (Genoa): 360 W TDP, 96 cores (vendor spec)"},
    {"EPYC 9B14", 360, 96, "AMD EPYC 9B14 (Genoa): 360 W TDP, 96 cores (vendor spec)"},
    {"Xeon(R) Platinum 8480", 350, 56, "Intel Xeon Platinum 8480+ (Sapphire Rapids): 350 W TDP, 56 cores (vendor spec)"},
    {"Xeon(R) Platinum 8375C", 300, 32, "Intel Xeon Platinum 8375C (Ice Lake): 300 W TDP, 32 cores (vendor spec)"},
    {"Xeon(R) CPU @ 2.20GHz", 205, 28, "Intel Xeon (Cascade Lake-class cloud SKU): 205 W, 28 cores (assumed)"},
    {"AMD EPYC", 240, 64, "AMD EPYC, SKU not reported by the VM: assumed 7B13-class, 240 W / 64 cores"},
    {"Xeon", 205, 28, "Intel Xeon, SKU not recognised: assumed 205 W / 28 cores"},
};
}  // namespace

CpuProfile detect_cpu_profile(const std::string& cpuinfo_path) {
  CpuProfile p;
  std::ifstream f(cpuinfo_path);
  std::string line;
  int processors = 0;
  while (std::getline(f, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    std::string val = line.substr(line.find_first_not_of(' ', colon + 1) == std::string::npos
                                      ? line.size()
                                      : line.find_first_not_of(' ', colon + 1));
    if (key == "processor") ++processors;
    if (key == "model name" && p.model.empty()) p.model = val;
  }
  p.cores = processors > 0 ? processors : 1;
  for (const auto& c : kCpus)
    if (p.model.find(c.match) != std::string::npos) {
      p.package_watts = c.watts, p.package_cores = c.cores, p.source = c.source;
      break;
    }
  if (p.package_watts == 0) {
    // Unknown CPU: a mid-range server core. Marked as a guess in the report; --cpu-watts overrides.
    p.package_watts = 200, p.package_cores = 32;
    p.source = "unknown CPU '" + p.model + "': assumed 200 W / 32 cores (override with --cpu-watts)";
  }
  p.watts_per_core = p.package_watts / p.package_cores;
  return p;
}

// ---- time x power estimate ------------------------------------------------------------------------

namespace {
class TimePowerMeter : public Meter {
 public:
  TimePowerMeter(double w, double dram) : watts_(w), dram_(dram) {}
  std::string source() const override { return "estimate:time-power"; }
  bool measured() const override { return false; }
  std::string method() const override {
    std::ostringstream s;
    s << "process CPU time x " << watts_ << " W per busy core + DRAM bytes x " << dram_ * 1e12 << " pJ/B";
    return s.str();
  }
  double min_window_s() const override { return 0.05; }  // the clock is ns-exact; windows just average noise
  void start() override { cpu0_ = process_cpu_s(), wall0_ = now_s(); }
  Reading stop(const WindowInfo& w) override {
    Reading r;
    r.seconds = now_s() - wall0_;
    r.joules = (process_cpu_s() - cpu0_) * watts_ + w.dram_bytes * dram_;
    r.uncertainty_rel = 0.5;  // TDP/cores is a coarse stand-in for real per-core power (docs/ENERGY.md)
    return r;
  }

 private:
  double watts_, dram_, cpu0_ = 0, wall0_ = 0;
};
}  // namespace

std::unique_ptr<Meter> make_time_power_meter(double watts_per_core, double dram_j_per_byte) {
  return std::make_unique<TimePowerMeter>(watts_per_core, dram_j_per_byte);
}

// ---- RAPL through powercap ------------------------------------------------------------------------

namespace {
struct Zone {
  std::string name, energy_path;
  double max_range_uj = 0;
  double start_uj = 0;
};

bool read_number(const std::string& path, double& out) {
  std::ifstream f(path);
  if (!f) return false;
  f >> out;
  return static_cast<bool>(f);
}

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

class RaplMeter : public Meter {
 public:
  explicit RaplMeter(std::vector<Zone> z) : zones_(std::move(z)) {}
  std::string source() const override { return "rapl"; }
  bool measured() const override { return true; }
  std::string method() const override {
    std::string names;
    for (const auto& z : zones_) names += (names.empty() ? "" : "+") + z.name;
    return "powercap RAPL counters (" + names + "), whole package: includes idle and other processes";
  }
  double min_window_s() const override { return 0.05; }  // counters update every ~1 ms
  void start() override {
    wall0_ = now_s();
    for (auto& z : zones_) read_number(z.energy_path, z.start_uj);
  }
  Reading stop(const WindowInfo&) override {
    Reading r;
    r.seconds = now_s() - wall0_;
    for (const auto& z : zones_) {
      double end = z.start_uj;
      read_number(z.energy_path, end);
      double d = end - z.start_uj;
      if (d < 0) d += z.max_range_uj;  // the counter wrapped once (windows are far shorter than a wrap)
      r.joules += d * 1e-6;
    }
    r.uncertainty_rel = 0.05;  // RAPL's modelled/measured error on recent parts (docs/ENERGY.md)
    return r;
  }

 private:
  std::vector<Zone> zones_;
  double wall0_ = 0;
};

void scan_zones(const std::string& dir, std::vector<Zone>& out, std::string& why) {
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.rfind("intel-rapl:", 0) == 0 || n.rfind("amd-rapl:", 0) == 0) names.push_back(n);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    std::string zdir = dir + "/" + n;
    std::string name = read_line(zdir + "/name");
    bool wanted = name.rfind("package", 0) == 0 || name == "dram";
    if (wanted) {
      Zone z{name + "(" + n + ")", zdir + "/energy_uj"};
      double probe = 0;
      if (!read_number(z.energy_path, probe)) {
        why = "cannot read " + z.energy_path + " (RAPL counters are root-only on recent kernels)";
      } else if (!read_number(zdir + "/max_energy_range_uj", z.max_range_uj) || z.max_range_uj <= 0) {
        why = "cannot read " + zdir + "/max_energy_range_uj";
      } else {
        out.push_back(z);
      }
    }
    if (name.rfind("package", 0) == 0) scan_zones(zdir, out, why);  // dram sits under the package zone
  }
}
}  // namespace

Probe probe_rapl(const std::string& powercap_root) {
  Probe p;
  std::vector<Zone> zones;
  std::string why;
  DIR* d = opendir(powercap_root.c_str());
  if (!d) {
    p.why = "no " + powercap_root + " (no RAPL exposed: VM or non-Linux)";
    return p;
  }
  closedir(d);
  scan_zones(powercap_root, zones, why);
  if (!why.empty()) {
    p.why = why;  // a zone we need is unreadable: partial sums would under-report
    return p;
  }
  if (zones.empty()) {
    p.why = "no package/dram RAPL zones under " + powercap_root;
    return p;
  }
  p.meter = std::make_unique<RaplMeter>(std::move(zones));
  return p;
}

// ---- NVML -----------------------------------------------------------------------------------------

namespace {
using nvmlDevice_t = void*;
using FnInit = int (*)();
using FnHandle = int (*)(unsigned, nvmlDevice_t*);
using FnEnergy = int (*)(nvmlDevice_t, unsigned long long*);
using FnPower = int (*)(nvmlDevice_t, unsigned*);

class NvmlMeter : public Meter {
 public:
  NvmlMeter(void* lib, nvmlDevice_t dev, FnEnergy energy, FnPower power)
      : lib_(lib), dev_(dev), energy_(energy), power_(power) {}
  ~NvmlMeter() override {
    stop_sampler();
    dlclose(lib_);
  }
  std::string source() const override { return "nvml"; }
  bool measured() const override { return true; }
  std::string method() const override {
    return energy_ ? "NVML total-energy counter (mJ, updates ~every 100 ms), whole GPU"
                   : "NVML power sampled every 10 ms, integrated (trapezoid), whole GPU";
  }
  double min_window_s() const override { return 1.0; }  // 10x the counter's ~100 ms update period
  void start() override {
    wall0_ = now_s();
    if (energy_) {
      energy_(dev_, &mj0_);
    } else {
      joules_ = 0;
      running_ = true;
      sampler_ = std::thread([this] { sample(); });
    }
  }
  Reading stop(const WindowInfo&) override {
    Reading r;
    r.seconds = now_s() - wall0_;
    if (energy_) {
      unsigned long long mj1 = mj0_;
      energy_(dev_, &mj1);
      r.joules = double(mj1 - mj0_) * 1e-3;
      r.uncertainty_rel = 0.05;  // NVML's stated power accuracy is +-5%
    } else {
      stop_sampler();
      std::lock_guard<std::mutex> g(mu_);
      r.joules = joules_;
      r.uncertainty_rel = 0.10;
    }
    return r;
  }

 private:
  void sample() {
    double last_t = now_s(), last_w = read_watts();
    while (running_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      double t = now_s(), w = read_watts();
      std::lock_guard<std::mutex> g(mu_);
      joules_ += 0.5 * (w + last_w) * (t - last_t);
      last_t = t, last_w = w;
    }
  }
  double read_watts() {
    unsigned mw = 0;
    power_(dev_, &mw);
    return mw * 1e-3;
  }
  void stop_sampler() {
    running_ = false;
    if (sampler_.joinable()) sampler_.join();
  }
  void* lib_;
  nvmlDevice_t dev_;
  FnEnergy energy_;
  FnPower power_;
  unsigned long long mj0_ = 0;
  double wall0_ = 0, joules_ = 0;
  std::atomic<bool> running_{false};
  std::thread sampler_;
  std::mutex mu_;
};
}  // namespace

Probe probe_nvml(int device, const std::string& library) {
  Probe p;
  void* lib = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    p.why = "NVML not found (" + library + "): no NVIDIA driver on this machine";
    return p;
  }
  auto init = reinterpret_cast<FnInit>(dlsym(lib, "nvmlInit_v2"));
  auto handle = reinterpret_cast<FnHandle>(dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
  auto energy = reinterpret_cast<FnEnergy>(dlsym(lib, "nvmlDeviceGetTotalEnergyConsumption"));
  auto power = reinterpret_cast<FnPower>(dlsym(lib, "nvmlDeviceGetPowerUsage"));
  nvmlDevice_t dev = nullptr;
  if (!init || !handle || !power || init() != 0 || handle(static_cast<unsigned>(device), &dev) != 0) {
    dlclose(lib);
    p.why = "NVML present but no usable GPU " + std::to_string(device);
    return p;
  }
  unsigned long long mj = 0;
  if (energy && energy(dev, &mj) != 0) energy = nullptr;  // pre-Volta: fall back to power sampling
  p.meter = std::make_unique<NvmlMeter>(lib, dev, energy, power);
  return p;
}

}  // namespace joule::energy
