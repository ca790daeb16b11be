// 2:4 packing (compress/passes/prune.h, pack: true): 2:4-pruned linear weights leave the model as SP24 buffers
// (kernels/formats/formats.h) read by joule::linear_sp24 (compress/ops/schema.h).
#pragma once
#include <torch/script.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "compress/ir/rewrite.h"

namespace joule {

// The SP24 buffers of one 2:4 sparse weight w float32 [N, K], K % 16 == 0: values float32 [N, K/2] and meta
// int16 [N, K/16], with in_features K (the weight path is left for the caller to set).
PackedWeight sp24_pack(const at::Tensor& w);

struct Sp24Packing {
  std::vector<std::string> packed;  // the weights now read by joule::linear_sp24, in path order
  int64_t bytes_before = 0;         // their float bytes
  int64_t bytes_after = 0;          // their values + meta bytes
  std::vector<std::string> warnings;
};

// Rewrites the aten::linear nodes over `weights` (2:4 sparse parameter paths) into joule::linear_sp24, in path
// order (the buffers "_joule_<path>_sp24_values" / "_sp24_meta" are registered deterministically), and empties the
// float weights. A weight stays dense, with a warning, when the format or the rewrite cannot take it: not float32
// [N, K], K % 16 != 0, or read by anything but aten::linear nodes (a slice, a matmul: emptying it would break
// that reader). The model is untouched when nothing is packed.
Sp24Packing pack_sp24(torch::jit::Module& m, const std::set<std::string>& weights);

}  // namespace joule
