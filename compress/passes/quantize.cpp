// Quantization: analyse which aten::linear nodes of the inlined forward read a float32 weight parameter
// directly (and match the globs), pack each such weight with the plain kernels (kernels/w8a8.h, kernels/w4.h),
// then rewrite: the packed tensors become buffers of the top module (the only module type certain to have
// one instance, so adding attributes cannot disturb shared submodule types), the node becomes the joule::
// op, and the float weight is emptied. A weight read by more than one node is quantized once and shared.
#include "compress/passes/quantize.h"

#include <fmt/ranges.h>

#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <functional>
#include <map>
#include <set>

#include "compress/error.h"
#include "compress/graph.h"
#include "compress/passes/globs.h"
#include "kernels/ops/ops.h"
#include "kernels/quant_formats.h"
#include "kernels/w4.h"
#include "kernels/w8a8.h"

namespace joule {
namespace {

std::string buffer_name(const std::string& weight_path, const char* what) {
  std::string s = "_joule_" + weight_path;
  for (char& c : s)
    if (c == '.') c = '_';
  return s + "_" + what;
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
      if (v != "rtn") fail("quantize: method {} is not available yet (rtn)", v.dump());
    } else if (k == "include") {
      o.include = glob_list(v, "quantize", "include");
    } else if (k == "exclude") {
      o.exclude = glob_list(v, "quantize", "exclude");
    } else {
      fail("quantize: unknown option '{}' (scheme, group, method, include, exclude)", k);
    }
  }
  if (o.scheme == QuantScheme::W4 && (o.group < 2 || (o.group & (o.group - 1)) != 0))
    fail("quantize: group {} is not a power of two >= 2", o.group);
  return o;
}

nlohmann::json QuantizeOptions::to_json() const {
  nlohmann::json j = {{"scheme", scheme == QuantScheme::W8A8 ? "w8a8" : "w4"}, {"method", "rtn"}};
  if (scheme == QuantScheme::W4) j["group"] = group;
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
  for (auto* n : all) {
    if (n->kind() != c10::aten::linear) continue;
    auto w = attr_path_of(n->input(1), self);
    if (!w) continue;
    std::string module = w->substr(0, w->rfind('.'));
    modules_seen.insert(module);
    if (selected(module, opts_.include, opts_.exclude)) sites.push_back({n, *w, module});
  }
  for (const auto& p : opts_.include) {
    bool hit = false;
    for (const auto& mod : modules_seen) hit = hit || glob_match(p, mod);
    if (!hit) fail("quantize: include glob '{}' matches no linear layer", p);
  }
  if (sites.empty()) fail("quantize: no linear layer to quantize");

  PassResult r;
  auto& layers = r.stats["layers"] = nlohmann::json::array();
  int64_t bytes_before = 0, bytes_after = 0;
  std::map<std::string, std::vector<std::string>> packed;  // weight path -> buffer names, once per weight
  torch::NoGradGuard no_grad;
  for (const auto& s : sites) {
    at::Tensor w = get_tensor(m, s.weight);
    if (!packed.count(s.weight)) {
      if (w.scalar_type() != at::kFloat || w.dim() != 2 || w.numel() == 0)
        fail("quantize: '{}' is {} {}; only float32 [N, K] linear weights are supported", s.weight,
             c10::toString(w.scalar_type()), fmt::format("[{}]", fmt::join(w.sizes(), ", ")));
      at::Tensor wc = w.detach().contiguous();
      int64_t N = wc.size(0), K = wc.size(1);
      std::vector<std::pair<std::string, at::Tensor>> bufs;
      if (opts_.scheme == QuantScheme::W8A8) {
        at::Tensor q = at::empty({N, K}, at::kChar), sc = at::empty({N}, at::kFloat);
        kernels::quantize_rows_s8(wc.data_ptr<float>(), N, K, q.data_ptr<int8_t>(), sc.data_ptr<float>());
        bufs = {{"qweight", q}, {"w_scale", sc}};
      } else {
        if (opts_.group > K) fail("quantize: group {} exceeds the input features of '{}' (K = {})", opts_.group, s.weight, K);
        int64_t G = kernels::w4_groups(K, opts_.group);
        at::Tensor q = at::empty({N, kernels::w4_row_bytes(K)}, at::kByte), sc = at::empty({N, G}, at::kFloat),
                   z = at::empty({N, G}, at::kByte);
        kernels::quantize_w4_rtn(wc.data_ptr<float>(), N, K, opts_.group, q.data_ptr<uint8_t>(), sc.data_ptr<float>(),
                                 z.data_ptr<uint8_t>());
        bufs = {{"qweight", q}, {"scales", sc}, {"zeros", z}};
      }
      int64_t after = 0;
      for (auto& [what, t] : bufs) {
        std::string name = buffer_name(s.weight, what.c_str());
        m.register_buffer(name, t);
        packed[s.weight].push_back(name);
        after += static_cast<int64_t>(t.nbytes());
      }
      bytes_before += static_cast<int64_t>(w.nbytes());
      bytes_after += after;
      layers.push_back({{"module", s.module}, {"shape", w.sizes().vec()}, {"bytes_before", w.nbytes()}, {"bytes_after", after}});
    }
    // Rewrite the node: x, packed buffers read from self, bias as it was.
    torch::jit::WithInsertPoint guard(s.node);
    std::vector<torch::jit::NamedValue> args{s.node->input(0)};
    for (const auto& name : packed[s.weight]) args.emplace_back(g->insertGetAttr(self, name));
    if (opts_.scheme == QuantScheme::W4) {
      args.emplace_back(g->insertConstant(opts_.group));
      args.emplace_back(g->insertConstant(w.size(1)));
    }
    args.emplace_back(s.node->input(2));
    auto op = c10::Symbol::fromQualString(opts_.scheme == QuantScheme::W8A8 ? "joule::linear_w8a8" : "joule::linear_w4");
    torch::jit::Value* out = g->insert(op, args);
    s.node->output()->replaceAllUsesWith(out);
    s.node->destroy();
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
  r.changed = true;
  return r;
}

}  // namespace joule
