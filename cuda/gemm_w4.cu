// W4A16 GEMM: y = x * dequant(W4)^T (+ bias) with fp16/bf16 tensor cores, for decode (M = 1..64) first.
//
// Algorithm: a block owns 16 weight rows and up to 64 tokens; its 4 warps take every 4th 64-wide K block. For a
// K block, lane (g, t) reads 8 bytes (16 weights) of rows g and g + 8 and 16 activations per token, all at real
// k [16t, 16t + 16) of the block (cuda/fragments.h permutes k inside the block identically for A and B), turns
// each weight into T = scale * (q - zero) in registers, and issues 4 mma.m16n8k16 per 8 tokens. The packed
// weights are read from global memory exactly once per 64 tokens, which is what bounds decode. The warps' partial
// tiles are added through shared memory (split-K), then bias and the store to y.
//
// Variants: T in {half, bf16} x NT (token tiles) in {1, 2, 8} x kFast (K % 64 == 0 and aligned pointers: vector
// loads; otherwise every load is bounds-checked, which handles odd K, short last groups and any alignment).
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace joule::cuda {
namespace {

using namespace detail;

template <typename T, int NT, bool kFast>
__global__ void __launch_bounds__(kThreads)
    gemm_w4_kernel(const T* __restrict__ x,             // [M, K]
                   const uint8_t* __restrict__ qw,      // [N, ceil(K/2)], low nibble = even k
                   const float* __restrict__ scales,    // [N, ceil(K/G)]
                   const uint8_t* __restrict__ zeros,   // [N, ceil(K/G)]
                   const float* __restrict__ bias,      // [N] or null
                   T* __restrict__ y,                   // [M, N]
                   int64_t M, int64_t N, int64_t K, int64_t ngroups, int group_shift) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int64_t n0 = int64_t(blockIdx.x) * kRowsPerBlock, m0 = int64_t(blockIdx.y) * 8 * NT;
  const int64_t row_bytes = w4_row_bytes(K);  // ngroups = w4_groups(K, 1 << group_shift), from the host
  // Rows and tokens past the end are clamped to the last one (valid memory); their results are never stored.
  const int64_t rows[2] = {min(n0 + g, N - 1), min(n0 + g + 8, N - 1)};
  const uint16_t* xrow[NT];
#pragma unroll
  for (int j = 0; j < NT; ++j)
    xrow[j] = reinterpret_cast<const uint16_t*>(x) + min(m0 + 8 * j + g, M - 1) * K;

  float acc[NT][4] = {};
  const int64_t nkb = (K + kBlockKF16 - 1) / kBlockKF16;
  for (int64_t kb = warp; kb < nkb; kb += kWarps) {
    const int64_t kseg = kb * kBlockKF16 + 16 * t;  // this lane's 16 real k
    // A: dequantized weights of the 4 steps, registers {row g hi 0, row g+8 hi 0, row g hi 1, row g+8 hi 1}.
    uint32_t a[4][4];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      uint32_t seg[2];
      const uint8_t* q = qw + rows[r] * row_bytes;
      if constexpr (kFast) {
        const uint2 v = __ldg(reinterpret_cast<const uint2*>(q + kseg / 2));
        seg[0] = v.x;
        seg[1] = v.y;
      } else {
        load_u8_guarded<2>(q, kseg / 2, row_bytes, seg);
      }
      const float* srow = scales + rows[r] * ngroups;
      const uint8_t* zrow = zeros + rows[r] * ngroups;
      // With G >= 16 the lane's 16 k share one group; smaller groups change every pair.
      const int64_t g0 = min(kseg >> group_shift, ngroups - 1);
      const float s0 = srow[g0], z0 = float(zrow[g0]);
#pragma unroll
      for (int s = 0; s < 4; ++s)
#pragma unroll
        for (int hi = 0; hi < 2; ++hi) {
          float sc = s0, zf = z0;
          if (group_shift < 4) {
            const int64_t gi = min((kseg + 4 * s + 2 * hi) >> group_shift, ngroups - 1);
            sc = srow[gi];
            zf = float(zrow[gi]);
          }
          const uint32_t b = frag::w4_byte(seg, s, hi);
          const float w0 = __fmul_rn(sc, float(b & 15u) - zf), w1 = __fmul_rn(sc, float(b >> 4) - zf);
          a[s][2 * hi + r] = pack2<T>(w0, w1);
        }
    }
    // B: 16 activations per token; padding beyond K reads as 0, so pad weights never contribute.
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      uint32_t xs[8];
      if constexpr (kFast) load_words_aligned<8>(xrow[j] + kseg, xs);
      else load_u16_guarded<8>(xrow[j], kseg, K, xs);
#pragma unroll
      for (int s = 0; s < 4; ++s) mma_16816<T>(acc[j], a[s], frag::f16_b_reg(xs, s, 0), frag::f16_b_reg(xs, s, 1));
    }
  }
  reduce_and_store<NT>(acc, [&](int row, int tok, float v) {
    const int64_t n = n0 + row, m = m0 + tok;
    if (n < N && m < M) y[m * N + n] = from_float<T>(bias ? v + bias[n] : v);
  });
}

