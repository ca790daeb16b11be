// The analyses passes share, computed on demand and kept until a pass changes the model (the role of LLVM's
// AnalysisManager): the structural graph analysis and the calibration statistics of the linear layers. The
// cache holds results only; what it needs to compute them (workload, calibration source) is passed in.
#pragma once
#include <torch/script.h>

#include <map>
#include <optional>
#include <string>
#include <utility>

#include "compress/analysis/calibration.h"
#include "compress/ir/graph.h"
#include "compress/ir/workload.h"

namespace joule {

// Calibration batches from files Joule cannot read by itself: text needs the model's tokenizer, so the model
// layer provides the source (models/job_hooks.h for sentence encoders). nullopt: not this source's kind of
// file; it is then read as a .safetensors tensor file.
class CalibrationSource {
 public:
  virtual ~CalibrationSource() = default;
  virtual std::optional<Batches> read(const std::string& file, int64_t samples) const = 0;
};

class AnalysisCache {
 public:
  // Structural analysis of `m` (no shape probe).
  const Analysis& analysis(const torch::jit::Module& m);
  // Linear-layer input statistics over the calibration batches of (file, samples): from `source` when it reads
  // the file, else the file as tensors matching `workload`.
  const CalibrationStats& calibration_stats(const torch::jit::Module& m, const Workload& workload,
                                            const CalibrationSource* source, const std::string& file, int64_t samples);
  // Called by the pipeline after every pass that reports a change.
  void invalidate();

  // How often each analysis was computed (tests check that a cached result is reused and a change recomputes).
  int analysis_runs() const { return analysis_runs_; }
  int calibration_runs() const { return calibration_runs_; }

 private:
  std::optional<Analysis> analysis_;
  std::map<std::pair<std::string, int64_t>, CalibrationStats> calibration_;
  int analysis_runs_ = 0, calibration_runs_ = 0;
};

}  // namespace joule
