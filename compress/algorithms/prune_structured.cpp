// Structured pruning: remove whole output channels (neurons) of smallest L2 norm, so that the layers get
// smaller rather than sparser. The channels are chosen on the weights as they are before any change (a stable
// sort of the row norms; the n_remove smallest go, at least one row stays). Where the graph analysis found that a
// layer's outputs reach exactly one consumer through zero-preserving ops (and maybe a batch norm: a ShrinkChain,
// compress/ir/graph.h), removing output feature i of the producer and input feature i of the consumer changes
// nothing else, so the producer's weight rows and bias entries, the batch norm's per-channel tensors and the
// consumer's input columns are replaced by smaller tensors (index_select of the kept indices; after a flatten of a
// conv's channels and spatial dims, each channel's block of columns). Elsewhere the rows are only zeroed. A consumer that was 2:4 sparse can lose the pattern when its input features go: warned about.
#include "compress/algorithms/prune_structured.h"

#include <fmt/format.h>

#include <cmath>

#include "compress/algorithms/prune_nm.h"

namespace joule {

StructuredPruning prune_structured(torch::jit::Module& m, const Analysis& a, const std::vector<size_t>& targets,
                                   double sparsity) {
  StructuredPruning r;
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
    int64_t n_remove = std::min<int64_t>(static_cast<int64_t>(std::floor(sparsity * double(out))), out - 1);
    at::Tensor order = std::get<1>(w.flatten(1).norm(2, {1}).sort(/*stable=*/true, 0, /*descending=*/false));
    plans.push_back({i, std::get<0>(order.narrow(0, n_remove, out - n_remove).sort()),
                     std::get<0>(order.narrow(0, 0, n_remove).sort())});
  }
  for (const auto& p : plans) {
    const WeightOp& op = a.ops[p.op];
    at::Tensor w = get_tensor(m, op.weight);
    std::vector<int64_t> shape = w.sizes().vec();
    auto chain = a.chain_from(p.op);
    if (!chain) {
      w.index_fill_(0, p.removed, 0);
      if (!op.bias.empty()) get_tensor(m, op.bias).index_fill_(0, p.removed, 0);
      r.layers.push_back(pruned_layer(p.op, shape, w, "zeroed output channels (no shrinkable consumer)"));
      continue;
    }
    auto shrink = [&](const std::string& path, int dim, const at::Tensor& kept) {
      at::Tensor old = get_tensor(m, path);
      at::Tensor fresh = old.detach().index_select(dim, kept).contiguous();
      if (old.requires_grad()) fresh.set_requires_grad(true);
      set_tensor(m, path, fresh);
    };
    shrink(op.weight, 0, p.kept);
    if (!op.bias.empty()) shrink(op.bias, 0, p.kept);
    const ShrinkChain& c = a.chains[*chain];
    if (!c.batch_norm.empty())
      for (const char* t : {"weight", "bias", "running_mean", "running_var"}) {
        auto bn = submodule(m, c.batch_norm);
        if (bn.hasattr(t) && bn.attr(t).isTensor()) shrink(c.batch_norm + "." + t, 0, p.kept);
      }
    const WeightOp& consumer = a.ops[c.consumer];
    bool was_nm = nm_holds(get_tensor(m, consumer.weight), consumer.in_dim, 2, 4);
    at::Tensor consumer_kept = p.kept;
    if (c.block > 1)  // after a flatten, channel i is the consumer's input features [i * block, (i + 1) * block)
      consumer_kept = (p.kept.unsqueeze(1) * c.block + at::arange(c.block, p.kept.options()).unsqueeze(0)).reshape(-1);
    shrink(consumer.weight, consumer.in_dim, consumer_kept);
    if (was_nm && !nm_holds(get_tensor(m, consumer.weight), consumer.in_dim, 2, 4))
      r.warnings.push_back(fmt::format("'{}' was 2:4 sparse; removing its input features broke the pattern "
                                       "(run structured pruning before N:M)", consumer.module));
    PrunedLayer rec = pruned_layer(p.op, shape, get_tensor(m, op.weight), "shrunk");
    rec.consumer = consumer.module;
    rec.batch_norm = c.batch_norm;
    r.layers.push_back(rec);
    ++r.shrunk;
  }
  return r;
}

}  // namespace joule
