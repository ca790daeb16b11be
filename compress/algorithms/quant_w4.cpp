// W4 quantization of a linear weight: asymmetric 4-bit codes in groups of G input features, w ~ scale * (q -
// zero) with one (scale, zero) per row and group, two codes per byte; activations stay float. Round-to-nearest
// (kernels/cpu/w4.h) chooses each group's range from its min and max; GPTQ (compress/algorithms/gptq.h) keeps
// those groups but chooses the codes column by column, spreading each column's rounding error over the columns
// not yet quantized through the inverse Hessian X^T X of the calibration inputs. With GPTQ both methods' output
// errors on the calibration set are measured, so the report shows what GPTQ gained over RTN.
#include "compress/algorithms/quant_w4.h"

#include "kernels/cpu/w4.h"
#include "kernels/formats/formats.h"

namespace joule {

W4Packing pack_w4(const at::Tensor& w, const at::Tensor& xtx, int64_t rows, const W4Config& c) {
  const int64_t N = w.size(0), K = w.size(1), G = kernels::w4_groups(K, c.group);
  W4Packed p{at::empty({N, kernels::w4_row_bytes(K)}, at::kByte), at::empty({N, G}, at::kFloat),
             at::empty({N, G}, at::kByte)};
  kernels::quantize_w4_rtn(w.data_ptr<float>(), N, K, c.group, p.qweight.data_ptr<uint8_t>(), p.scales.data_ptr<float>(),
                           p.zeros.data_ptr<uint8_t>());
  W4Packing r;
  if (xtx.defined() && c.gptq) {
    auto dequant = [&](const W4Packed& x) {
      at::Tensor d = at::empty({N, K}, at::kFloat);
      kernels::dequantize_w4(x.qweight.data_ptr<uint8_t>(), x.scales.data_ptr<float>(), x.zeros.data_ptr<uint8_t>(), N,
                             K, c.group, d.data_ptr<float>());
      return d;
    };
    W4Packed g = gptq_w4(w, xtx, c.group, c.gptq_options);
    r.output_error_rtn = output_error(w, dequant(p), xtx, rows);
    r.output_error_gptq = output_error(w, dequant(g), xtx, rows);
    p = g;
  }
  r.packed.buffers = {{"qweight", p.qweight}, {"scales", p.scales}, {"zeros", p.zeros}};
  r.packed.ints = {{"group_size", c.group}, {"in_features", K}};
  return r;
}

}  // namespace joule
