// Magnitude pruning: the weights of smallest |w| carry the least signal, so they are set to zero. The pass
// selects the layers (globs, the schedule's sparsity at this step) and reports; the algorithms live in
// compress/algorithms/:
//  - unstructured (prune_magnitude.h): the k = floor(s * n) smallest |w| per layer, or across all selected
//    layers (global);
//  - N:M (prune_nm.h): in every M consecutive weights along the input (reduction) dimension keep the N largest;
//  - structured (prune_structured.h): remove whole output channels/neurons of smallest L2 norm, physically where
//    the graph analysis has a ShrinkChain, elsewhere by zeroing the rows.
// Selection is analysed on the weights as they are before any change, then applied.
// Packing (2:4, pack_sp24.h) uses the shared linear rewrite (compress/ir/rewrite.h), as the quantize pass does.
#include "compress/passes/prune.h"

#include <fmt/format.h>

#include <cstdio>

#include <cmath>
#include <set>

#include "compress/base/error.h"
#include "compress/ir/graph.h"
#include "compress/algorithms/globs.h"
#include "compress/algorithms/pack_sp24.h"
#include "compress/algorithms/prune_magnitude.h"
#include "compress/algorithms/prune_nm.h"
#include "compress/algorithms/prune_structured.h"

namespace joule {

double CubicSchedule::at(int64_t step, double final_sparsity) const {
  if (step <= begin_step) return initial_sparsity;
  if (step >= end_step) return final_sparsity;
  int64_t t = begin_step + (step - begin_step) / frequency * frequency;
  double frac = double(t - begin_step) / double(end_step - begin_step);
  return final_sparsity + (initial_sparsity - final_sparsity) * std::pow(1.0 - frac, 3);
}

const PassSpec& prune_spec() {
  static const PassSpec spec{
      "prune",
      "magnitude pruning: unstructured (layer/global), N:M (2:4), structured (channels)",
      {{.name = "method", .type = OptType::String, .help = "unstructured | structured | N:M (e.g. 2:4)",
        .default_value = "unstructured", .short_flag = "-m", .label = "{}"},
       {.name = "sparsity", .type = OptType::Float, .help = "fraction of weights (or channels) to remove; implied by N:M",
        .default_value = 0.5, .min = 0.0, .max = 1.0, .max_open = true, .short_flag = "-s"},
       {.name = "scope", .type = OptType::String, .help = "unstructured: one magnitude threshold per layer, or global",
        .default_value = "layer", .choices = {"layer", "global"}},
       {.name = "include", .type = OptType::Globs, .help = "only layers whose module path matches this glob (repeatable)"},
       {.name = "exclude", .type = OptType::Globs, .help = "skip layers whose module path matches this glob (repeatable)"},
       {.name = "schedule", .type = OptType::Object,
        .help = "gradual (cubic, Zhu & Gupta) sparsity over training steps; the step comes from --step",
        .cli = false,
        .fields = {{.name = "kind", .type = OptType::String, .help = "schedule shape", .default_value = "cubic",
                    .choices = {"cubic"}},
                   {.name = "initial_sparsity", .type = OptType::Float, .help = "sparsity up to begin_step",
                    .default_value = 0.0, .min = 0.0, .max = 1.0},
                   {.name = "begin_step", .type = OptType::Int, .help = "first step of the ramp", .default_value = 0},
                   {.name = "end_step", .type = OptType::Int, .help = "step at which sparsity reaches its target",
                    .default_value = 0},
                   {.name = "frequency", .type = OptType::Int, .help = "steps between sparsity updates",
                    .default_value = 1, .min = 1.0}}},
       {.name = "pack", .type = OptType::Bool,
        .help = "2:4: rewrite pruned linears into joule::linear_sp24 (values + metadata, the sparse kernels' format); "
                "loading the output needs libjoule_ops",
        .default_value = false}}};
  return spec;
}

PruneOptions PruneOptions::from_json(const nlohmann::json& j) {
  OptionValues v = parse_options(prune_spec(), j);
  PruneOptions o;
  std::string s = v.str("method");
  int n = 0, m = 0;
  char tail = 0;
  if (s == "unstructured") {
    o.method = PruneMethod::Unstructured;
  } else if (s == "structured") {
    o.method = PruneMethod::Structured;
  } else if (std::sscanf(s.c_str(), "%d:%d%c", &n, &m, &tail) == 2) {
    if (n < 1 || m > 32 || n >= m) fail("prune: N:M '{}' needs 1 <= N < M <= 32", s);
    o.method = PruneMethod::NM, o.n = n, o.m = m;
  } else {
    fail("prune: unknown method '{}' (unstructured, structured, or N:M such as 2:4)", s);
  }
  o.sparsity = v.number("sparsity");
  o.global = v.str("scope") == "global";
  o.pack = v.flag("pack");
  o.include = v.globs("include");
  o.exclude = v.globs("exclude");
  o.has_schedule = v.given("schedule");
  if (o.has_schedule) {
    OptionValues sv = v.object("schedule");
    o.schedule.initial_sparsity = sv.number("initial_sparsity");
    o.schedule.begin_step = sv.integer("begin_step");
    o.schedule.end_step = sv.integer("end_step");
    o.schedule.frequency = sv.integer("frequency");
  }
  if (o.method == PruneMethod::NM) {
    double implied = 1.0 - double(o.n) / o.m;
    if (v.given("sparsity") && std::fabs(o.sparsity - implied) > 1e-9)
      fail("prune: sparsity {} contradicts N:M {}:{} (which implies {})", o.sparsity, o.n, o.m, implied);
    if (o.has_schedule) fail("prune: a gradual schedule applies to unstructured/structured pruning, not N:M");
    o.sparsity = implied;
  }
  if (o.pack && !(o.method == PruneMethod::NM && o.n == 2 && o.m == 4))
    fail("prune: pack needs method 2:4 (the format of the sparse kernels)");
  if (v.given("scope") && o.global && o.method != PruneMethod::Unstructured)
    fail("prune: scope 'global' applies to unstructured pruning only");
  if (o.has_schedule) {
    const auto& sc = o.schedule;
    if (sc.end_step <= sc.begin_step) fail("prune: schedule needs end_step > begin_step and frequency >= 1");
    if (!(sc.initial_sparsity <= o.sparsity)) fail("prune: schedule initial_sparsity must be in [0, sparsity]");
  }
  return o;
}

nlohmann::json PruneOptions::to_json() const {
  nlohmann::json j;
  j["method"] = method == PruneMethod::NM ? fmt::format("{}:{}", n, m)
                : method == PruneMethod::Structured ? "structured" : "unstructured";
  j["sparsity"] = sparsity;
  if (method == PruneMethod::Unstructured) j["scope"] = global ? "global" : "layer";
  if (pack) j["pack"] = true;
  if (!include.empty()) j["include"] = include;
  if (!exclude.empty()) j["exclude"] = exclude;
  if (has_schedule)
    j["schedule"] = {{"kind", "cubic"}, {"initial_sparsity", schedule.initial_sparsity},
                     {"begin_step", schedule.begin_step}, {"end_step", schedule.end_step},
                     {"frequency", schedule.frequency}};
  return j;
}

namespace {

// The prunable layers (one entry per weight) that the globs select and the method can take. Every other weight
// op goes to `skipped` with the reason; a layer the method cannot take is an error only when an include names it.
std::vector<size_t> select_targets(const Analysis& a, const PruneOptions& o, std::vector<Skipped>& skipped) {
  std::vector<size_t> all;
  std::set<std::string> seen;
  for (size_t i = 0; i < a.ops.size(); ++i) {
    const WeightOp& op = a.ops[i];
    if (!seen.insert(op.weight).second) continue;
    if (op.kind == OpKind::Embedding) skipped.push_back({op.weight, "embedding: a lookup, no multiplies to save"});
    else if (!op.quant.empty()) skipped.push_back({op.weight, fmt::format("already packed ({})", op.quant)});
    else all.push_back(i);
  }
  if (all.empty()) fail("prune: the model has no prunable layer (linear, conv, matmul with a weight)");
  for (const auto& g : o.include) {
    bool hit = false;
    for (size_t i : all) hit = hit || glob_match(g, a.ops[i].module);
    if (!hit) {
      std::string names;
      for (size_t k = 0; k < all.size() && k < 6; ++k) names += (k ? ", " : "") + a.ops[all[k]].module;
      fail("prune: include glob '{}' matches no prunable layer (layers: {}{})", g, names, all.size() > 6 ? ", ..." : "");
    }
  }
  std::vector<size_t> out;
  for (size_t i : all) {
    const WeightOp& op = a.ops[i];
    if (!selected(op.module, o.include, o.exclude)) {
      skipped.push_back({op.weight, "not selected by include/exclude", true});
      continue;
    }
    // Why the method cannot take this layer, or "".
    std::string cannot;
    if (o.method == PruneMethod::NM && op.weight_shape[op.in_dim] % o.m != 0)
      cannot = fmt::format("K % {} != 0 (K = {})", o.m, op.weight_shape[op.in_dim]);
    if (o.method == PruneMethod::Structured) {
      if (op.kind == OpKind::MatMul || op.kind == OpKind::ConvTranspose || op.derived || op.groups != 1)
        cannot = "structured pruning handles plain linear/conv weights (not matmul, transposed, grouped or sliced)";
      else if (op.output && !named(op.module, o.include))
        cannot = "output layer: its output features are the model's; name it in include to prune it";
    }
    if (cannot.empty()) {
      out.push_back(i);
    } else if (named(op.module, o.include)) {
      fail("prune: include names '{}', which {} cannot take: {}", op.module, o.method == PruneMethod::NM ?
           fmt::format("{}:{}", o.n, o.m) : "structured pruning", cannot);
    } else {
      skipped.push_back({op.weight, cannot});
    }
  }
  if (out.empty()) fail("prune: include/exclude and the method leave no layer to prune");
  return out;
}

int64_t zeros(const torch::jit::Module& m, const Analysis& a, const std::vector<size_t>& targets) {
  int64_t n = 0;
  for (size_t i : targets) n += count_zeros(get_tensor(m, a.ops[i].weight));
  return n;
}

nlohmann::json layer_stats(const Analysis& a, const PrunedLayer& p) {
  const WeightOp& op = a.ops[p.op];
  nlohmann::json j = {{"module", op.module},          {"op", op_kind_name(op.kind)}, {"action", p.action},
                      {"shape_before", p.shape_before}, {"shape_after", p.shape_after},
                      {"sparsity_after", p.sparsity_after}};
  if (!p.consumer.empty()) j["consumer"] = p.consumer;
  if (!p.batch_norm.empty()) j["batch_norm"] = p.batch_norm;
  return j;
}

}  // namespace

PassResult PrunePass::run(torch::jit::Module& m, Context& ctx) {
  const Analysis& a = ctx.analysis(m);
  PassResult r;
  std::vector<size_t> targets = select_targets(a, opts_, r.skipped);
  double s = opts_.has_schedule ? opts_.schedule.at(ctx.step, opts_.sparsity) : opts_.sparsity;
  torch::NoGradGuard no_grad;
  r.stats["target_sparsity"] = s;
  // Magnitude ranks NaN arbitrarily and keeps Inf: a non-finite weight would come out silently wrong.
  for (size_t i : targets)
    if (!at::isfinite(get_tensor(m, a.ops[i].weight)).all().item<bool>())
      fail("prune: weight '{}' has NaN or Inf values; Joule does not prune non-finite weights (exclude the layer "
           "with --exclude, or repair the checkpoint)", a.ops[i].weight);
  const int64_t zero_before = zeros(m, a, targets);

  std::vector<PrunedLayer> pruned;
  switch (opts_.method) {
    case PruneMethod::Unstructured:
      pruned = prune_magnitude(m, a, targets, s, opts_.global);
      break;
    case PruneMethod::NM:
      pruned = prune_nm(m, a, targets, opts_.n, opts_.m);
      break;
    case PruneMethod::Structured: {
      StructuredPruning sp = prune_structured(m, a, targets, s);
      pruned = std::move(sp.layers);
      r.warnings = std::move(sp.warnings);
      r.stats["shrunk_layers"] = sp.shrunk;
      r.changed = sp.shrunk > 0;
      break;
    }
  }
  auto& layers = r.stats["layers"] = nlohmann::json::array();
  for (const auto& p : pruned) layers.push_back(layer_stats(a, p));
  const int64_t zero_after = zeros(m, a, targets);
  r.stats["zeroed_weights"] = zero_after - zero_before;
  r.changed = r.changed || zero_after != zero_before;
  if (opts_.pack) {
    std::set<std::string> weights;
    for (size_t i : targets)
      if (a.ops[i].kind == OpKind::Linear) weights.insert(a.ops[i].weight);
    Sp24Packing p = pack_sp24(m, weights);  // after the statistics: packing empties the weights they count
    r.warnings.insert(r.warnings.end(), p.warnings.begin(), p.warnings.end());
    if (!p.packed.empty()) {
      r.stats["packed_layers"] = p.packed.size();
      r.stats["packed_weight_bytes_before"] = p.bytes_before;
      r.stats["packed_weight_bytes_after"] = p.bytes_after;
      r.changed = true;
    }
  }
  return r;
}

}  // namespace joule
