// 2:4 semi-structured sparse x dense GEMM on sparse tensor cores (mma.sp.m16n8k16, fp16/bf16, f32 accumulation),
// and the device compressor that produces its values + metadata (format: kernels/formats/formats.h).
//
// y = x * W^T: the sparse operand A is W (the mma's M dimension is the N output features), the dense B operand is
// x^T (column-major B = row-major x), so D[n, m] = sum_k W[n, k] x[m, k] is stored transposed into y[m, n].
// A block owns 16 weight rows and up to 64 tokens; its 4 warps take every 4th 64-wide K block (split-K, added
// through shared memory). Per K block lane (g, t) reads 8 kept values (16 bytes) of rows g and g + 8, the 64 bits
// of metadata of both rows, and per token two 16-value activation segments; virtual chunk c of mma step s is
// real chunk 4c + s of the block (cuda/fragments.h), so the kept values of a lane are contiguous in memory.
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace joule::cuda {
namespace {

using namespace detail;

template <typename T, int NT, bool kFast>
__global__ void __launch_bounds__(kThreads)
    gemm_sp24_kernel(const T* __restrict__ x,             // [M, K]
                     const T* __restrict__ values,        // [N, K/2] kept values
                     const uint16_t* __restrict__ meta,   // [N, K/16] 4-bit chunk codes
                     const float* __restrict__ bias,      // [N] or null
                     T* __restrict__ y,                   // [M, N]
                     int64_t M, int64_t N, int64_t K) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int64_t n0 = int64_t(blockIdx.x) * kRowsPerBlock, m0 = int64_t(blockIdx.y) * 8 * NT;
  const int64_t vcols = sp24_values_cols(K), mcols = sp24_meta_cols(K);
  const int64_t rows[2] = {min(n0 + g, N - 1), min(n0 + g + 8, N - 1)};  // clamped; never stored
  const uint16_t* xrow[NT];
#pragma unroll
  for (int j = 0; j < NT; ++j)
    xrow[j] = reinterpret_cast<const uint16_t*>(x) + min(m0 + 8 * j + g, M - 1) * K;

  float acc[NT][4] = {};
  const int64_t nkb = (K + kBlockKF16 - 1) / kBlockKF16;
  for (int64_t kb = warp; kb < nkb; kb += kWarps) {
    const int64_t k0 = kb * kBlockKF16;
    uint32_t av[2][4];  // [row g / g+8][step]
    uint64_t mrow[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const uint16_t* v = reinterpret_cast<const uint16_t*>(values) + rows[r] * vcols;
      const uint16_t* e = meta + rows[r] * mcols;
      if constexpr (kFast) {
        load_words_aligned<4>(v + sp24_values_cols(k0) + 8 * t, av[r]);
        mrow[r] = __ldg(reinterpret_cast<const unsigned long long*>(e + sp24_meta_cols(k0)));
      } else {
        load_u16_guarded<4>(v, sp24_values_cols(k0) + 8 * t, vcols, av[r]);
        uint64_t m = 0;
#pragma unroll
        for (int w = 0; w < 4; ++w) {
          const int64_t i = sp24_meta_cols(k0) + w;
          const uint64_t word = i < mcols ? e[i] : unsigned(kSp24PadWord);  // past K: zero values, valid codes
          m |= word << (16 * w);
        }
        mrow[r] = m;
      }
    }
    uint32_t ew[4];
#pragma unroll
    for (int s = 0; s < 4; ++s) ew[s] = frag::sp_meta_word(mrow[0], mrow[1], s);
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      uint32_t xs0[8], xs1[8];
      const int64_t s0 = k0 + frag::sp_b_seg_start(t, 0), s1 = k0 + frag::sp_b_seg_start(t, 1);
      if constexpr (kFast) {
        load_words_aligned<8>(xrow[j] + s0, xs0);
        load_words_aligned<8>(xrow[j] + s1, xs1);
      } else {
        load_u16_guarded<8>(xrow[j], s0, K, xs0);
        load_u16_guarded<8>(xrow[j], s1, K, xs1);
      }
#pragma unroll
      for (int s = 0; s < 4; ++s)
        mma_sp_16816<T>(acc[j], frag::sp_a_reg(av[0], s), frag::sp_a_reg(av[1], s),
                        frag::sp_b_reg(xs0, xs1, t, s, 0), frag::sp_b_reg(xs0, xs1, t, s, 1), ew[s]);
    }
  }
  reduce_and_store<NT>(acc, [&](int row, int tok, float v) {
    const int64_t n = n0 + row, m = m0 + tok;
    if (n < N && m < M) y[m * N + n] = from_float<T>(bias ? v + bias[n] : v);
  });
}

