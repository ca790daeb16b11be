// W8A8 on the GPU: per-token int8 activation quantization, and the s8 x s8 -> s32 tensor-core GEMM
// (mma.m16n8k32) whose epilogue applies x_scale[m] * w_scale[n] (+ bias) and writes f32, f16 or bf16.
//
// GEMM: a block owns 16 weight rows and up to 64 tokens; its 4 warps take every 4th 128-wide K block (split-K,
// exact int32 partial sums added through shared memory). Per K block lane (g, t) reads 32 bytes of rows g and
// g + 8 and 32 bytes per token, all at real k [32t, 32t + 32) of the block (cuda/fragments.h), and issues 4 mma
// per 8 tokens. Integer accumulation is exact, so the f32 epilogue matches the CPU kernel bit for bit.
//
// Quantization: one block per row; a block-wide max of |x * smooth_inv|, then the same scale arithmetic as the
// CPU kernels::quantize_rows_s8 (or division by a static per-tensor scale).
#include <cfloat>

#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace joule::cuda {
namespace {

using namespace detail;

template <typename Out>
struct S8Epilogue {
  const float* x_scale;  // [M]
  const float* w_scale;  // [N]
  const float* bias;     // [N] or null
  Out* y;                // [M, N]
  __device__ void operator()(int64_t m, int64_t n, int64_t N, int acc) const {
    if constexpr (std::is_same_v<Out, int32_t>) {
      y[m * N + n] = acc;
    } else {
      const float s = __fmul_rn(x_scale[m], w_scale[n]);
      const float a = static_cast<float>(acc);
      y[m * N + n] = from_float<Out>(bias ? __fmaf_rn(a, s, bias[n]) : __fmul_rn(a, s));
    }
  }
};

template <typename Out, int NT, bool kFast>
__global__ void __launch_bounds__(kThreads)
    gemm_s8_kernel(const int8_t* __restrict__ qx,   // [M, K]
                   const int8_t* __restrict__ qw,   // [N, K]
                   S8Epilogue<Out> epi, int64_t M, int64_t N, int64_t K) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int64_t n0 = int64_t(blockIdx.x) * kRowsPerBlock, m0 = int64_t(blockIdx.y) * 8 * NT;
  const int8_t* wrow[2] = {qw + min(n0 + g, N - 1) * K, qw + min(n0 + g + 8, N - 1) * K};  // clamped rows
  const int8_t* xrow[NT];
#pragma unroll
  for (int j = 0; j < NT; ++j) xrow[j] = qx + min(m0 + 8 * j + g, M - 1) * K;

  int acc[NT][4] = {};
  const int64_t nkb = (K + kBlockKS8 - 1) / kBlockKS8;
  for (int64_t kb = warp; kb < nkb; kb += kWarps) {
    const int64_t kseg = kb * kBlockKS8 + 32 * t;
    uint32_t wa[8], wb[8];
    if constexpr (kFast) {
      load_words_aligned<8>(wrow[0] + kseg, wa);
      load_words_aligned<8>(wrow[1] + kseg, wb);
    } else {
      load_u8_guarded<8>(reinterpret_cast<const uint8_t*>(wrow[0]), kseg, K, wa);
      load_u8_guarded<8>(reinterpret_cast<const uint8_t*>(wrow[1]), kseg, K, wb);
    }
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      uint32_t xs[8];
      if constexpr (kFast) load_words_aligned<8>(xrow[j] + kseg, xs);
      else load_u8_guarded<8>(reinterpret_cast<const uint8_t*>(xrow[j]), kseg, K, xs);
#pragma unroll
      for (int s = 0; s < 4; ++s)
        mma_s8_16832(acc[j], frag::s8_reg(wa, s, 0), frag::s8_reg(wb, s, 0), frag::s8_reg(wa, s, 1),
                     frag::s8_reg(wb, s, 1), frag::s8_reg(xs, s, 0), frag::s8_reg(xs, s, 1));
    }
  }
  reduce_and_store<NT>(acc, [&](int row, int tok, int v) {
    const int64_t n = n0 + row, m = m0 + tok;
    if (n < N && m < M) epi(m, n, N, v);
  });
}

