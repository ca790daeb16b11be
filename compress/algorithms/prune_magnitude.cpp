// Unstructured magnitude pruning: the weights of smallest |w| carry the least signal, so they are set to exactly
// zero. Per layer, the k = floor(s * n) smallest magnitudes of that layer go; with a global scope one threshold
// holds across all selected layers (the k = floor(s * total) smallest of the concatenated magnitudes), so layers
// with small weights lose more. Selection is a partial top-k on float magnitudes of the weights as they are
// before any change (ties are broken by topk, not by position), then every mask is applied.
#include "compress/algorithms/prune_magnitude.h"

#include <cmath>

namespace joule {

namespace {

// Mask (bool, flat) of the k smallest entries of `mag`.
at::Tensor smallest(const at::Tensor& mag, int64_t k) {
  at::Tensor mask = at::zeros({mag.numel()}, at::TensorOptions().dtype(c10::kBool));
  if (k > 0) mask.index_fill_(0, std::get<1>(mag.topk(k, 0, /*largest=*/false, /*sorted=*/false)), true);
  return mask;
}

}  // namespace

std::vector<PrunedLayer> prune_magnitude(torch::jit::Module& m, const Analysis& a, const std::vector<size_t>& targets,
                                         double sparsity, bool global) {
  std::vector<at::Tensor> mags;
  for (size_t i : targets) mags.push_back(get_tensor(m, a.ops[i].weight).detach().abs().to(c10::kFloat).reshape(-1));
  std::vector<at::Tensor> masks;
  if (global) {
    at::Tensor all = at::cat(mags);
    at::Tensor mask = smallest(all, static_cast<int64_t>(std::floor(sparsity * double(all.numel()))));
    int64_t off = 0;
    for (const auto& mg : mags) masks.push_back(mask.narrow(0, off, mg.numel())), off += mg.numel();
  } else {
    for (const auto& mg : mags)
      masks.push_back(smallest(mg, static_cast<int64_t>(std::floor(sparsity * double(mg.numel())))));
  }
  std::vector<PrunedLayer> out;
  for (size_t t = 0; t < targets.size(); ++t) {
    at::Tensor w = get_tensor(m, a.ops[targets[t]].weight);
    std::vector<int64_t> shape = w.sizes().vec();
    w.masked_fill_(masks[t].view(w.sizes()), 0);
    out.push_back(pruned_layer(targets[t], shape, w, "masked"));
  }
  return out;
}

}  // namespace joule
