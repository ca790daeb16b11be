// Unstructured magnitude pruning (compress/passes/prune.h, method unstructured).
#pragma once
#include <torch/script.h>

#include <vector>

#include "compress/algorithms/pruned_layer.h"
#include "compress/ir/graph.h"

namespace joule {

// Zeroes, in place, the floor(sparsity * n) weights of smallest |w| of each layer a.ops[i], i in `targets`
// (weights in any floating dtype), or with `global` the floor(sparsity * total) smallest across all of them.
// One record per target, in order (action "masked").
std::vector<PrunedLayer> prune_magnitude(torch::jit::Module& m, const Analysis& a, const std::vector<size_t>& targets,
                                         double sparsity, bool global);

}  // namespace joule