template <typename Out, int NT>
void launch_s8(const int8_t* qx, const int8_t* qw, const S8Epilogue<Out>& epi, int64_t M, int64_t N, int64_t K,
               bool fast, cudaStream_t stream) {
  const dim3 grid(unsigned((N + kRowsPerBlock - 1) / kRowsPerBlock), unsigned((M + 8 * NT - 1) / (8 * NT)));
  if (fast) gemm_s8_kernel<Out, NT, true><<<grid, kThreads, 0, stream>>>(qx, qw, epi, M, N, K);
  else gemm_s8_kernel<Out, NT, false><<<grid, kThreads, 0, stream>>>(qx, qw, epi, M, N, K);
}

template <typename Out>
void dispatch_s8(const int8_t* qx, const int8_t* qw, const S8Epilogue<Out>& epi, int64_t M, int64_t N, int64_t K,
                 bool fast, cudaStream_t stream) {
  switch (token_tiles(M)) {
    case 1: return launch_s8<Out, 1>(qx, qw, epi, M, N, K, fast, stream);
    case 2: return launch_s8<Out, 2>(qx, qw, epi, M, N, K, fast, stream);
    default: return launch_s8<Out, kMaxTokenTiles>(qx, qw, epi, M, N, K, fast, stream);
  }
}

bool aligned(const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

Status check_s8_shape(const int8_t* qx, const int8_t* qw, const void* y, int64_t M, int64_t N, int64_t K) {
  if (M < 0 || N < 0 || K < 1 || K > kS8MaxK || M > detail::kMaxM) return Status::kInvalidShape;
  if (M > 0 && N > 0 && (!qx || !qw || !y)) return Status::kInvalidShape;
  return Status::kOk;
}

// ---- per-token quantization --------------------------------------------------------------------------------

constexpr int kQuantThreads = 256;
constexpr float kQMax = float(kW8Max);  // 127, the W8A8 range (kernels/formats/formats.h)
// Below this max|v|, 127 / max overflows: the row quantizes to zeros with scale 1 (as on the CPU).
constexpr float kMinAmax = kQMax / FLT_MAX;

__device__ __forceinline__ int8_t quantize_one(float v) {
  const float r = fminf(fmaxf(roundf(v), -kQMax), kQMax);  // roundf: half away from zero, like std::round
  return static_cast<int8_t>(static_cast<int>(r));
}

template <typename T>
__global__ void __launch_bounds__(kQuantThreads)
    quantize_rows_kernel(const T* __restrict__ x, const float* __restrict__ smooth_inv,
                         const float* __restrict__ static_scale, int8_t* __restrict__ q, float* __restrict__ x_scale,
                         int64_t K) {
  const int64_t row = blockIdx.x;
  const T* xr = x + row * K;
  int8_t* qr = q + row * K;
  auto value = [&](int64_t k) {
    const float v = to_float(xr[k]);
    return smooth_inv ? __fmul_rn(v, smooth_inv[k]) : v;
  };
  if (static_scale) {
    const float s = *static_scale, inv = __fdiv_rn(1.0f, s);  // as the CPU: v * (1 / s)
    for (int64_t k = threadIdx.x; k < K; k += kQuantThreads) qr[k] = quantize_one(__fmul_rn(value(k), inv));
    if (threadIdx.x == 0) x_scale[row] = s;
    return;
  }
  float amax = 0.0f;
  for (int64_t k = threadIdx.x; k < K; k += kQuantThreads) amax = fmaxf(amax, fabsf(value(k)));
  __shared__ float warp_max[kQuantThreads / 32];
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = amax;
  __syncthreads();
  amax = 0.0f;
  for (int w = 0; w < kQuantThreads / 32; ++w) amax = fmaxf(amax, warp_max[w]);
  const bool ok = amax >= kMinAmax;
  const float inv = ok ? __fdiv_rn(kQMax, amax) : 0.0f;
  for (int64_t k = threadIdx.x; k < K; k += kQuantThreads) qr[k] = quantize_one(__fmul_rn(value(k), inv));
  if (threadIdx.x == 0) x_scale[row] = ok ? __fdiv_rn(amax, kQMax) : 1.0f;
}

}  // namespace

