// The one aten::linear -> joule:: packed-linear rewrite that the compressing passes share (quantize: W8A8, W4;
// prune: 2:4 packing). Two steps:
//   find_linear_sites   inline forward and find, per weight parameter, the aten::linear nodes that read it
//                       directly from `self` and whether they are all of its readers (only then may the float
//                       weight be emptied);
//   rewrite_linears     given the packed buffers of the chosen weights, register them on the top module (the
//                       only module type certain to have one instance, so new attributes cannot disturb shared
//                       submodule types), replace each weight's aten::linear nodes with calls of the op, remove
//                       dead code, install the graph as forward and empty the float weights.
// Each call is built from the op's argument list in compress/ops/schema.h, by kind and name, never by position:
// Input = the linear's input, Bias = its bias, Buffer / OptionalBuffer = a GetAttr of the registered buffer of
// that role (None for a missing optional one), Int = the constant of that name.
#pragma once
#include <torch/script.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "compress/ops/schema.h"

namespace joule {

// One weight parameter read by aten::linear nodes of an inlined forward.
struct LinearSite {
  std::string weight;                    // parameter path, e.g. "blocks.0.a.weight"
  std::string module;                    // the path up to the last '.', e.g. "blocks.0.a"
  std::vector<torch::jit::Node*> nodes;  // the aten::linear nodes whose weight operand it is, in graph order
  bool exclusive = false;                // those nodes are all of its readers (no slice, matmul, fused kernel)
};

struct LinearSites {
  std::shared_ptr<torch::jit::Graph> graph;  // the inlined forward that the nodes belong to
  std::vector<LinearSite> sites;             // one per weight, in graph order of each weight's first node
  const LinearSite* find(const std::string& weight) const;  // nullptr when no aten::linear reads `weight`
};

// Inlines forward (compress/ir/graph.h inlined_forward) and collects its linear sites, in every block.
LinearSites find_linear_sites(const torch::jit::Module& m);

// The packed form of one weight, for rewrite_linears.
using PackedBuffers = std::vector<std::pair<std::string, at::Tensor>>;  // (op argument name, tensor)
struct PackedWeight {
  std::string weight;                   // parameter path: the weight of an exclusive LinearSite
  PackedBuffers buffers;                // registered in this order
  std::map<std::string, int64_t> ints;  // the op's Int arguments by name ("in_features", "group_size")
  int64_t bytes() const;                // total bytes of the buffers
};

// Rewrites the linear sites of `packed`'s weights into calls of `op`, weight by weight in the order given (its
// buffers are registered, named packed_buffer_name(weight, buffer_prefix + argument name), then its nodes are
// replaced, in graph order), then removes dead code, sets forward and empties the float weights (an empty
// tensor of the same options: the slot stays for shared types). Consumes `sites` (the graph becomes forward,
// its nodes are destroyed). Nothing happens when `packed` is empty. Throws (one line), before changing anything,
// for a weight with no exclusive site or given twice, a buffer the op has no argument for, or a missing Buffer or
// Int argument.
void rewrite_linears(torch::jit::Module& m, LinearSites&& sites, const ops::PackedLinearOp& op,
                     const std::vector<PackedWeight>& packed, const std::string& buffer_prefix = "");

}  // namespace joule
