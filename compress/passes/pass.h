// A pass mutates a torch::jit::Module in place and returns what it changed. Passes are small classes with
// one run() method; the analyses they share (the graph analysis, later calibration statistics) live in the
// Context and are computed once, then invalidated when a pass reports a change.
#pragma once
#include <torch/script.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "compress/analysis/calibration.h"
#include "compress/ir/graph.h"
#include "compress/ir/workload.h"

namespace joule {

struct PassResult {
  bool changed = false;
  nlohmann::json stats = nlohmann::json::object();  // per-layer detail for the report
  std::vector<std::string> warnings;
};

class Context {
 public:
  Workload workload;
  int64_t step = 0;  // training step, for gradual sparsity schedules used inside fine-tuning loops
  // Task quality of a model state (e.g. STS-B Spearman), measured before the first pass and after each.
  std::function<nlohmann::json(torch::jit::Module&)> task_quality;

  // Calibration inputs: forward-input batches from a file. Front ends that can read text for their models set
  // this (the CLI does for sentence encoders); unset, or returning nothing, means a safetensors tensor file.
  std::function<Batches(const std::string& file, int64_t samples)> calibration_source;

  // Structural analysis of `m` (no shape probe), cached until invalidate().
  const Analysis& analysis(const torch::jit::Module& m);
  // Linear-layer input statistics over the calibration batches of (file, samples), cached until invalidate().
  const CalibrationStats& calibration_stats(const torch::jit::Module& m, const std::string& file, int64_t samples);
  void invalidate() {
    analysis_.reset();
    calibration_.clear();
  }

 private:
  std::optional<Analysis> analysis_;
  std::map<std::pair<std::string, int64_t>, CalibrationStats> calibration_;
};

class Pass {
 public:
  virtual ~Pass() = default;
  virtual std::string name() const = 0;
  virtual nlohmann::json options() const = 0;  // normalised options, as recorded in the report
  virtual PassResult run(torch::jit::Module& m, Context& ctx) = 0;
};

}  // namespace joule
