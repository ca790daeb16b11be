// W8A8 packing of one linear weight (compress/passes/quantize.h, scheme w8a8) for joule::linear_w8a8
// (compress/ops/schema.h; format: kernels/formats/formats.h).
#pragma once
#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <vector>

#include "compress/ir/rewrite.h"

namespace joule {

struct W8A8Config {
  bool static_act = false;  // one activation scale per layer from calibration (else per token at run time)
  double smooth = 0;        // SmoothQuant migration strength alpha in (0, 1]; 0 = off
};

struct W8A8Packing {
  PackedWeight packed;           // qweight, w_scale, then x_scale and/or smooth_inv when calibrated (weight path unset)
  std::optional<float> x_scale;  // the static activation scale, when there is one
};

// w float32 [N, K] contiguous. x_absmax float32 [K]: max |x_k| over the calibration rows of the layer's input,
// undefined without calibration (then the config's static_act and smooth do nothing). A static scale that comes
// out zero or non-finite (all-zero calibration inputs) leaves activations dynamic, with a warning naming `module`.
W8A8Packing pack_w8a8(at::Tensor w, const at::Tensor& x_absmax, const W8A8Config& c, const std::string& module,
                      std::vector<std::string>& warnings);

}  // namespace joule
