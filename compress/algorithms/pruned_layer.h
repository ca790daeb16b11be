// What a pruning algorithm (prune_magnitude.h, prune_nm.h, prune_structured.h) did to one layer, recorded
// right after the layer changed; the prune pass turns the records into its per-layer report.
#pragma once
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace joule {

struct PrunedLayer {
  size_t op = 0;       // index into Analysis::ops
  std::string action;  // "masked", "2:4", "shrunk", "zeroed output channels (no shrinkable consumer)"
  std::vector<int64_t> shape_before, shape_after;
  double sparsity_after = 0;  // fraction of exact zeros in the weight afterwards
  std::string consumer;       // structured shrink: the consumer module whose input features went too
  std::string batch_norm;     // structured shrink: the batch norm in between, or ""
};

inline int64_t count_zeros(const at::Tensor& t) { return t.numel() - t.count_nonzero().item<int64_t>(); }

inline PrunedLayer pruned_layer(size_t op, std::vector<int64_t> shape_before, const at::Tensor& after,
                                std::string action) {
  PrunedLayer p;
  p.op = op;
  p.action = std::move(action);
  p.shape_before = std::move(shape_before);
  p.shape_after = after.sizes().vec();
  p.sparsity_after = double(count_zeros(after)) / double(std::max<int64_t>(after.numel(), 1));
  return p;
}

}  // namespace joule
