// W4 packing of one linear weight (compress/passes/quantize.h, scheme w4) for joule::linear_w4
// (compress/ops/schema.h; format: kernels/formats/formats.h).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>

#include "compress/algorithms/gptq.h"
#include "compress/ir/rewrite.h"

namespace joule {

struct W4Config {
  int64_t group = 128;  // input features per (scale, zero) group; a power of two >= 2, at most K
  bool gptq = false;    // GPTQ instead of round-to-nearest (needs calibration statistics)
  GptqOptions gptq_options;
};

struct W4Packing {
  PackedWeight packed;  // qweight, scales, zeros; ints group_size and in_features (weight path unset)
  // With GPTQ: the layer's output error on the calibration set for RTN and for GPTQ (output_error, gptq.h).
  std::optional<double> output_error_rtn, output_error_gptq;
};

// w float32 [N, K] contiguous. xtx float64 [K, K] and rows: the layer's calibration statistics (X^T X and the
// number of rows), undefined / 0 without calibration; GPTQ runs when c.gptq and xtx is defined, else RTN.
W4Packing pack_w4(const at::Tensor& w, const at::Tensor& xtx, int64_t rows, const W4Config& c);

}  // namespace joule
