// 2:4 semi-structured sparse linear layers on the CPU (format SP24, kernels/formats/formats.h): the compressor,
// the decompressor and y = x * W^T over the kept values only. The metadata codec (kernels/formats/sp24_codec.h)
// is shared with the CUDA host code, so one packed model runs on both.
//
// Raw row-major pointers and shapes: x is [M, K], y is [M, N], W has N rows of K input features. Shapes >= 0;
// M or N may be 0; K % 16 == 0.
#pragma once
#include <cstdint>

#include "kernels/formats/sp24_codec.h"

namespace joule::kernels {

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
