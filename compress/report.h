// The pipeline report: plain structs (no LibTorch), serialised to JSON (schema in docs/REPORT.md) and to a
// terminal table. Version 1 keys are stable; new keys may be added, none removed.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace joule {

// What one model looks like on the fixed workload.
struct Metrics {
  int64_t params = 0;          // elements of all parameters
  int64_t nonzero_params = 0;  // of which non-zero
  int64_t weight_bytes = 0;    // bytes of all parameters and buffers, in memory
  int64_t file_bytes = 0;      // bytes of the TorchScript archive as Joule saves it
  double latency_ms = 0;       // median over the timed repetitions
  double latency_p10_ms = 0, latency_p90_ms = 0;
  int reps = 0;
  double max_abs_err = 0;  // outputs vs the pipeline's input model on the same inputs
  double cosine = 1;
  double wall_ms_per_inference = 0;  // mean wall time over the timed repetitions
  double cpu_ms_per_inference = 0;   // process CPU time (all threads) per inference
};

struct PassRecord {
  std::string name;
  nlohmann::json options;
  Metrics before, after;
  nlohmann::json stats;  // what the pass changed (per layer)
  std::vector<std::string> warnings;
  double pass_wall_s = 0, pass_cpu_s = 0;  // the cost of running the pass itself
};

struct Report {
  nlohmann::json model;  // path, inputs, threads, ...
  std::vector<PassRecord> passes;

  nlohmann::json to_json() const;
  std::string table() const;  // the terminal rendering
};

nlohmann::json metrics_json(const Metrics& m);

}  // namespace joule
