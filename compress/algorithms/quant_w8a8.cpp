// W8A8 quantization of a linear weight: symmetric round-to-nearest int8 per output channel (scale = max |w_n| /
// 127), so y = (x_scale * w_scale) * (qx . qw) with an exact int32 dot product. Activations are quantized per
// token at run time, unless calibration gives them one static scale per layer (max |x| over the calibration rows
// / 127). SmoothQuant (Xiao et al., 2023) first migrates activation outliers into the weights: per input channel
// s_k = max|x_k|^a / max|w_k|^(1-a), W' = W diag(s), and the op multiplies x by 1/s before quantizing it, so
// x W^T is unchanged while both operands get flatter ranges; the static scale is then taken on x / s.
#include "compress/algorithms/quant_w8a8.h"

#include <fmt/format.h>

#include <cmath>

#include "kernels/cpu/w8a8.h"
#include "kernels/formats/formats.h"

namespace joule {

W8A8Packing pack_w8a8(at::Tensor w, const at::Tensor& x_absmax, const W8A8Config& c, const std::string& module,
                      std::vector<std::string>& warnings) {
  const int64_t N = w.size(0), K = w.size(1);
  const bool calibrated = x_absmax.defined();
  at::Tensor smooth_inv;
  if (calibrated && c.smooth > 0) {
    // SmoothQuant: s_k = max|x_k|^a / max|w_k|^(1-a) moves activation range into the weights (w * s, x / s).
    at::Tensor xmax = x_absmax.clamp_min(1e-5), wmax = w.abs().amax(0).clamp_min(1e-5);
    at::Tensor sm = (xmax.pow(c.smooth) / wmax.pow(1 - c.smooth)).clamp_min(1e-5);
    w = (w * sm.unsqueeze(0)).contiguous();
    smooth_inv = sm.reciprocal().contiguous();
  }
  at::Tensor q = at::empty({N, K}, at::kChar), sc = at::empty({N}, at::kFloat);
  kernels::quantize_rows_s8(w.data_ptr<float>(), N, K, q.data_ptr<int8_t>(), sc.data_ptr<float>());
  W8A8Packing r;
  r.packed.buffers = {{"qweight", q}, {"w_scale", sc}};
  if (calibrated && c.static_act) {
    at::Tensor amax = smooth_inv.defined() ? x_absmax * smooth_inv : x_absmax;
    float xs = amax.max().item<float>() / float(kernels::kW8Max);
    if (xs > 0 && std::isfinite(xs)) {
      r.packed.buffers.push_back({"x_scale", at::full({1}, xs, at::kFloat)});
      r.x_scale = xs;
    } else {
      warnings.push_back(fmt::format("'{}': calibration inputs were all zero; activations stay dynamic", module));
    }
  }
  if (smooth_inv.defined()) r.packed.buffers.push_back({"smooth_inv", smooth_inv});
  return r;
}

}  // namespace joule
