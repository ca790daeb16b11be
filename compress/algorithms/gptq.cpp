// Layout of the work: W is permuted (act order) and kept row-major [N, K] in float; U is the upper Cholesky
// factor of H^-1 (float, from a float64 factorization). Within a block the rows of W are independent (each
// row's error only updates that row), so rows run in parallel and each row walks the block's columns:
//   q = code of W[n, j] under its group's (scale, zero); err = (W[n, j] - dequant(q)) / U[j, j];
//   W[n, j+1 .. block end) -= err * U[j, j+1 .. block end)
// and the block's errors then update the columns after it in one matrix product.
#include "compress/algorithms/gptq.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "compress/base/error.h"
#include "kernels/formats/formats.h"
#include "kernels/cpu/w4.h"

namespace joule {

W4Packed gptq_w4(const at::Tensor& w_in, const at::Tensor& xtx, int64_t group, const GptqOptions& o) {
  const int64_t N = w_in.size(0), K = w_in.size(1), G = kernels::w4_groups(K, group);
  at::Tensor H = xtx.to(at::kDouble).clone();
  at::Tensor W = w_in.to(at::kFloat).clone().contiguous();

  at::Tensor diag = H.diagonal();
  at::Tensor dead = diag.eq(0);
  diag.masked_fill_(dead, 1.0);
  W.masked_fill_(dead.unsqueeze(0), 0.0f);

  at::Tensor perm = o.act_order ? at::argsort(diag, /*stable=*/true, /*dim=*/0, /*descending=*/true)
                                : at::arange(K, at::kLong);
  // Static groups (act order): every group's range from the weights before any update, as RTN would have it.
  at::Tensor scales = at::empty({N, G}, at::kFloat), zeros = at::empty({N, G}, at::kByte);
  if (o.act_order) {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t g = 0; g < G; ++g) {
        const int64_t k0 = g * group, k1 = std::min(K, k0 + group);
        kernels::w4_group_params(W.data_ptr<float>() + n * K + k0, k1 - k0, scales.data_ptr<float>() + n * G + g,
                                 zeros.data_ptr<uint8_t>() + n * G + g);
      }
    W = W.index_select(1, perm).contiguous();
    H = H.index_select(0, perm).index_select(1, perm);
  }

  // Dampen until the Cholesky factorization succeeds (H is only positive semi-definite from few rows).
  const double mean_diag = H.diagonal().mean().item<double>();
  at::Tensor U;
  for (double damp = o.damp; !U.defined(); damp *= 10) {
    if (damp > 1e3) fail("gptq: the calibration Hessian stays singular after dampening");
    at::Tensor Hd = H.clone();
    Hd.diagonal().add_(damp * mean_diag);
    auto [L, info] = at::linalg_cholesky_ex(Hd);
    if (info.item<int64_t>() != 0) continue;
    auto [Ui, info2] = at::linalg_cholesky_ex(at::cholesky_inverse(L), /*upper=*/true);
    if (info2.item<int64_t>() == 0) U = Ui.to(at::kFloat).contiguous();
  }

  const int64_t B = std::max(o.block, group);  // a multiple of the group: groups start inside one block
  const int64_t* pm = perm.data_ptr<int64_t>();
  std::vector<uint8_t> codes(static_cast<size_t>(N * K));
  float* wp = W.data_ptr<float>();
  const float* up = U.data_ptr<float>();
  float* sp = scales.data_ptr<float>();
  uint8_t* zp = zeros.data_ptr<uint8_t>();
  for (int64_t i1 = 0; i1 < K; i1 += B) {
    const int64_t i2 = std::min(K, i1 + B), bs = i2 - i1;
    at::Tensor err = at::empty({N, bs}, at::kFloat);
    float* ep = err.data_ptr<float>();
    at::parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        float* row = wp + n * K;
        for (int64_t j = i1; j < i2; ++j) {
          const int64_t k = pm[j], g = k / group;
          if (!o.act_order && j % group == 0)
            kernels::w4_group_params(row + j, std::min(K, j + group) - j, sp + n * G + g, zp + n * G + g);
          const float scale = sp[n * G + g];
          const int zero = zp[n * G + g];
          const int q = kernels::w4_code(row[j], scale, zero);
          codes[size_t(n * K + k)] = static_cast<uint8_t>(q);
          const float e = (row[j] - scale * static_cast<float>(q - zero)) / up[j * K + j];
          ep[n * bs + (j - i1)] = e;
          const float* uj = up + j * K;
          for (int64_t c = j + 1; c < i2; ++c) row[c] -= e * uj[c];
        }
      }
    });
    if (i2 < K) W.narrow(1, i2, K - i2).sub_(at::mm(err, U.narrow(0, i1, bs).narrow(1, i2, K - i2)));
  }

  at::Tensor qweight = at::empty({N, kernels::w4_row_bytes(K)}, at::kByte);
  kernels::pack_w4(codes.data(), N, K, qweight.data_ptr<uint8_t>());
  return {qweight, scales, zeros};
}

double output_error(const at::Tensor& w, const at::Tensor& w_hat, const at::Tensor& xtx, int64_t rows) {
  at::Tensor e = (w.to(at::kDouble) - w_hat.to(at::kDouble));
  return (e.mm(xtx.to(at::kDouble)) * e).sum().item<double>() / double(std::max<int64_t>(rows, 1));
}

}  // namespace joule