template <typename T, int NT>
void launch_w4(const void* x, const uint8_t* qw, const float* scales, const uint8_t* zeros, const float* bias,
               void* y, int64_t M, int64_t N, int64_t K, int64_t ngroups, int group_shift, bool fast,
               cudaStream_t stream) {
  const dim3 grid(unsigned((N + kRowsPerBlock - 1) / kRowsPerBlock), unsigned((M + 8 * NT - 1) / (8 * NT)));
  auto* xt = static_cast<const T*>(x);
  auto* yt = static_cast<T*>(y);
  if (fast)
    gemm_w4_kernel<T, NT, true><<<grid, kThreads, 0, stream>>>(xt, qw, scales, zeros, bias, yt, M, N, K, ngroups,
                                                                group_shift);
  else
    gemm_w4_kernel<T, NT, false><<<grid, kThreads, 0, stream>>>(xt, qw, scales, zeros, bias, yt, M, N, K, ngroups,
                                                                 group_shift);
}

template <typename T>
void dispatch_w4(const void* x, const uint8_t* qw, const float* scales, const uint8_t* zeros, const float* bias,
                 void* y, int64_t M, int64_t N, int64_t K, int64_t ngroups, int group_shift, bool fast,
                 cudaStream_t stream) {
  switch (token_tiles(M)) {
    case 1: return launch_w4<T, 1>(x, qw, scales, zeros, bias, y, M, N, K, ngroups, group_shift, fast, stream);
    case 2: return launch_w4<T, 2>(x, qw, scales, zeros, bias, y, M, N, K, ngroups, group_shift, fast, stream);
    default:
      return launch_w4<T, kMaxTokenTiles>(x, qw, scales, zeros, bias, y, M, N, K, ngroups, group_shift, fast, stream);
  }
}

bool aligned(const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

Status launch_gemm_w4(DType dtype, const void* x, const uint8_t* qweight, const float* scales, const uint8_t* zeros,
                      const float* bias, void* y, int64_t M, int64_t N, int64_t K, int64_t group,
                      cudaStream_t stream) {
  if (dtype != DType::kF16 && dtype != DType::kBF16) return Status::kInvalidShape;
  if (M < 0 || N < 0 || K < 1 || M > detail::kMaxM || !w4_group_valid(group) || group > (1 << 30))
    return Status::kInvalidShape;
  if (M > 0 && N > 0 && (!x || !qweight || !scales || !zeros || !y)) return Status::kInvalidShape;
  if (M == 0 || N == 0) return Status::kOk;
  if (Status s = require_sm(80); s != Status::kOk) return s;
  int shift = 0;
  while ((int64_t(1) << shift) < group) ++shift;
  const int64_t ngroups = w4_groups(K, group);
  const bool fast = K % kBlockKF16 == 0 && aligned(x, 16) && aligned(qweight, 8);
  if (dtype == DType::kF16)
    dispatch_w4<__half>(x, qweight, scales, zeros, bias, y, M, N, K, ngroups, shift, fast, stream);
  else
    dispatch_w4<__nv_bfloat16>(x, qweight, scales, zeros, bias, y, M, N, K, ngroups, shift, fast, stream);
  return detail::check_launch();
}

}  // namespace joule::cuda
