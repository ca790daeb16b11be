// Magnitude pruning. Preconditions: an inference model (eval mode); weights in any floating dtype.
// Mutates parameters in place (structured pruning replaces them with smaller tensors); never touches
// embeddings (lookups save no compute). Pruned weights are exactly zero.
// With `pack` (2:4 only) the pass also rewrites forward: each pruned aten::linear over a float32 weight with
// K % 16 == 0 becomes joule::linear_sp24 (compress/ops/ops.h) over SP24 buffers of the top module and the float
// weight is emptied, as the quantize pass does; loading the result needs the joule_ops library.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compress/passes/options.h"
#include "compress/passes/pass.h"

namespace joule {

enum class PruneMethod { Unstructured, NM, Structured };

// Zhu & Gupta (2017) gradual schedule: s_t = s_f + (s_i - s_f) (1 - (t - t0) / (t1 - t0))^3 for t in
// [t0, t1], stepping every `frequency` steps; s_i before t0 and s_f after t1.
struct CubicSchedule {
  double initial_sparsity = 0.0;
  int64_t begin_step = 0, end_step = 0, frequency = 1;
  double at(int64_t step, double final_sparsity) const;
};

// The options of the prune pass (recipes, CLI flags, --help, report labels).
const PassSpec& prune_spec();

struct PruneOptions {
  PruneMethod method = PruneMethod::Unstructured;
  double sparsity = 0.5;  // target (final) fraction of zeros; implied by N:M for that method
  int n = 2, m = 4;
  bool global = false;  // unstructured: one magnitude threshold across all selected layers
  bool pack = false;    // 2:4: rewrite pruned linears into joule::linear_sp24 (kernels/formats/formats.h SP24)
  std::vector<std::string> include, exclude;  // globs over module paths ("blocks.*.a")
  bool has_schedule = false;
  CubicSchedule schedule;

  static PruneOptions from_json(const nlohmann::json& j);  // validates; one-line errors
  nlohmann::json to_json() const;
};

class PrunePass : public Pass {
 public:
  explicit PrunePass(PruneOptions o) : opts_(std::move(o)) {}
  const PassSpec& spec() const override { return prune_spec(); }
  nlohmann::json options() const override { return opts_.to_json(); }
  bool needs_workload() const override { return false; }
  PassResult run(torch::jit::Module& m, Context& ctx) override;

 private:
  PruneOptions opts_;
};

}  // namespace joule
