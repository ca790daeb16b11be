// N:M semi-structured pruning (compress/passes/prune.h, method N:M such as 2:4).
#pragma once
#include <torch/script.h>

#include <vector>

#include "compress/algorithms/pruned_layer.h"
#include "compress/ir/graph.h"

namespace joule {

// Keeps, in place, the n largest |w| of every m consecutive weights along the input (reduction) dimension of
// each layer a.ops[i], i in `targets`, and zeroes the rest. Fails (one line, naming the layer) before changing
// anything when a target's input dimension is not a multiple of m. One record per target (action "n:m").
std::vector<PrunedLayer> prune_nm(torch::jit::Module& m, const Analysis& a, const std::vector<size_t>& targets, int n,
                                  int mm);

// Whether w has at most n non-zeros in every m consecutive entries along `in_dim` (false when m does not divide it).
bool nm_holds(const at::Tensor& w, int in_dim, int n, int m);

}  // namespace joule
