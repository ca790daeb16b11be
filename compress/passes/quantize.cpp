// Quantization: find the aten::linear nodes of the inlined forward that read a weight parameter directly and
// match the globs (compress/ir/rewrite.h), pack each such weight once with its scheme's algorithm
// (compress/algorithms/quant_w8a8.h: RTN per channel, static scale, SmoothQuant; quant_w4.h: RTN or GPTQ),
// then rewrite: the packed tensors become buffers of the top module, the nodes become the joule:: op, and the
// float weight is emptied. A weight read by more than one linear node is quantized once and shared; one that
// other ops read too stays float.
#include "compress/passes/quantize.h"

#include <fmt/ranges.h>

#include <optional>
#include <set>

#include "compress/algorithms/globs.h"
#include "compress/algorithms/quant_w4.h"
#include "compress/algorithms/quant_w8a8.h"
#include "compress/analysis/calibration.h"
#include "compress/base/error.h"
#include "compress/base/progress.h"
#include "compress/ir/graph.h"
#include "compress/ir/rewrite.h"
#include "compress/ops/schema.h"
#include "kernels/formats/formats.h"

namespace joule {

namespace {

// The linear sites to quantize: those whose module the globs select, less the weights that other ops read too
// (the float weight is emptied after packing, and a fused kernel such as _transformer_encoder_layer_fwd, or a
// slice, needs it) and, for W4, those with fewer input features than a group. Every weight op of the model that
// is not chosen goes to `skipped` with the reason; one-line errors when nothing is left, or when an include names
// a layer the scheme cannot take.
std::vector<const LinearSite*> select_sites(const LinearSites& ls, const Analysis& a, const torch::jit::Module& m,
                                            const QuantizeOptions& o, std::vector<Skipped>& skipped) {
  const bool w4 = o.scheme == QuantScheme::W4;
  std::vector<const LinearSite*> chosen;
  std::string shared;
  std::set<std::string> decided;
  for (const auto& s : ls.sites) {
    decided.insert(s.weight);
    std::string cannot;
    if (!s.exclusive) cannot = "read by ops other than aten::linear (a fused kernel or a slice needs it in float)";
    const at::Tensor w = get_tensor(m, s.weight);
    if (cannot.empty() && w4 && w.dim() == 2 && w.size(1) < o.group)
      cannot = fmt::format("K < group (K = {}, group {})", w.size(1), o.group);
    if (!selected(s.module, o.include, o.exclude)) {
      skipped.push_back({s.weight, "not selected by include/exclude", true});
    } else if (cannot.empty()) {
      chosen.push_back(&s);
    } else if (named(s.module, o.include)) {
      fail("quantize: include names '{}', which {} cannot take: {}", s.module, w4 ? "w4" : "w8a8", cannot);
    } else {
      if (!s.exclusive && shared.empty()) shared = s.weight;
      skipped.push_back({s.weight, cannot});
    }
  }
  // The weight ops that are not plain linears: no packed kernel takes them.
  const std::string scheme = w4 ? "4-bit" : "int8";
  for (const auto& op : a.ops) {
    if (!decided.insert(op.weight).second) continue;
    std::string why;
    switch (op.kind) {
      case OpKind::Conv1d:
      case OpKind::Conv2d:
      case OpKind::Conv3d:
      case OpKind::ConvTranspose: why = fmt::format("{}: no {} conv kernel", op_kind_name(op.kind), scheme); break;
      case OpKind::MatMul: why = fmt::format("matmul: no {} matmul kernel (only aten::linear is rewritten)", scheme); break;
      case OpKind::Embedding: why = "embedding: a lookup, no multiplies to quantize"; break;
      case OpKind::Linear:
        why = !op.quant.empty() ? fmt::format("already packed ({})", op.quant)
                                : "a slice of the weight reaches aten::linear (a packed projection): stays float";
        break;
    }
    skipped.push_back({op.weight, why});
  }
  for (const auto& p : o.include) {
    bool hit = false;
    for (const auto& s : ls.sites) hit = hit || glob_match(p, s.module);
    if (!hit) fail("quantize: include glob '{}' matches no linear layer", p);
  }
  if (chosen.empty() && !shared.empty())
    fail("quantize: every selected linear weight is also read by other ops (e.g. a fused encoder layer such as "
         "'{}'), which need it in float", shared);
  if (chosen.empty()) fail("quantize: no linear layer to quantize{}", skipped.empty() ? "" : " (" + skipped_summary(skipped, 3) + ")");
  return chosen;
}

// The packed buffers of one site's weight under the options' scheme; per-layer facts go to `layer`.
PackedWeight pack_weight(const torch::jit::Module& m, const LinearSite& s, const CalibrationStats* stats,
                         const QuantizeOptions& o, nlohmann::json& layer, std::vector<std::string>& warnings) {
  at::Tensor w = get_tensor(m, s.weight);
  if (w.scalar_type() != at::kFloat || w.dim() != 2 || w.numel() == 0)
    fail("quantize: '{}' is {} {}; only float32 [N, K] linear weights are supported", s.weight,
         c10::toString(w.scalar_type()), fmt::format("[{}]", fmt::join(w.sizes(), ", ")));
  at::Tensor wc = w.detach().contiguous();
  const int64_t K = wc.size(1);
  const LinearStats* st = nullptr;
  if (stats) {
    auto it = stats->find(s.weight);
    if (it != stats->end() && it->second.rows > 0) st = &it->second;
    else warnings.push_back(fmt::format("'{}' saw no calibration input: quantized with rtn and dynamic "
                                        "activations", s.module));
  }
  layer = {{"module", s.module}, {"shape", w.sizes().vec()}};
  PackedWeight p;
  if (o.scheme == QuantScheme::W8A8) {
    W8A8Packing q = pack_w8a8(wc, st ? st->absmax : at::Tensor(), {o.static_act, o.smooth}, s.module, warnings);
    if (q.x_scale) layer["x_scale"] = *q.x_scale;
    p = std::move(q.packed);
  } else {
    if (o.group > K) fail("quantize: group {} exceeds the input features of '{}' (K = {})", o.group, s.weight, K);  // select_sites skips these
    W4Packing q = pack_w4(wc, st ? st->xtx : at::Tensor(), st ? st->rows : 0,
                          {o.group, o.method == QuantMethod::GPTQ, o.gptq});
    if (q.output_error_gptq)
      layer["output_error_rtn"] = *q.output_error_rtn, layer["output_error_gptq"] = *q.output_error_gptq;
    p = std::move(q.packed);
  }
  p.weight = s.weight;
  layer["bytes_before"] = w.nbytes(), layer["bytes_after"] = p.bytes();
  return p;
}

}  // namespace

const PassSpec& quantize_spec() {
  static const PassSpec spec{
      "quantize",
      "weight quantization of linear layers: w8a8 (int8, dynamic per-token activations), w4 (group-wise)",
      {{.name = "scheme", .type = OptType::String, .help = "packed format of the quantized linears",
        .default_value = "w8a8", .choices = {"w8a8", "w4"},
        // The names llm-compressor, compressed-tensors and torchao users know. Joule's w4 has an asymmetric
        // zero point per group and float activations: W4A16_ASYM; W4A16 (symmetric there) maps to it too.
        .aliases = {{"int8", "w8a8"}, {"W8A8_INT8", "w8a8"}, {"int8_dynamic", "w8a8"}, {"W4A16", "w4"},
                    {"W4A16_ASYM", "w4"}, {"int4", "w4"}, {"int4_weight_only", "w4"}},
        .label = "{}"},
       {.name = "group", .type = OptType::Int, .help = "w4: input features per scale/zero group (power of two)",
        .default_value = 128, .label = "g{}"},
       {.name = "method", .type = OptType::String, .help = "rtn (round to nearest) | gptq (w4, needs calib)",
        .default_value = "rtn", .choices = {"rtn", "gptq"}, .label = "{}", .label_omit = "rtn"},
       {.name = "act", .type = OptType::String,
        .help = "w8a8 activations: dynamic (per token) | static (one calibrated scale per layer)",
        .default_value = "dynamic", .choices = {"dynamic", "static"}, .label = "{}", .label_omit = "dynamic"},
       {.name = "smooth", .type = OptType::Float, .help = "w8a8: SmoothQuant migration strength alpha (needs calib)",
        .default_value = 0.0, .min = 0.0, .max = 1.0, .label = "sq{:g}"},
       {.name = "calib", .type = OptType::String, .path = true,
        .help = "calibration data: text for sentence encoders (STS-B .tsv, or one text per line), else a "
                ".safetensors file with one tensor per forward argument"},
       {.name = "calib_samples", .type = OptType::Int, .help = "calibration samples (texts or tensor rows) to use",
        .default_value = 512, .min = 1.0},
       {.name = "act_order", .type = OptType::Bool, .help = "gptq: quantize columns in decreasing Hessian-diagonal order",
        .default_value = false},
       {.name = "damp", .type = OptType::Float, .help = "gptq: dampening, fraction of the mean Hessian diagonal",
        .default_value = 0.01, .min = 0.0, .max = 1.0, .min_open = true},
       {.name = "include", .type = OptType::Globs, .help = "only layers whose module path matches this glob (repeatable)"},
       {.name = "exclude", .type = OptType::Globs, .help = "skip layers whose module path matches this glob (repeatable)"}}};
  return spec;
}

QuantizeOptions QuantizeOptions::from_json(const nlohmann::json& j) {
  OptionValues v = parse_options(quantize_spec(), j);
  QuantizeOptions o;
  o.scheme = v.str("scheme") == "w4" ? QuantScheme::W4 : QuantScheme::W8A8;
  o.group = v.integer("group");
  o.method = v.str("method") == "gptq" ? QuantMethod::GPTQ : QuantMethod::RTN;
  o.static_act = v.str("act") == "static";
  o.smooth = v.number("smooth");
  o.calib = v.str("calib");
  if (v.given("calib") && o.calib.empty()) fail("quantize: calib must be a file path");
  o.calib_samples = v.integer("calib_samples");
  o.gptq.act_order = v.flag("act_order");
  o.gptq.damp = v.number("damp");
  o.include = v.globs("include");
  o.exclude = v.globs("exclude");
  const bool w4 = o.scheme == QuantScheme::W4;
  if (w4 && !formats::w4_group_valid(o.group)) fail("quantize: group {} is not a power of two >= 2", o.group);
  if (!w4 && o.method == QuantMethod::GPTQ) fail("quantize: method gptq applies to scheme w4 (w8a8 uses rtn)");
  if (w4 && (o.static_act || o.smooth > 0)) fail("quantize: act and smooth apply to scheme w8a8 (w4 keeps float activations)");
  if (o.method != QuantMethod::GPTQ && (v.given("act_order") || v.given("damp")))
    fail("quantize: act_order and damp apply to method gptq");
  if (o.needs_calibration() && o.calib.empty())
    fail("quantize: {} needs calibration data (calib: FILE)",
         o.method == QuantMethod::GPTQ ? "method gptq" : o.static_act ? "act static" : "smooth");
  if (v.given("calib_samples") && o.calib.empty()) fail("quantize: calib_samples needs calib: FILE");
  if (!o.needs_calibration() && !o.calib.empty())
    fail("quantize: calib is only used by method gptq, act static or smooth");
  return o;
}

nlohmann::json QuantizeOptions::to_json() const {
  nlohmann::json j = {{"scheme", scheme == QuantScheme::W8A8 ? "w8a8" : "w4"},
                      {"method", method == QuantMethod::GPTQ ? "gptq" : "rtn"}};
  if (scheme == QuantScheme::W4) j["group"] = group;
  if (method == QuantMethod::GPTQ) j["act_order"] = gptq.act_order, j["damp"] = gptq.damp;
  if (scheme == QuantScheme::W8A8) j["act"] = static_act ? "static" : "dynamic";
  if (smooth > 0) j["smooth"] = smooth;
  if (!calib.empty()) j["calib"] = calib, j["calib_samples"] = calib_samples;
  if (!include.empty()) j["include"] = include;
  if (!exclude.empty()) j["exclude"] = exclude;
  return j;
}

PassResult QuantizePass::run(torch::jit::Module& m, Context& ctx) {
  LinearSites ls = find_linear_sites(m);
  PassResult r;
  const std::vector<const LinearSite*> sites = select_sites(ls, ctx.analysis(m), m, opts_, r.skipped);

  // Calibration statistics come from the model as it is now, before any layer is rewritten.
  const CalibrationStats* stats = opts_.needs_calibration() ? &ctx.calibration_stats(m, opts_.calib, opts_.calib_samples) : nullptr;

  auto& layers = r.stats["layers"] = nlohmann::json::array();
  double err_rtn = 0, err_gptq = 0;
  int64_t bytes_before = 0, bytes_after = 0;
  std::vector<PackedWeight> packed;
  torch::NoGradGuard no_grad;
  std::optional<Progress> bar;  // GPTQ takes seconds per large layer
  if (stats && opts_.method == QuantMethod::GPTQ) bar.emplace("gptq", static_cast<int64_t>(sites.size()));
  for (const LinearSite* s : sites) {
    // NaN or Inf would be hidden by quantization (an Inf sets a scale that wipes its whole group): refuse.
    if (!at::isfinite(get_tensor(m, s->weight)).all().item<bool>())
      fail("quantize: weight '{}' has NaN or Inf values; Joule does not quantize non-finite weights (exclude the "
           "layer with --exclude, or repair the checkpoint)", s->weight);
    nlohmann::json layer;
    packed.push_back(pack_weight(m, *s, stats, opts_, layer, r.warnings));
    // Scales and smoothing factors come from calibration statistics too: NaN or Inf input data shows up here.
    for (const auto& [arg, t] : packed.back().buffers)
      if (at::isFloatingType(t.scalar_type()) && !at::isfinite(t).all().item<bool>())
        fail("quantize: layer '{}': its {} is not finite (NaN or Inf in the calibration data?)", s->weight, arg);
    if (layer.contains("output_error_gptq"))
      err_rtn += layer["output_error_rtn"].get<double>(), err_gptq += layer["output_error_gptq"].get<double>();
    bytes_before += static_cast<int64_t>(get_tensor(m, s->weight).nbytes());
    bytes_after += packed.back().bytes();
    layers.push_back(layer);
    if (bar) bar->tick();
  }
  rewrite_linears(m, std::move(ls), opts_.scheme == QuantScheme::W8A8 ? ops::linear_w8a8() : ops::linear_w4(), packed);
  r.stats["quantized_layers"] = packed.size();
  r.stats["weight_bytes_before"] = bytes_before;
  r.stats["weight_bytes_after"] = bytes_after;
  r.stats["weight_bytes_ratio"] = bytes_before ? double(bytes_after) / double(bytes_before) : 0.0;
  if (err_rtn > 0) {
    // GPTQ's objective summed over layers, against RTN on the same calibration data (lower is better).
    r.stats["output_error_rtn"] = err_rtn;
    r.stats["output_error_gptq"] = err_gptq;
    r.stats["gptq_error_ratio"] = err_gptq / err_rtn;
  }
  r.changed = true;
  return r;
}

}  // namespace joule
