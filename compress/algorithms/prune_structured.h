// Structured pruning of output channels / neurons (compress/passes/prune.h, method structured).
#pragma once
#include <torch/script.h>

#include <string>
#include <vector>

#include "compress/algorithms/pruned_layer.h"
#include "compress/ir/graph.h"

namespace joule {

struct StructuredPruning {
  std::vector<PrunedLayer> layers;    // one per pruned target, in target order
  int shrunk = 0;                     // layers physically shrunk (with their consumer)
  std::vector<std::string> warnings;  // skipped layers, then broken 2:4 patterns
};

// Removes the floor(sparsity * out) output channels of smallest L2 norm (at most out - 1) of each plain
// linear/conv layer a.ops[i], i in `targets`: physically where the analysis has a ShrinkChain from the layer
// (the layer's rows and bias, a batch norm in between and the consumer's input features shrink together),
// else by zeroing the rows and bias entries. Matmul, derived (sliced) and grouped weights are skipped, with a
// warning.
StructuredPruning prune_structured(torch::jit::Module& m, const Analysis& a, const std::vector<size_t>& targets,
                                   double sparsity);

}  // namespace joule
