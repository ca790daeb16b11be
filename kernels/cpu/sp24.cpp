// 2:4 sparse linear on the CPU. The metadata of a block of NB weight rows is decoded once into absolute column
// indices, and a tile of MB rows of x is stored transposed (xt[k][l] = x[m0 + l, k]), so that each kept value
// w = values[n, j] at column k updates MB outputs with one contiguous, vectorisable acc[l] += xt[k][l] * w.
// Every output is still one float sum over the kept values in storage order, with a separate multiply and add
// (no FMA: the baseline target has none and the AVX2 variant is compiled without it), so the result is
// bit-identical to linear_sp24_ref and independent of tiles and threads. The MB x NB independent accumulator
// chains hide the add latency that makes the one-chain-per-output reference slow. Small M (decode) uses MB = 1,
// NB = 8: x rows are read in place and 8 weight rows give the independent chains. Which tiles run (and whether
// the AVX2 build of them may) is decided by kernels/cpu/isa.h (isa::sp24_impl).
#include "kernels/cpu/sp24.h"

#include <omp.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/isa.h"

namespace joule::kernels {
namespace {

void check_k(int64_t K, const char* fn) {
  if (K < 0 || K % kSp24KAlign != 0)
    throw std::invalid_argument(std::string(fn) + ": K=" + std::to_string(K) + " is not a multiple of " +
                                std::to_string(kSp24KAlign));
}

// Kept columns of row n in storage order: cols[2c] = 4c + idx0, cols[2c + 1] = 4c + idx1.
void kept_columns(const uint16_t* meta_row, int64_t K, int32_t* cols) {
  for (int64_t c = 0; c < K / kSp24Chunk; ++c) {
    int i0, i1;
    sp24_decode(meta_row, c, &i0, &i1);
    cols[2 * c] = int32_t(4 * c + i0);
    cols[2 * c + 1] = int32_t(4 * c + i1);
  }
}

// y rows [m0, m0 + MB) x cols [n0, n0 + NB) (clipped to M, N) from xt [K][MB] and the rows' decoded columns;
// rows past N repeat row N-1 (computed, not stored).
template <int MB, int NB>
inline __attribute__((always_inline)) void tile(const float* xt, const int32_t* cols, const float* values,
                                                 int64_t kept, int64_t m0, int64_t M, int64_t n0, int64_t N,
                                                 const float* bias, float* y) {
  float acc[NB][MB] = {};
  const float* val[NB];
  const int32_t* col[NB];
  for (int r = 0; r < NB; ++r) {
    const int64_t n = std::min(n0 + r, N - 1);
    val[r] = values + n * kept;
    col[r] = cols + (n - n0) * kept;
  }
  for (int64_t j = 0; j < kept; ++j)
    for (int r = 0; r < NB; ++r) {
      const float w = val[r][j];
      const float* xk = xt + int64_t(col[r][j]) * MB;
      for (int l = 0; l < MB; ++l) acc[r][l] = acc[r][l] + xk[l] * w;
    }
  for (int r = 0; r < NB && n0 + r < N; ++r)
    for (int l = 0; l < MB && m0 + l < M; ++l) y[(m0 + l) * N + n0 + r] = bias ? acc[r][l] + bias[n0 + r] : acc[r][l];
}

template <int MB, int NB>
inline __attribute__((always_inline)) void run_tiles(const float* x, int64_t M, int64_t K, const float* values,
                                                      const uint16_t* meta, int64_t N, const float* bias, float* y) {
  const int64_t kept = sp24_values_cols(K), n_blocks = (N + NB - 1) / NB, m_tiles = (M + MB - 1) / MB;
  const bool parallel = M * N * kept >= (int64_t{1} << 15) && omp_get_max_threads() > 1;
  // The transposed, zero-padded x tiles: [m_tiles][K][MB] (MB = 1 is x itself).
  std::vector<float> xt_all(MB == 1 ? 0 : static_cast<size_t>(m_tiles * K * MB), 0.0f);
  if (MB > 1)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k) xt_all[size_t(((m / MB) * K + k) * MB + m % MB)] = x[m * K + k];
  const float* xt = MB == 1 ? x : xt_all.data();
#pragma omp parallel if (parallel)
  {
    std::vector<int32_t> cols(static_cast<size_t>(NB * kept));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t n0 = b * NB;
      for (int64_t r = 0; r < NB && n0 + r < N; ++r)
        kept_columns(meta + (n0 + r) * sp24_meta_cols(K), K, cols.data() + r * kept);
      for (int64_t t = 0; t < m_tiles; ++t)
        tile<MB, NB>(xt + t * K * MB, cols.data(), values, kept, t * MB, M, n0, N, bias, y);
    }
  }
}

// Wide vectors where the CPU has them; no "fma" in the target, so the compiler cannot contract mul + add.
__attribute__((target("avx2"))) void run_tiles_avx2(const float* x, int64_t M, int64_t K, const float* values,
                                                    const uint16_t* meta, int64_t N, const float* bias, float* y) {
  run_tiles<16, 4>(x, M, K, values, meta, N, bias, y);
}

}  // namespace

void compress_sp24(const float* w, int64_t N, int64_t K, float* values, uint16_t* meta) {
  check_k(K, "compress_sp24");
  // The count of offending chunks tells a weight that was never 2:4 pruned from one stray non-zero.
  const int64_t bad = sp24_compress_rows(w, N, K, values, meta, [](float v) { return v != 0.0f; });
  if (bad)
    throw std::invalid_argument("compress_sp24: " + std::to_string(bad) + " chunk(s) of 4 along K have more than 2 "
                                "non-zeros (N=" + std::to_string(N) + " K=" + std::to_string(K) + ")");
}

void decompress_sp24(const float* values, const uint16_t* meta, int64_t N, int64_t K, float* w) {
  check_k(K, "decompress_sp24");
  if (!sp24_decompress_rows(values, meta, N, K, w))
    throw std::invalid_argument("decompress_sp24: invalid metadata code (idx0 >= idx1) (N=" + std::to_string(N) +
                                " K=" + std::to_string(K) + ")");
}

void linear_sp24_ref(const float* x, int64_t M, int64_t K, const float* values, const uint16_t* meta, int64_t N,
                     const float* bias, float* y) {
  check_k(K, "linear_sp24_ref");
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      const uint16_t* mrow = meta + n * sp24_meta_cols(K);
      const float* val = values + n * sp24_values_cols(K);
      float s = 0.0f;
      for (int64_t c = 0; c < K / kSp24Chunk; ++c) {
        int i0, i1;
        sp24_decode(mrow, c, &i0, &i1);
        s += x[m * K + 4 * c + i0] * val[2 * c];
        s += x[m * K + 4 * c + i1] * val[2 * c + 1];
      }
      y[m * N + n] = bias ? s + bias[n] : s;
    }
}

void linear_sp24(const float* x, int64_t M, int64_t K, const float* values, const uint16_t* meta, int64_t N,
                 const float* bias, float* y) {
  check_k(K, "linear_sp24");
  if (M <= 0 || N <= 0) return;
  switch (isa::sp24_impl(M)) {
    case isa::Sp24Impl::kReference: return linear_sp24_ref(x, M, K, values, meta, N, bias, y);
    case isa::Sp24Impl::kRowTiles: return run_tiles<1, 8>(x, M, K, values, meta, N, bias, y);
    case isa::Sp24Impl::kTilesAvx2: return run_tiles_avx2(x, M, K, values, meta, N, bias, y);
    case isa::Sp24Impl::kTiles: break;
  }
  run_tiles<16, 4>(x, M, K, values, meta, N, bias, y);
}

}  // namespace joule::kernels
