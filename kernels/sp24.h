// 2:4 semi-structured sparse linear layers on the CPU (format SP24, kernels/quant_formats.h): the compressor,
// the decompressor and y = x * W^T over the kept values only. The metadata layout is the one the CUDA kernel
// reads (cuda/formats.h), so the row templates below are shared by cuda/reference.cpp, which runs them on 16-bit
// float patterns; header-only, so cuda/ needs no link against joule_kernels.
//
// Raw row-major pointers and shapes: x is [M, K], y is [M, N], W has N rows of K input features. Shapes >= 0;
// M or N may be 0; K % 16 == 0.
#pragma once
#include <cstdint>

#include "kernels/quant_formats.h"

namespace joule::kernels {

// Positions idx0 < idx1 kept from a chunk whose non-zeros are the set bits of `nz` (bit j = position j): the
// non-zeros, padded with the lowest free positions when there are fewer than two (the hardware rejects
// idx0 == idx1); with more than two, the first two. The same rule as the device compressor (cuda/fragments.h
// frag::sp24_chunk), so host and device metadata agree bit for bit.
inline void sp24_positions(unsigned nz, int* idx0, int* idx1) {
  int kept[2], n = 0;
  for (int j = 0; j < 4 && n < 2; ++j)
    if (nz >> j & 1u) kept[n++] = j;
  for (int j = 0; j < 4 && n < 2; ++j)
    if (!(nz >> j & 1u)) kept[n++] = j;
  *idx0 = kept[0] < kept[1] ? kept[0] : kept[1];
  *idx1 = kept[0] < kept[1] ? kept[1] : kept[0];
}

// The 4-bit code of chunk c in its metadata row, and its inverse (idx0 >= idx1 marks an invalid code).
inline uint16_t sp24_code(int idx0, int idx1, int64_t c) { return uint16_t((idx0 | idx1 << 2) << (4 * (c % 4))); }
inline void sp24_decode(const uint16_t* meta_row, int64_t c, int* idx0, int* idx1) {
  const unsigned code = meta_row[c / 4] >> (4 * (c % 4)) & 0xfu;
  *idx0 = int(code & 3u);
  *idx1 = int(code >> 2);
}

// Compresses w [N, K] (T: float, or 16-bit float patterns) into values [N, K/2] and meta [N, K/16];
// nonzero(v) decides what counts as a non-zero (+-0 must not). Returns the number of chunks with more than two
// non-zeros (each keeps its first two; the caller reports the error). K % 16 == 0 is the caller's check.
template <typename T, typename NonZero>
int64_t sp24_compress_rows(const T* w, int64_t N, int64_t K, T* values, uint16_t* meta, NonZero nonzero) {
  int64_t violations = 0;
  for (int64_t n = 0; n < N; ++n) {
    const T* src = w + n * K;
    T* val = values + n * (K / 2);
    uint16_t* mrow = meta + n * sp24_meta_cols(K);
    for (int64_t i = 0; i < sp24_meta_cols(K); ++i) mrow[i] = 0;
    for (int64_t c = 0; c < K / kSp24Chunk; ++c) {
      unsigned nz = 0;
      for (int j = 0; j < kSp24Chunk; ++j) nz |= unsigned(nonzero(src[4 * c + j])) << j;
      violations += __builtin_popcount(nz) > kSp24Kept;
      int i0, i1;
      sp24_positions(nz, &i0, &i1);
      val[2 * c] = src[4 * c + i0];
      val[2 * c + 1] = src[4 * c + i1];
      mrow[c / 4] |= sp24_code(i0, i1, c);
    }
  }
  return violations;
}

// Inverse of sp24_compress_rows: w [N, K] with the pruned positions set to T(0). False (w then partly written)
// when a code has idx0 >= idx1, which no compressor writes.
template <typename T>
bool sp24_decompress_rows(const T* values, const uint16_t* meta, int64_t N, int64_t K, T* w) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < K / kSp24Chunk; ++c) {
      int i0, i1;
      sp24_decode(meta + n * sp24_meta_cols(K), c, &i0, &i1);
      if (i0 >= i1) return false;
      T* dst = w + n * K + 4 * c;
      for (int j = 0; j < kSp24Chunk; ++j) dst[j] = T(0);
      dst[i0] = values[n * (K / 2) + 2 * c];
      dst[i1] = values[n * (K / 2) + 2 * c + 1];
    }
  return true;
}

// Float SP24. Both throw std::invalid_argument (one line) for K % 16 != 0, for a chunk of w with more than two
// non-zeros (compress), or for an invalid metadata code (decompress), before or instead of returning garbage.
void compress_sp24(const float* w, int64_t N, int64_t K, float* values, uint16_t* meta);
void decompress_sp24(const float* values, const uint16_t* meta, int64_t N, int64_t K, float* w);

// y[M, N] = x[M, K] * W^T + (bias ? bias[n] : 0), W given as values + meta. Scalar reference: for each output,
// sum over the kept values in storage order (chunk by chunk, idx0 then idx1) in float, then add the bias. Only
// the two kept positions of each chunk are read, so a padded zero costs a multiply by 0, never a NaN from x
// (0 * inf aside, as in a dense GEMM). No validation of meta (any 4-bit code reads inside its chunk).
void linear_sp24_ref(const float* x, int64_t M, int64_t K, const float* values, const uint16_t* meta, int64_t N,
                     const float* bias, float* y);

// Same contract and bit-identical result (same summation order in every output; no FMA): OpenMP threads over
// blocks of W rows, register tiles of (rows of x) x (rows of W) with independent accumulator chains, AVX2 where
// the CPU has it. Half the MACs of a dense GEMM, but an indexed load per MAC and no FMA: on the 2-core project
// machine it is slower than LibTorch's dense fp32 GEMM (2 threads, 1x4096x4096: 4.9-7.3 vs 3.5 ms;
// 128x384x1536: 2.5 vs 0.86 ms). On the CPU the format saves weight bytes; the speed-up is the GPU kernel's.
void linear_sp24(const float* x, int64_t M, int64_t K, const float* values, const uint16_t* meta, int64_t N,
                 const float* bias, float* y);

}  // namespace joule::kernels
