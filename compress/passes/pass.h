// A pass mutates a torch::jit::Module in place and returns what it changed. Passes are small classes with one
// run() method and a spec (compress/passes/options.h) that declares their options; the analyses they share
// live in the Context's AnalysisCache and are computed once, then invalidated when a pass reports a change.
// Adding a pass: its .h/.cpp pair under compress/passes/ (algorithms under compress/algorithms/), one line in
// compress/passes/registry.cpp, its tests (docs/ARCHITECTURE.md).
#pragma once
#include <torch/script.h>

#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compress/analysis/cache.h"
#include "compress/ir/graph.h"
#include "compress/ir/workload.h"
#include "compress/passes/options.h"
#include "compress/report/report.h"
#include "compress/train/task.h"

namespace joule {

struct PassResult {
  bool changed = false;
  nlohmann::json stats = nlohmann::json::object();  // per-layer detail for the report
  std::vector<std::string> warnings;
  std::vector<Skipped> skipped;  // every weight op of the model the pass left as it was, with the reason
};

// What a pass sees: the run's inputs (workload, training step, where text calibration comes from) and the
// shared analyses.
class Context {
 public:
  Workload workload;
  int64_t step = 0;  // training step, for gradual sparsity schedules used inside fine-tuning loops
  std::shared_ptr<const CalibrationSource> calibration;  // null: calibration files are .safetensors tensors
  AnalysisCache cache;
  // Distillation: the job's input model as it was before the first pass (set when a pass needs_teacher()), and
  // what the model family adds (data, students, dev score; models/distill_task.h). Null: not available.
  std::optional<torch::jit::Module> teacher;
  std::shared_ptr<train::DistillTask> distill;

  const Analysis& analysis(const torch::jit::Module& m) { return cache.analysis(m); }
  const CalibrationStats& calibration_stats(const torch::jit::Module& m, const std::string& file, int64_t samples) {
    return cache.calibration_stats(m, workload, calibration.get(), file, samples);
  }
  void invalidate() { cache.invalidate(); }
};

class Pass {
 public:
  virtual ~Pass() = default;
  virtual const PassSpec& spec() const = 0;
  std::string name() const { return spec().name; }
  virtual nlohmann::json options() const = 0;  // normalised options, as recorded in the report
  std::string label() const { return label_for(spec(), options()); }  // "quantize w4 g128 gptq"
  // True when run() trains against the job's input model (Context::teacher), which is then kept from the start.
  virtual bool needs_teacher() const { return false; }
  // False when run() reads no workload (pruning, RTN quantization): the pass then runs on a model that carries
  // none, and the report says latency, fidelity and energy were not measured.
  virtual bool needs_workload() const { return true; }
  // Checks what can be checked before anything runs (the pipeline calls it for every pass before measuring the
  // input model), so bad options fail in a second, not after minutes of work. One-line errors.
  virtual void check(const torch::jit::Module& m, Context& ctx) const {}
  // May replace `m` with another module (a distilled student).
  virtual PassResult run(torch::jit::Module& m, Context& ctx) = 0;
};

}  // namespace joule
