// The pipeline report: plain structs (no LibTorch), serialised to JSON (schema in docs/REPORT.md), to a
// terminal table, and to an SVG plot. Version 1 keys are stable; new keys may be added, none removed.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace joule {

// Joules per inference from one source. `measured` is true only for hardware counters (nvml, rapl).
struct EnergyFigure {
  std::string source;  // "nvml", "rapl", "estimate:time-power", "estimate:op-model"
  bool measured = false;
  double j_per_inference = 0;
  double ci95_j = 0;           // half-width of the 95% confidence interval over windows (0 for the op model)
  double uncertainty_rel = 0;  // the method's own uncertainty, as a fraction (see docs/ENERGY.md)
  int windows = 0;
  int64_t inferences_per_window = 0;
  nlohmann::json detail;  // e.g. the op model's MAC/DRAM/SRAM split
};

// Energy spent running a pass itself (analysis, calibration, training), per source.
struct PassCost {
  std::string source;
  bool measured = false;
  double joules = 0;
  double seconds = 0;
  double padded_s = 0;  // idle time added to reach a measured meter's minimum window (its energy included)
};

// What one model looks like on the fixed workload.
struct Metrics {
  // Every weight whatever its storage: float parameters plus the logical [N, K] of each packed (int8, int4, 2:4)
  // linear, whose float weight is emptied.
  int64_t params = 0;
  int64_t nonzero_params = 0;  // of which non-zero (packed: codes that decode to 0)
  int64_t packed_params = 0;   // of which stored packed
  int64_t weight_bytes = 0;    // bytes of all parameters and buffers, in memory
  double bits_per_weight() const { return params ? 8.0 * double(weight_bytes) / double(params) : 0.0; }
  // False when there was no workload to run (a pass that needs none, on a model that carries none): then only
  // the size fields above are meaningful, and `not_measured` says why.
  bool measured = true;
  std::string not_measured;
  int64_t file_bytes = 0;      // bytes of the TorchScript archive as Joule saves it
  double latency_ms = 0;       // median over the timed repetitions
  double latency_p10_ms = 0, latency_p90_ms = 0;
  int reps = 0;
  double max_abs_err = 0;  // outputs vs the pipeline's input model on the same inputs
  double cosine = 1;
  double wall_ms_per_inference = 0;  // mean wall time over the timed repetitions
  double cpu_ms_per_inference = 0;   // process CPU time (all threads) per inference
  // What the CPU lowering changed (compress/ir/lower.h): float linears run as joule::linear_float (oneDNN), of them
  // those with GELU fused, attention nodes run as joule::attention_f32; the rest ran as the model has them.
  int float_linears_lowered = 0, gelu_fused = 0, attention_lowered = 0;
  std::string float_compute = "fp32";  // what those linears computed in: "fp32" or "bf16" (joule --bf16)
  // W4 layers run with int8 activations (joule --w4a8), and those run with float ones.
  int w4_int8_activations = 0, w4_float_activations = 0;
  std::vector<EnergyFigure> energy;  // headline source first (measured if any), op model last
  nlohmann::json task = nlohmann::json::object();  // task metrics, e.g. {"stsb_spearman": 82.0, ...}
};

// A weight a pass left as it was, and why ("no int8 conv kernel", "K % 4 != 0 (K = 3)"): in the pass's report
// ("skipped") and, compacted, in one warning line.
struct Skipped {
  std::string weight, reason;
  bool by_user = false;  // left out by the user's include/exclude: reported, not warned about
};
// One line naming every skipped weight that the user did not leave out, grouped by reason: "skipped 2 weights:
// conv1.weight, conv2.weight (no int8 conv kernel); ..."; at most `names` weights are named per reason, then
// "+N more". "" when none.
std::string skipped_summary(const std::vector<Skipped>& skipped, size_t names = 4);

struct PassRecord {
  std::string name;
  std::string label;  // "quantize w4 g128 gptq" (from the pass's option spec); empty: pass_label() derives one
  nlohmann::json options;
  Metrics before, after;
  nlohmann::json stats;  // what the pass changed (per layer)
  std::vector<std::string> warnings;
  std::vector<Skipped> skipped;
  double pass_wall_s = 0, pass_cpu_s = 0;  // the cost of running the pass itself
  std::vector<PassCost> pass_cost;
};

struct Report {
  nlohmann::json model;   // path, inputs, threads, ...
  nlohmann::json energy;  // sources, CPU profile, grid intensity, constants (energy::Session::describe)
  double grid_g_per_kwh = 0;
  std::vector<PassRecord> passes;

  nlohmann::json to_json() const;
  std::string table() const;  // the terminal rendering
  std::string svg() const;    // size, latency, energy and quality after each pass (report_plot.cpp)
};

nlohmann::json metrics_json(const Metrics& m);
// A warning when `after` is slower than `before` beyond the timing noise (after's p10 above before's p90 and the
// median at least 5% up), "" otherwise. `ratio` gets after / before of the medians (0 when not measured).
std::string slowdown_warning(const Metrics& before, const Metrics& after, double* ratio = nullptr);
// "2.00x smaller" / "1.10x larger" / "the same size" for a file going from `before` to `after` bytes.
std::string size_change(int64_t before, int64_t after);
std::string pass_label(const PassRecord& p);  // p.label, else the name and the method option: "prune 2:4"
nlohmann::json figure_json(const EnergyFigure& f);
const EnergyFigure* find_figure(const Metrics& m, const std::string& source);

}  // namespace joule
