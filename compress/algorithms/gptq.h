// GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers",
// ICLR 2023) for the W4 format: columns are quantized one at a time and each column's rounding error is spread
// over the not-yet-quantized columns through the inverse Hessian of the layer's reconstruction loss
// ||X W^T - X Q^T||^2 (H = X^T X), in blocks with lazy updates of the columns after the block.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace joule {

struct GptqOptions {
  double damp = 0.01;      // added to H's diagonal, as a fraction of its mean
  int64_t block = 128;     // columns per lazy-update block (raised to the group size when smaller)
  bool act_order = false;  // quantize columns by decreasing H[k,k]; groups then keep their RTN ranges (static)
};

struct W4Packed {
  at::Tensor qweight, scales, zeros;  // the kernels/formats/formats.h W4 layout, as quantize_w4_rtn writes it
};

// w float32 [N, K]; xtx float64 [K, K] (sum of x^T x over calibration rows, any positive factor). Input
// channels that never saw a non-zero (H[k,k] = 0) are quantized as zeros. With a diagonal xtx no error
// propagates, and the result equals quantize_w4_rtn's bit for bit.
W4Packed gptq_w4(const at::Tensor& w, const at::Tensor& xtx, int64_t group, const GptqOptions& o);

// The layer's output error on the calibration set, sum over rows of ||x (w - w_hat)^T||^2 / rows, computed
// as tr(E xtx E^T) / rows with E = w - w_hat: the quantity GPTQ minimizes, to compare it with RTN.
double output_error(const at::Tensor& w, const at::Tensor& w_hat, const at::Tensor& xtx, int64_t rows);

}  // namespace joule
