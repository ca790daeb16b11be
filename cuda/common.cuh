// Device helpers shared by the GEMM kernels: tensor-core mma wrappers (inline PTX), 16-bit float conversions,
// and the split-K reduction + epilogue every kernel ends with. Device code only (included by .cu files).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "cuda/device.h"
#include "cuda/fragments.h"

namespace joule::cuda::detail {

constexpr int kWarps = 4;            // warps per block; they split K and add their partial tiles
constexpr int kThreads = 32 * kWarps;
constexpr int kRowsPerBlock = 16;    // weight rows (output features) per block: one m16 fragment
constexpr int kMaxTokenTiles = 8;    // n8 tiles per block: up to 64 tokens

// Token tiles per block for M tokens: 1 (M <= 8), 2 (M <= 16), else 8. Three variants keep compile time low.
inline int token_tiles(int64_t M) { return M <= 8 ? 1 : (M <= 16 ? 2 : kMaxTokenTiles); }
// Largest M the grid's y dimension (65535 blocks of 64 tokens) covers.
constexpr int64_t kMaxM = int64_t(65535) * 8 * kMaxTokenTiles;

// ---- mma wrappers: D += A * B, A row-major 16 x K fragment, B column-major K x 8, f32 or s32 accumulators ----

// mma.m16n8k16 with f16 or bf16 inputs (T = __half or __nv_bfloat16), f32 accumulation.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Sparse mma.sp.m16n8k16: A is 16 x 16 with 2:4 sparsity, given as its 16 x 8 kept values (2 registers) and the
// metadata word `e`; sparsity selector 0 (lane 4g of each quad supplies the quad's metadata). The
// ::ordered_metadata form needs idx0 < idx1 in every chunk, which the compressor guarantees.
template <typename T>
__device__ __forceinline__ void mma_sp_16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t b0, uint32_t b1,
                                             uint32_t e) {
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile(
        "mma.sp::ordered_metadata.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, "
        "{%6,%7}, {%0,%1,%2,%3}, %8, 0x0;\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(b0), "r"(b1), "r"(e));
  } else {
    asm volatile(
        "mma.sp::ordered_metadata.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, "
        "{%6,%7}, {%0,%1,%2,%3}, %8, 0x0;\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(b0), "r"(b1), "r"(e));
  }
}

// mma.m16n8k32 s8 x s8 -> s32 (exact; no .satfinite: |sum| < 2^31 for K <= kS8MaxK with values in [-127, 127]).
__device__ __forceinline__ void mma_s8_16832(int (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                             uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// ---- 16-bit float helpers ------------------------------------------------------------------------------------

template <typename T>
__device__ __forceinline__ float to_float(T v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else if constexpr (std::is_same_v<T, __half>) return __half2float(v);
  else return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T from_float(float v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else if constexpr (std::is_same_v<T, __half>) return __float2half_rn(v);
  else return __float2bfloat16_rn(v);
}

// Two floats rounded to T and packed into one register, `lo` in the low 16 bits (the lower column).
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  uint16_t l, h;
  if constexpr (std::is_same_v<T, __half>) {
    l = __half_as_ushort(__float2half_rn(lo));
    h = __half_as_ushort(__float2half_rn(hi));
  } else {
    l = __bfloat16_as_ushort(__float2bfloat16_rn(lo));
    h = __bfloat16_as_ushort(__float2bfloat16_rn(hi));
  }
  return uint32_t(l) | (uint32_t(h) << 16);
}

// `words` 32-bit words from p (16-byte aligned, words % 4 == 0) through the read-only path.
template <int kWords>
__device__ __forceinline__ void load_words_aligned(const void* p, uint32_t* out) {
  static_assert(kWords % 4 == 0, "whole 16-byte vectors");
  const uint4* v = static_cast<const uint4*>(p);
#pragma unroll
  for (int i = 0; i < kWords / 4; ++i) {
    uint4 u = __ldg(v + i);
    out[4 * i] = u.x;
    out[4 * i + 1] = u.y;
    out[4 * i + 2] = u.z;
    out[4 * i + 3] = u.w;
  }
}

// Element i of a 16-bit array p (i < n) or 0, packed two per word: out[w] = {p[2w], p[2w+1]}.
template <int kWords>
__device__ __forceinline__ void load_u16_guarded(const uint16_t* p, int64_t first, int64_t n, uint32_t* out) {
#pragma unroll
  for (int w = 0; w < kWords; ++w) {
    const int64_t i = first + 2 * w;
    const uint32_t lo = i < n ? p[i] : 0u;
    const uint32_t hi = i + 1 < n ? p[i + 1] : 0u;
    out[w] = lo | (hi << 16);
  }
}

// Bytes of p (i < n) or 0, packed four per word.
template <int kWords>
__device__ __forceinline__ void load_u8_guarded(const uint8_t* p, int64_t first, int64_t n, uint32_t* out) {
#pragma unroll
  for (int w = 0; w < kWords; ++w) {
    uint32_t v = 0;
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      const int64_t i = first + 4 * w + b;
      if (i < n) v |= uint32_t(p[i]) << (8 * b);
    }
    out[w] = v;
  }
}

// ---- split-K reduction and epilogue -----------------------------------------------------------------------
// Every warp of the block holds a 16 x (8 * NT) tile of partial sums in the mma accumulator layout
// (acc[j][r]: row g + 8 * (r / 2), token 8j + 2t + r % 2). The tiles go through shared memory, then each thread
// adds the kWarps partials of some outputs and calls epi(row, token, sum) (block-local indices).
template <int NT, typename Acc, typename Epi>
__device__ __forceinline__ void reduce_and_store(const Acc (&acc)[NT][4], const Epi& epi) {
  __shared__ Acc red[kWarps][NT * 4][32];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int r = 0; r < 4; ++r) red[warp][4 * j + r][lane] = acc[j][r];
  __syncthreads();
  for (int i = threadIdx.x; i < kRowsPerBlock * 8 * NT; i += kThreads) {
    const int row = i & 15, tok = i >> 4;
    const int g = row & 7, j = tok >> 3, t = (tok & 7) >> 1, r = 2 * (row >> 3) + (tok & 1);
    Acc sum = 0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += red[w][4 * j + r][4 * g + t];
    epi(row, tok, sum);
  }
}

// Launch-time checks shared by the launchers: arch, then the launch error.
inline Status check_launch() {
  return cudaGetLastError() == cudaSuccess ? Status::kOk : Status::kCudaError;
}

}  // namespace joule::cuda::detail