// One thread per (row, 16-wide k group): 4 chunks -> 8 values + one metadata word.
__global__ void compress_sp24_kernel(const uint16_t* __restrict__ w, int64_t N, int64_t K,
                                     uint16_t* __restrict__ values, uint16_t* __restrict__ meta, int* violations) {
  const int64_t words = sp24_meta_cols(K);
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= N * words) return;
  const int64_t n = i / words, wi = i % words;
  const uint16_t* src = w + n * K + wi * kSp24KPerMetaWord;
  uint16_t* dst = values + n * sp24_values_cols(K) + sp24_values_cols(wi * kSp24KPerMetaWord);
  uint32_t code = 0;
  int bad = 0;
  for (int c = 0; c < 4; ++c) {
    int i0, i1;
    bad += frag::sp24_chunk(src + 4 * c, &i0, &i1) > 2;
    dst[2 * c] = src[4 * c + i0];
    dst[2 * c + 1] = src[4 * c + i1];
    code |= uint32_t(i0 | (i1 << 2)) << (4 * c);
  }
  meta[n * words + wi] = uint16_t(code);
  if (bad && violations) atomicAdd(violations, bad);
}

template <typename T, int NT>
void launch_sp(const void* x, const void* values, const uint16_t* meta, const float* bias, void* y, int64_t M,
               int64_t N, int64_t K, bool fast, cudaStream_t stream) {
  const dim3 grid(unsigned((N + kRowsPerBlock - 1) / kRowsPerBlock), unsigned((M + 8 * NT - 1) / (8 * NT)));
  auto* xt = static_cast<const T*>(x);
  auto* vt = static_cast<const T*>(values);
  auto* yt = static_cast<T*>(y);
  if (fast) gemm_sp24_kernel<T, NT, true><<<grid, kThreads, 0, stream>>>(xt, vt, meta, bias, yt, M, N, K);
  else gemm_sp24_kernel<T, NT, false><<<grid, kThreads, 0, stream>>>(xt, vt, meta, bias, yt, M, N, K);
}

template <typename T>
void dispatch_sp(const void* x, const void* values, const uint16_t* meta, const float* bias, void* y, int64_t M,
                 int64_t N, int64_t K, bool fast, cudaStream_t stream) {
  switch (token_tiles(M)) {
    case 1: return launch_sp<T, 1>(x, values, meta, bias, y, M, N, K, fast, stream);
    case 2: return launch_sp<T, 2>(x, values, meta, bias, y, M, N, K, fast, stream);
    default: return launch_sp<T, kMaxTokenTiles>(x, values, meta, bias, y, M, N, K, fast, stream);
  }
}

bool aligned(const void* p, int bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

Status launch_compress_sp24(const uint16_t* w, int64_t N, int64_t K, uint16_t* values, uint16_t* meta,
                            int* violations, cudaStream_t stream) {
  if (N < 0 || K < 0 || K % kSp24KAlign != 0) return Status::kInvalidShape;
  if (N > 0 && K > 0 && (!w || !values || !meta)) return Status::kInvalidShape;
  if (N == 0 || K == 0) return Status::kOk;
  if (Status s = require_sm(80); s != Status::kOk) return s;
  const int64_t items = N * sp24_meta_cols(K);
  constexpr int kBlock = 256;
  if ((items + kBlock - 1) / kBlock > int64_t(INT32_MAX)) return Status::kInvalidShape;
  compress_sp24_kernel<<<unsigned((items + kBlock - 1) / kBlock), kBlock, 0, stream>>>(w, N, K, values, meta,
                                                                                       violations);
  return detail::check_launch();
}

Status launch_gemm_sp24(DType dtype, const void* x, const void* values, const uint16_t* meta, const float* bias,
                        void* y, int64_t M, int64_t N, int64_t K, cudaStream_t stream) {
  if (dtype != DType::kF16 && dtype != DType::kBF16) return Status::kInvalidShape;
  if (M < 0 || N < 0 || K < kSp24KAlign || K % kSp24KAlign != 0 || M > detail::kMaxM) return Status::kInvalidShape;
  if (M > 0 && N > 0 && (!x || !values || !meta || !y)) return Status::kInvalidShape;
  if (M == 0 || N == 0) return Status::kOk;
  if (Status s = require_sm(80); s != Status::kOk) return s;
  const bool fast = K % kBlockKF16 == 0 && aligned(x, 16) && aligned(values, 16) && aligned(meta, 8);
  if (dtype == DType::kF16) dispatch_sp<__half>(x, values, meta, bias, y, M, N, K, fast, stream);
  else dispatch_sp<__nv_bfloat16>(x, values, meta, bias, y, M, N, K, fast, stream);
  return detail::check_launch();
}

}  // namespace joule::cuda