Status launch_quantize_rows_s8(DType dtype, const void* x, const float* smooth_inv, const float* static_scale,
                               int8_t* q, float* x_scale, int64_t M, int64_t K, cudaStream_t stream) {
  if (M < 0 || K < 0 || M > int64_t(INT32_MAX)) return Status::kInvalidShape;
  if (M > 0 && (!x || !q || !x_scale)) return Status::kInvalidShape;
  if (M == 0) return Status::kOk;
  if (Status s = require_sm(80); s != Status::kOk) return s;
  const unsigned grid = unsigned(M);
  switch (dtype) {
    case DType::kF32:
      quantize_rows_kernel<float><<<grid, kQuantThreads, 0, stream>>>(static_cast<const float*>(x), smooth_inv,
                                                                      static_scale, q, x_scale, K);
      break;
    case DType::kF16:
      quantize_rows_kernel<__half><<<grid, kQuantThreads, 0, stream>>>(static_cast<const __half*>(x), smooth_inv,
                                                                       static_scale, q, x_scale, K);
      break;
    case DType::kBF16:
      quantize_rows_kernel<__nv_bfloat16><<<grid, kQuantThreads, 0, stream>>>(
          static_cast<const __nv_bfloat16*>(x), smooth_inv, static_scale, q, x_scale, K);
      break;
  }
  return detail::check_launch();
}

Status launch_gemm_s8s8(const int8_t* qx, const float* x_scale, const int8_t* qw, const float* w_scale,
                        const float* bias, DType out_dtype, void* y, int64_t M, int64_t N, int64_t K,
                        cudaStream_t stream) {
  if (Status s = check_s8_shape(qx, qw, y, M, N, K); s != Status::kOk) return s;
  if (M > 0 && N > 0 && (!x_scale || !w_scale)) return Status::kInvalidShape;
  if (M == 0 || N == 0) return Status::kOk;
  if (Status s = require_sm(80); s != Status::kOk) return s;
  const bool fast = K % kBlockKS8 == 0 && aligned(qx, 16) && aligned(qw, 16);
  switch (out_dtype) {
    case DType::kF32:
      dispatch_s8<float>(qx, qw, {x_scale, w_scale, bias, static_cast<float*>(y)}, M, N, K, fast, stream);
      break;
    case DType::kF16:
      dispatch_s8<__half>(qx, qw, {x_scale, w_scale, bias, static_cast<__half*>(y)}, M, N, K, fast, stream);
      break;
    case DType::kBF16:
      dispatch_s8<__nv_bfloat16>(qx, qw, {x_scale, w_scale, bias, static_cast<__nv_bfloat16*>(y)}, M, N, K, fast,
                                 stream);
      break;
  }
  return detail::check_launch();
}

Status launch_gemm_s8s8_s32(const int8_t* qx, const int8_t* qw, int32_t* acc, int64_t M, int64_t N, int64_t K,
                            cudaStream_t stream) {
  if (Status s = check_s8_shape(qx, qw, acc, M, N, K); s != Status::kOk) return s;
  if (M == 0 || N == 0) return Status::kOk;
  if (Status s = require_sm(80); s != Status::kOk) return s;
  const bool fast = K % kBlockKS8 == 0 && aligned(qx, 16) && aligned(qw, 16);
  dispatch_s8<int32_t>(qx, qw, {nullptr, nullptr, nullptr, acc}, M, N, K, fast, stream);
  return detail::check_launch();
}

}  // namespace joule::cuda
