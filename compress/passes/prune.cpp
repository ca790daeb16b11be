// Magnitude pruning: the weights of smallest |w| carry the least signal, so they are set to zero.
//  - unstructured: the k = floor(s * n) smallest |w| per layer, or across all selected layers (global);
//  - N:M: in every M consecutive weights along the input (reduction) dimension keep the N largest;
//  - structured: remove whole output channels/neurons of smallest L2 norm. Where the graph analysis finds
//    that a layer's outputs feed exactly one consumer through zero-preserving ops (and maybe a batch norm),
//    the layer and the consumer's input dimension are physically shrunk; elsewhere the rows are zeroed.
// Selection is analysed on the weights as they are before any change, then applied.
// Packing (2:4) follows the quantize pass's rewrite (compress/passes/quantize.cpp): analyse the inlined forward,
// compress each weight once into buffers of the top module (the only module type certain to have one
// instance), replace its aten::linear nodes, then empty the float weight.
#include "compress/passes/prune.h"

#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "compress/base/error.h"
#include "compress/ir/graph.h"
#include "compress/algorithms/globs.h"
#include "kernels/cpu/nm.h"
#include "compress/ops/ops.h"
#include "kernels/cpu/sp24.h"

namespace joule {

double CubicSchedule::at(int64_t step, double final_sparsity) const {
  if (step <= begin_step) return initial_sparsity;
  if (step >= end_step) return final_sparsity;
  int64_t t = begin_step + (step - begin_step) / frequency * frequency;
  double frac = double(t - begin_step) / double(end_step - begin_step);
  return final_sparsity + (initial_sparsity - final_sparsity) * std::pow(1.0 - frac, 3);
}

static double number(const nlohmann::json& v, const char* key) {
  if (!v.is_number()) fail("prune: '{}' must be a number, got {}", key, v.dump());
  return v.get<double>();
}

PruneOptions PruneOptions::from_json(const nlohmann::json& j) {
  if (!j.is_object()) fail("prune: options must be a mapping");
  PruneOptions o;
  bool sparsity_given = false, scope_given = false;
  for (const auto& [k, v] : j.items()) {
    if (k == "method") {
      if (!v.is_string()) fail("prune: 'method' must be a string: unstructured, structured or N:M such as 2:4");
      std::string s = v.get<std::string>();
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
    } else if (k == "sparsity") {
      o.sparsity = number(v, "sparsity");
      sparsity_given = true;
    } else if (k == "pack") {
      if (!v.is_boolean()) fail("prune: 'pack' must be true or false");
      o.pack = v.get<bool>();
    } else if (k == "scope") {
      std::string s = v.is_string() ? v.get<std::string>() : "";
      if (s != "layer" && s != "global") fail("prune: scope must be 'layer' or 'global'");
      o.global = s == "global";
      scope_given = true;
    } else if (k == "include") {
      o.include = glob_list(v, "prune", "include");
    } else if (k == "exclude") {
      o.exclude = glob_list(v, "prune", "exclude");
    } else if (k == "schedule") {
      if (!v.is_object()) fail("prune: 'schedule' must be a mapping (initial_sparsity, begin_step, end_step, frequency)");
      o.has_schedule = true;
      for (const auto& [sk, sv] : v.items()) {
        if (sk == "kind") {
          if (sv != "cubic") fail("prune: schedule kind must be 'cubic'");
        } else if (sk == "initial_sparsity") {
          o.schedule.initial_sparsity = number(sv, "schedule.initial_sparsity");
        } else if (sk == "begin_step") {
          o.schedule.begin_step = static_cast<int64_t>(number(sv, "schedule.begin_step"));
        } else if (sk == "end_step") {
          o.schedule.end_step = static_cast<int64_t>(number(sv, "schedule.end_step"));
        } else if (sk == "frequency") {
          o.schedule.frequency = static_cast<int64_t>(number(sv, "schedule.frequency"));
        } else {
          fail("prune: unknown schedule key '{}' (kind, initial_sparsity, begin_step, end_step, frequency)", sk);
        }
      }
    } else {
      fail("prune: unknown option '{}' (method, sparsity, scope, include, exclude, schedule, pack)", k);
    }
  }
  if (o.method == PruneMethod::NM) {
    double implied = 1.0 - double(o.n) / o.m;
    if (sparsity_given && std::fabs(o.sparsity - implied) > 1e-9)
      fail("prune: sparsity {} contradicts N:M {}:{} (which implies {})", o.sparsity, o.n, o.m, implied);
    if (o.has_schedule) fail("prune: a gradual schedule applies to unstructured/structured pruning, not N:M");
    o.sparsity = implied;
  }
  if (o.pack && !(o.method == PruneMethod::NM && o.n == 2 && o.m == 4))
    fail("prune: pack needs method 2:4 (the format of the sparse kernels)");
  if (!(o.sparsity >= 0.0 && o.sparsity < 1.0)) fail("prune: sparsity {} is outside [0, 1)", o.sparsity);
  if (scope_given && o.global && o.method != PruneMethod::Unstructured)
    fail("prune: scope 'global' applies to unstructured pruning only");
  if (o.has_schedule) {
    const auto& s = o.schedule;
    if (s.end_step <= s.begin_step || s.frequency < 1)
      fail("prune: schedule needs end_step > begin_step and frequency >= 1");
    if (!(s.initial_sparsity >= 0.0 && s.initial_sparsity <= o.sparsity))
      fail("prune: schedule initial_sparsity must be in [0, sparsity]");
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

// Module paths of the prunable layers (one entry per weight), filtered by include/exclude globs.
std::vector<size_t> select_targets(const Analysis& a, const PruneOptions& o) {
  std::vector<size_t> all;
  std::set<std::string> seen;
  for (size_t i = 0; i < a.ops.size(); ++i)
    if (a.ops[i].kind != OpKind::Embedding && a.ops[i].quant.empty() && seen.insert(a.ops[i].weight).second)
      all.push_back(i);
  if (all.empty()) fail("prune: the model has no prunable layer (linear, conv1d/2d, matmul with a weight)");
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
    const std::string& mod = a.ops[i].module;
    if (selected(mod, o.include, o.exclude)) out.push_back(i);
  }
  if (out.empty()) fail("prune: include/exclude leave no layer to prune");
  return out;
}

void keep_grad_flag(at::Tensor& fresh, const at::Tensor& old) {
  if (old.requires_grad()) fresh.set_requires_grad(true);
}

bool nm_holds(const at::Tensor& w, int in_dim, int n, int m) {
  if (w.size(in_dim) % m != 0) return false;
  at::Tensor t = w.detach().to(c10::kFloat).movedim(in_dim, -1).contiguous();
  return kernels::nm_satisfied(t.data_ptr<float>(), t.numel() / t.size(-1), t.size(-1), n, m);
}

int64_t zeros(const at::Tensor& t) { return t.numel() - t.count_nonzero().item<int64_t>(); }

nlohmann::json layer_stats(const WeightOp& op, const at::Tensor& before_w, const at::Tensor& after_w,
                           const std::string& action) {
  return {{"module", op.module},   {"op", op_kind_name(op.kind)},      {"action", action},
          {"shape_before", before_w.sizes().vec()}, {"shape_after", after_w.sizes().vec()},
          {"sparsity_after", double(zeros(after_w)) / double(std::max<int64_t>(after_w.numel(), 1))}};
}

// Rewrites the aten::linear nodes over the 2:4-pruned `weights` into joule::linear_sp24, in path order (the
// buffers are registered deterministically). A weight stays dense (with a warning) when the SP24 format or the
// rewrite cannot take it: not float32 [N, K], K % 16 != 0, or read by anything but aten::linear nodes (a slice,
// a matmul: emptying it would break that reader).
void pack_sp24(torch::jit::Module& m, const std::set<std::string>& weights, PassResult& r) {
  ops::ensure_ops_registered();
  auto g = inlined_forward(m);
  torch::jit::Value* self = g->inputs().at(0);
  std::map<std::string, std::vector<torch::jit::Node*>> linears;
  std::map<std::string, size_t> readers = attr_readers(g);
  std::function<void(torch::jit::Block*)> walk = [&](torch::jit::Block* b) {
    for (auto* n : b->nodes()) {
      for (auto* sb : n->blocks()) walk(sb);
      if (n->kind() != c10::aten::linear) continue;
      if (auto p = attr_path_of(n->input(1), self); p && weights.count(*p)) linears[*p].push_back(n);
    }
  };
  walk(g->block());

  int64_t bytes_before = 0, bytes_after = 0;
  std::vector<std::string> packed;
  for (const auto& path : weights) {
    const auto& nodes = linears[path];
    at::Tensor w = get_tensor(m, path);
    if (nodes.empty() || nodes.size() != readers[path]) {
      r.warnings.push_back(fmt::format("'{}' stays dense: it is read by ops other than a plain aten::linear", path));
      continue;
    }
    if (w.scalar_type() != at::kFloat || w.dim() != 2 || w.size(1) % kernels::kSp24KAlign != 0) {
      r.warnings.push_back(fmt::format("'{}' stays dense: 2:4 packing needs a float32 [N, K] weight with K % {} == 0, "
                                       "got {} {}", path, kernels::kSp24KAlign, c10::toString(w.scalar_type()),
                                       c10::str(w.sizes())));
      continue;
    }
    at::Tensor wc = w.detach().contiguous();
    const int64_t N = wc.size(0), K = wc.size(1);
    at::Tensor values = at::empty({N, K / 2}, at::kFloat);
    at::Tensor meta = at::empty({N, kernels::sp24_meta_cols(K)}, at::kShort);
    kernels::compress_sp24(wc.data_ptr<float>(), N, K, values.data_ptr<float>(),
                           reinterpret_cast<uint16_t*>(meta.data_ptr<int16_t>()));
    const std::string vname = packed_buffer_name(path, "sp24_values"), mname = packed_buffer_name(path, "sp24_meta");
    m.register_buffer(vname, values);
    m.register_buffer(mname, meta);
    for (auto* n : nodes) {
      torch::jit::WithInsertPoint guard(n);
      std::vector<torch::jit::NamedValue> args{n->input(0), g->insertGetAttr(self, vname),
                                               g->insertGetAttr(self, mname), g->insertConstant(K), n->input(2)};
      n->output()->replaceAllUsesWith(g->insert(c10::Symbol::fromQualString("joule::linear_sp24"), args));
      n->destroy();
    }
    bytes_before += static_cast<int64_t>(w.nbytes());
    bytes_after += static_cast<int64_t>(values.nbytes() + meta.nbytes());
    packed.push_back(path);
  }
  if (packed.empty()) return;
  torch::jit::EliminateDeadCode(g);
  set_forward(m, g);
  for (const auto& path : packed)
    set_tensor(m, path, at::empty({0}, get_tensor(m, path).options()));  // the slot stays for shared types
  r.stats["packed_layers"] = packed.size();
  r.stats["packed_weight_bytes_before"] = bytes_before;
  r.stats["packed_weight_bytes_after"] = bytes_after;
}

}  // namespace

PassResult PrunePass::run(torch::jit::Module& m, Context& ctx) {
  const Analysis& a = ctx.analysis(m);
  std::vector<size_t> targets = select_targets(a, opts_);
  double s = opts_.has_schedule ? opts_.schedule.at(ctx.step, opts_.sparsity) : opts_.sparsity;
  torch::NoGradGuard no_grad;
  PassResult r;
  r.stats["target_sparsity"] = s;
  auto& layers = r.stats["layers"] = nlohmann::json::array();
  int64_t zero_before = 0, zero_after = 0;
  for (size_t i : targets) zero_before += zeros(get_tensor(m, a.ops[i].weight));

  switch (opts_.method) {
    case PruneMethod::Unstructured: {
      std::vector<at::Tensor> mags;
      for (size_t i : targets) mags.push_back(get_tensor(m, a.ops[i].weight).detach().abs().to(c10::kFloat).reshape(-1));
      auto prune_smallest = [](const at::Tensor& mag, int64_t k) {
        at::Tensor mask = at::zeros({mag.numel()}, at::TensorOptions().dtype(c10::kBool));
        if (k > 0) mask.index_fill_(0, std::get<1>(mag.topk(k, 0, /*largest=*/false, /*sorted=*/false)), true);
        return mask;
      };
      std::vector<at::Tensor> masks;
      if (opts_.global) {
        at::Tensor all = at::cat(mags);
        at::Tensor mask = prune_smallest(all, static_cast<int64_t>(std::floor(s * double(all.numel()))));
        int64_t off = 0;
        for (const auto& mg : mags) masks.push_back(mask.narrow(0, off, mg.numel())), off += mg.numel();
      } else {
        for (const auto& mg : mags) masks.push_back(prune_smallest(mg, static_cast<int64_t>(std::floor(s * double(mg.numel())))));
      }
      for (size_t t = 0; t < targets.size(); ++t) {
        const WeightOp& op = a.ops[targets[t]];
        at::Tensor w = get_tensor(m, op.weight);
        at::Tensor before = w.clone();
        w.masked_fill_(masks[t].view(w.sizes()), 0);
        layers.push_back(layer_stats(op, before, w, "masked"));
      }
      break;
    }
    case PruneMethod::NM: {
      for (size_t i : targets) {
        const WeightOp& op = a.ops[i];
        if (op.weight_shape[op.in_dim] % opts_.m != 0)
          fail("prune: {}:{} needs the input dimension of '{}' ({} = {}) divisible by {}; exclude it with --exclude",
               opts_.n, opts_.m, op.module, op.weight, op.weight_shape[op.in_dim], opts_.m);
      }
      for (size_t i : targets) {
        const WeightOp& op = a.ops[i];
        at::Tensor w = get_tensor(m, op.weight);
        at::Tensor before = w.clone();
        at::Tensor moved = w.detach().to(c10::kFloat).movedim(op.in_dim, -1).contiguous();
        at::Tensor keep = at::empty(moved.sizes(), at::TensorOptions().dtype(c10::kByte));
        kernels::nm_mask(moved.data_ptr<float>(), moved.numel() / moved.size(-1), moved.size(-1), opts_.n, opts_.m,
                         keep.data_ptr<uint8_t>());
        w.masked_fill_(keep.movedim(-1, op.in_dim).eq(0), 0);
        layers.push_back(layer_stats(op, before, w, fmt::format("{}:{}", opts_.n, opts_.m)));
      }
      break;
    }
    case PruneMethod::Structured: {
      struct Plan {
        size_t op;
        at::Tensor kept, removed;  // output-feature indices, ascending
      };
      std::vector<Plan> plans;
      for (size_t i : targets) {
        const WeightOp& op = a.ops[i];
        if (op.kind == OpKind::MatMul || op.derived || op.groups != 1) {
          r.warnings.push_back(fmt::format("'{}' skipped: structured pruning handles plain linear/conv weights", op.module));
          continue;
        }
        at::Tensor w = get_tensor(m, op.weight).detach().to(c10::kFloat);
        int64_t out = w.size(0);
        int64_t n_remove = std::min<int64_t>(static_cast<int64_t>(std::floor(s * double(out))), out - 1);
        at::Tensor order = std::get<1>(w.flatten(1).norm(2, {1}).sort(/*stable=*/true, 0, /*descending=*/false));
        plans.push_back({i, std::get<0>(order.narrow(0, n_remove, out - n_remove).sort()),
                         std::get<0>(order.narrow(0, 0, n_remove).sort())});
      }
      int shrunk = 0;
      for (const auto& p : plans) {
        const WeightOp& op = a.ops[p.op];
        at::Tensor w = get_tensor(m, op.weight), before = w.clone();
        auto chain = a.chain_from(p.op);
        if (!chain) {
          w.index_fill_(0, p.removed, 0);
          if (!op.bias.empty()) get_tensor(m, op.bias).index_fill_(0, p.removed, 0);
          layers.push_back(layer_stats(op, before, w, "zeroed output channels (no shrinkable consumer)"));
          continue;
        }
        auto shrink = [&](const std::string& path, int dim) {
          at::Tensor old = get_tensor(m, path);
          at::Tensor fresh = old.detach().index_select(dim, p.kept).contiguous();
          keep_grad_flag(fresh, old);
          set_tensor(m, path, fresh);
        };
        shrink(op.weight, 0);
        if (!op.bias.empty()) shrink(op.bias, 0);
        const ShrinkChain& c = a.chains[*chain];
        if (!c.batch_norm.empty())
          for (const char* t : {"weight", "bias", "running_mean", "running_var"}) {
            auto bn = submodule(m, c.batch_norm);
            if (bn.hasattr(t) && bn.attr(t).isTensor()) shrink(c.batch_norm + "." + t, 0);
          }
        const WeightOp& consumer = a.ops[c.consumer];
        bool was_nm = nm_holds(get_tensor(m, consumer.weight), consumer.in_dim, 2, 4);
        shrink(consumer.weight, consumer.in_dim);
        if (was_nm && !nm_holds(get_tensor(m, consumer.weight), consumer.in_dim, 2, 4))
          r.warnings.push_back(fmt::format("'{}' was 2:4 sparse; removing its input features broke the pattern "
                                           "(run structured pruning before N:M)", consumer.module));
        auto st = layer_stats(op, before, get_tensor(m, op.weight), "shrunk");
        st["consumer"] = consumer.module;
        if (!c.batch_norm.empty()) st["batch_norm"] = c.batch_norm;
        layers.push_back(st);
        ++shrunk;
      }
      r.stats["shrunk_layers"] = shrunk;
      r.changed = shrunk > 0;
      break;
    }
  }
  for (size_t i : targets) zero_after += zeros(get_tensor(m, a.ops[i].weight));
  r.stats["zeroed_weights"] = zero_after - zero_before;
  r.changed = r.changed || zero_after != zero_before;
  if (opts_.pack) {
    std::set<std::string> weights;
    for (size_t i : targets)
      if (a.ops[i].kind == OpKind::Linear) weights.insert(a.ops[i].weight);
    pack_sp24(m, weights, r);  // after the statistics: packing empties the weights they count
    r.changed = r.changed || r.stats.contains("packed_layers");
  }
  return r;
}

}  // namespace joule
