// A pass mutates a torch::jit::Module in place and returns what it changed. Passes are small classes with
// one run() method; the analyses they share (the graph analysis, later calibration statistics) live in the
// Context and are computed once, then invalidated when a pass reports a change.
#pragma once
#include <torch/script.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "compress/graph.h"
#include "compress/workload.h"

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

  // Structural analysis of `m` (no shape probe), cached until invalidate().
  const Analysis& analysis(const torch::jit::Module& m);
  void invalidate() { analysis_.reset(); }

 private:
  std::optional<Analysis> analysis_;
};

class Pass {
 public:
  virtual ~Pass() = default;
  virtual std::string name() const = 0;
  virtual nlohmann::json options() const = 0;  // normalised options, as recorded in the report
  virtual PassResult run(torch::jit::Module& m, Context& ctx) = 0;
};

}  // namespace joule
