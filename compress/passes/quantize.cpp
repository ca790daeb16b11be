// Quantization: analyse which aten::linear nodes of the inlined forward read a float32 weight parameter
// directly (and match the globs), pack each such weight with the plain kernels (kernels/cpu/w8a8.h, kernels/cpu/w4.h),
// then rewrite: the packed tensors become buffers of the top module (the only module type certain to have
// one instance, so adding attributes cannot disturb shared submodule types), the node becomes the joule::
// op, and the float weight is emptied. A weight read by more than one node is quantized once and shared.
#include "compress/passes/quantize.h"

#include <fmt/ranges.h>

#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "compress/base/error.h"
#include "compress/ir/graph.h"
#include "compress/algorithms/globs.h"
#include "compress/base/progress.h"
#include "compress/ops/ops.h"
#include "kernels/formats/formats.h"
#include "kernels/cpu/w4.h"
#include "kernels/cpu/w8a8.h"

namespace joule {

namespace {

using Buffers = std::vector<std::pair<std::string, at::Tensor>>;  // role -> packed tensor, in op argument order

// W8A8 buffers of one float weight w [N, K]: qweight, w_scale, and with calibration statistics the static
// x_scale and/or SmoothQuant's smooth_inv. Per-layer facts go to `layer`.
Buffers pack_w8a8(at::Tensor w, const LinearStats* st, const QuantizeOptions& o, nlohmann::json& layer,
                  std::vector<std::string>& warnings) {
  const int64_t N = w.size(0), K = w.size(1);
  at::Tensor smooth_inv;
  if (st && o.smooth > 0) {
    // SmoothQuant: s_k = max|x_k|^a / max|w_k|^(1-a) moves activation range into the weights (w * s, x / s).
    at::Tensor xmax = st->absmax.clamp_min(1e-5), wmax = w.abs().amax(0).clamp_min(1e-5);
    at::Tensor sm = (xmax.pow(o.smooth) / wmax.pow(1 - o.smooth)).clamp_min(1e-5);
    w = (w * sm.unsqueeze(0)).contiguous();
    smooth_inv = sm.reciprocal().contiguous();
  }
  at::Tensor q = at::empty({N, K}, at::kChar), sc = at::empty({N}, at::kFloat);
  kernels::quantize_rows_s8(w.data_ptr<float>(), N, K, q.data_ptr<int8_t>(), sc.data_ptr<float>());
  Buffers bufs = {{"qweight", q}, {"w_scale", sc}};
  if (st && o.static_act) {
    at::Tensor amax = smooth_inv.defined() ? st->absmax * smooth_inv : st->absmax;
    float xs = amax.max().item<float>() / float(kernels::kW8Max);
    if (xs > 0 && std::isfinite(xs)) {
      bufs.push_back({"x_scale", at::full({1}, xs, at::kFloat)});
      layer["x_scale"] = xs;
    } else {
      warnings.push_back(fmt::format("'{}': calibration inputs were all zero; activations stay dynamic",
                                     layer["module"].get<std::string>()));
    }
  }
  if (smooth_inv.defined()) bufs.push_back({"smooth_inv", smooth_inv});
  return bufs;
}

// W4 buffers of one float weight: RTN, or GPTQ given calibration statistics (then both methods' output errors
// go to `layer`, so the report shows what GPTQ gained).
Buffers pack_w4(const at::Tensor& w, const LinearStats* st, const QuantizeOptions& o, nlohmann::json& layer) {
  const int64_t N = w.size(0), K = w.size(1), G = kernels::w4_groups(K, o.group);
  W4Packed p{at::empty({N, kernels::w4_row_bytes(K)}, at::kByte), at::empty({N, G}, at::kFloat),
             at::empty({N, G}, at::kByte)};
  kernels::quantize_w4_rtn(w.data_ptr<float>(), N, K, o.group, p.qweight.data_ptr<uint8_t>(), p.scales.data_ptr<float>(),
                           p.zeros.data_ptr<uint8_t>());
  if (st && o.method == QuantMethod::GPTQ) {
    auto dequant = [&](const W4Packed& x) {
      at::Tensor d = at::empty({N, K}, at::kFloat);
      kernels::dequantize_w4(x.qweight.data_ptr<uint8_t>(), x.scales.data_ptr<float>(), x.zeros.data_ptr<uint8_t>(), N,
                             K, o.group, d.data_ptr<float>());
      return d;
    };
    W4Packed g = gptq_w4(w, st->xtx, o.group, o.gptq);
    layer["output_error_rtn"] = output_error(w, dequant(p), st->xtx, st->rows);
    layer["output_error_gptq"] = output_error(w, dequant(g), st->xtx, st->rows);
    p = g;
  }
  return {{"qweight", p.qweight}, {"scales", p.scales}, {"zeros", p.zeros}};
}

}  // namespace

QuantizeOptions QuantizeOptions::from_json(const nlohmann::json& j) {
  if (!j.is_object()) fail("quantize: options must be a mapping");
  QuantizeOptions o;
  for (const auto& [k, v] : j.items()) {
    if (k == "scheme") {
      std::string s = v.is_string() ? v.get<std::string>() : "";
      if (s == "w8a8") o.scheme = QuantScheme::W8A8;
      else if (s == "w4") o.scheme = QuantScheme::W4;
      else fail("quantize: unknown scheme {} (w8a8, w4)", v.dump());
    } else if (k == "group") {
      if (!v.is_number_integer()) fail("quantize: group must be an integer");
      o.group = v.get<int64_t>();
    } else if (k == "method") {
      if (v == "rtn") o.method = QuantMethod::RTN;
      else if (v == "gptq") o.method = QuantMethod::GPTQ;
      else fail("quantize: unknown method {} (rtn, gptq)", v.dump());
    } else if (k == "act") {
      if (v == "dynamic") o.static_act = false;
      else if (v == "static") o.static_act = true;
      else fail("quantize: unknown act {} (dynamic, static)", v.dump());
    } else if (k == "smooth") {
      if (!v.is_number()) fail("quantize: smooth must be a number in (0, 1]");
      o.smooth = v.get<double>();
      if (!(o.smooth >= 0 && o.smooth <= 1)) fail("quantize: smooth {} is outside [0, 1]", o.smooth);
    } else if (k == "calib") {
      if (!v.is_string() || v.get<std::string>().empty()) fail("quantize: calib must be a file path");
      o.calib = v.get<std::string>();
    } else if (k == "calib_samples") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1) fail("quantize: calib_samples must be a positive integer");
      o.calib_samples = v.get<int64_t>();
    } else if (k == "act_order") {
      if (!v.is_boolean()) fail("quantize: act_order must be true or false");
      o.gptq.act_order = v.get<bool>();
    } else if (k == "damp") {
      if (!v.is_number() || !(v.get<double>() > 0 && v.get<double>() <= 1)) fail("quantize: damp must be in (0, 1]");
      o.gptq.damp = v.get<double>();
    } else if (k == "include") {
      o.include = glob_list(v, "quantize", "include");
    } else if (k == "exclude") {
      o.exclude = glob_list(v, "quantize", "exclude");
    } else {
      fail("quantize: unknown option '{}' (scheme, group, method, act, smooth, calib, calib_samples, act_order, damp, "
           "include, exclude)", k);
    }
  }
  const bool w4 = o.scheme == QuantScheme::W4;
  if (w4 && (o.group < 2 || (o.group & (o.group - 1)) != 0)) fail("quantize: group {} is not a power of two >= 2", o.group);
  if (!w4 && o.method == QuantMethod::GPTQ) fail("quantize: method gptq applies to scheme w4 (w8a8 uses rtn)");
  if (w4 && (o.static_act || o.smooth > 0)) fail("quantize: act and smooth apply to scheme w8a8 (w4 keeps float activations)");
  if (o.method != QuantMethod::GPTQ && (j.contains("act_order") || j.contains("damp")))
    fail("quantize: act_order and damp apply to method gptq");
  if (o.needs_calibration() && o.calib.empty())
    fail("quantize: {} needs calibration data (calib: FILE)",
         o.method == QuantMethod::GPTQ ? "method gptq" : o.static_act ? "act static" : "smooth");
  if (j.contains("calib_samples") && o.calib.empty()) fail("quantize: calib_samples needs calib: FILE");
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
  ops::ensure_ops_registered();
  auto g = inlined_forward(m);
  torch::jit::Value* self = g->inputs().at(0);

  struct Site {
    torch::jit::Node* node;
    std::string weight, module;
  };
  std::vector<Site> sites;
  std::set<std::string> modules_seen;
  std::vector<torch::jit::Node*> all;
  std::function<void(torch::jit::Block*)> walk = [&](torch::jit::Block* b) {
    for (auto* n : b->nodes()) {
      all.push_back(n);
      for (auto* sb : n->blocks()) walk(sb);
    }
  };
  walk(g->block());
  std::map<std::string, size_t> linear_reads;
  for (auto* n : all) {
    if (n->kind() != c10::aten::linear) continue;
    auto w = attr_path_of(n->input(1), self);
    if (!w) continue;
    std::string module = w->substr(0, w->rfind('.'));
    modules_seen.insert(module);
    if (selected(module, opts_.include, opts_.exclude)) sites.push_back({n, *w, module}), ++linear_reads[*w];
  }
  // The float weight is emptied after packing: a weight that something else reads too (a fused kernel such as
  // _transformer_encoder_layer_fwd, a slice) stays float.
  PassResult r;
  const std::map<std::string, size_t> readers = attr_readers(g);
  std::set<std::string> shared;
  for (const auto& [w, n] : linear_reads)
    if (readers.at(w) != n) {
      shared.insert(w);
      r.warnings.push_back(fmt::format("'{}' stays float: it is read by ops other than aten::linear", w));
    }
  sites.erase(std::remove_if(sites.begin(), sites.end(), [&](const Site& s) { return shared.count(s.weight) > 0; }),
              sites.end());
  for (const auto& p : opts_.include) {
    bool hit = false;
    for (const auto& mod : modules_seen) hit = hit || glob_match(p, mod);
    if (!hit) fail("quantize: include glob '{}' matches no linear layer", p);
  }
  if (sites.empty() && !shared.empty())
    fail("quantize: every selected linear weight is also read by other ops (e.g. a fused encoder layer such as "
         "'{}'), which need it in float", *shared.begin());
  if (sites.empty()) fail("quantize: no linear layer to quantize");

  // Calibration statistics come from the model as it is now, before any layer is rewritten.
  const CalibrationStats* stats = opts_.needs_calibration() ? &ctx.calibration_stats(m, opts_.calib, opts_.calib_samples) : nullptr;

  auto& layers = r.stats["layers"] = nlohmann::json::array();
  double err_rtn = 0, err_gptq = 0;
  int64_t bytes_before = 0, bytes_after = 0;
  std::map<std::string, std::map<std::string, std::string>> packed;  // weight path -> role -> buffer name
  torch::NoGradGuard no_grad;
  std::optional<Progress> bar;  // GPTQ takes seconds per large layer
  if (stats && opts_.method == QuantMethod::GPTQ) bar.emplace("gptq", static_cast<int64_t>(sites.size()));
  for (const auto& s : sites) {
    at::Tensor w = get_tensor(m, s.weight);
    if (!packed.count(s.weight)) {
      if (w.scalar_type() != at::kFloat || w.dim() != 2 || w.numel() == 0)
        fail("quantize: '{}' is {} {}; only float32 [N, K] linear weights are supported", s.weight,
             c10::toString(w.scalar_type()), fmt::format("[{}]", fmt::join(w.sizes(), ", ")));
      at::Tensor wc = w.detach().contiguous();
      const int64_t K = wc.size(1);
      const LinearStats* st = nullptr;
      if (stats) {
        auto it = stats->find(s.weight);
        if (it != stats->end() && it->second.rows > 0) st = &it->second;
        else r.warnings.push_back(fmt::format("'{}' saw no calibration input: quantized with rtn and dynamic "
                                              "activations", s.module));
      }
      nlohmann::json layer = {{"module", s.module}, {"shape", w.sizes().vec()}};
      Buffers bufs;
      if (opts_.scheme == QuantScheme::W8A8) {
        bufs = pack_w8a8(wc, st, opts_, layer, r.warnings);
      } else {
        if (opts_.group > K) fail("quantize: group {} exceeds the input features of '{}' (K = {})", opts_.group, s.weight, K);
        bufs = pack_w4(wc, st, opts_, layer);
        if (layer.contains("output_error_gptq"))
          err_rtn += layer["output_error_rtn"].get<double>(), err_gptq += layer["output_error_gptq"].get<double>();
      }
      int64_t after = 0;
      for (auto& [what, t] : bufs) {
        std::string name = packed_buffer_name(s.weight, what);
        m.register_buffer(name, t);
        packed[s.weight][what] = name;
        after += static_cast<int64_t>(t.nbytes());
      }
      bytes_before += static_cast<int64_t>(w.nbytes());
      bytes_after += after;
      layer["bytes_before"] = w.nbytes(), layer["bytes_after"] = after;
      layers.push_back(layer);
    }
    // Rewrite the node: x, packed buffers read from self, bias as it was (then the W8A8 options or None).
    torch::jit::WithInsertPoint guard(s.node);
    const auto& bufs = packed[s.weight];
    auto buf = [&](const char* what) -> torch::jit::Value* {
      auto it = bufs.find(what);
      return it == bufs.end() ? g->insertConstant(c10::IValue()) : g->insertGetAttr(self, it->second);
    };
    std::vector<torch::jit::NamedValue> args{s.node->input(0), buf("qweight")};
    if (opts_.scheme == QuantScheme::W8A8) {
      args.insert(args.end(), {buf("w_scale"), s.node->input(2), buf("x_scale"), buf("smooth_inv")});
    } else {
      args.insert(args.end(), {buf("scales"), buf("zeros"), g->insertConstant(opts_.group),
                               g->insertConstant(w.size(1)), s.node->input(2)});
    }
    auto op = c10::Symbol::fromQualString(opts_.scheme == QuantScheme::W8A8 ? "joule::linear_w8a8" : "joule::linear_w4");
    torch::jit::Value* out = g->insert(op, args);
    s.node->output()->replaceAllUsesWith(out);
    s.node->destroy();
    if (bar) bar->tick();
  }
  torch::jit::EliminateDeadCode(g);
  set_forward(m, g);
  for (const auto& [path, names] : packed) {
    at::Tensor w = get_tensor(m, path);
    set_tensor(m, path, at::empty({0}, w.options()));  // the float weight is gone; the slot stays for shared types
  }
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
