// Runs passes in order on one model and measures it before the first pass and after every pass
// (compress/pipeline/measure.h), with the energy each pass itself cost. What to run and measure comes from a
// CompressionJob (compress/pipeline/job.h); this is the loop.
#pragma once
#include <torch/script.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "compress/energy/session.h"
#include "compress/passes/pass.h"
#include "compress/report/report.h"

namespace joule {

// Scores a model state on a task (STS-B for sentence encoders, models/job_hooks.h); measured before the first
// pass and after each, reported as Metrics::task.
class QualityProbe {
 public:
  virtual ~QualityProbe() = default;
  virtual nlohmann::json score(torch::jit::Module& m) = 0;
};

class Pipeline {
 public:
  void add(std::unique_ptr<Pass> p) { passes_.push_back(std::move(p)); }
  size_t size() const { return passes_.size(); }
  const Pass& pass(size_t i) const { return *passes_.at(i); }
  // Runs every pass on `m` in place. After a pass that reports a change, ctx's analyses are invalidated.
  // `session` null: no energy figures; `quality` null: no task metrics. A workload without inputs: sizes only
  // (Metrics::measured false), for passes that need no workload.
  Report run(torch::jit::Module& m, Context& ctx, nlohmann::json model_info, const energy::Session* session,
             QualityProbe* quality = nullptr);

 private:
  std::vector<std::unique_ptr<Pass>> passes_;
};

}  // namespace joule
