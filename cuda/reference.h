// Host references for the CUDA kernels (plain C++, no GPU): 16-bit float conversions, dense reference GEMMs, and
// fragment-level emulators. An emulator assembles every lane's registers exactly as its kernel does (the same
// cuda/fragments.h functions, the same segment addresses and zero padding) and then applies the PTX ISA register
// semantics of the mma instruction, so a GPU-less machine checks the k permutation, the 2:4 metadata words and
// the W4 nibble/group decoding against a plain GEMM. What it cannot check: the PTX itself and the hardware.
#pragma once
#include <cstdint>

#include "cuda/kernels.h"

namespace joule::cuda::ref {

// Round-to-nearest-even conversions between float and the 16-bit patterns of DType kF16 / kBF16.
float to_float(DType dtype, uint16_t bits);
uint16_t from_float(DType dtype, float v);

// y[M, N] = x[M, K] * w[N, K]^T (+ bias[N]) in double, rounded to float. |x|*|w| sums go to abs_sum (or null):
// the scale of the rounding error any float GEMM of these inputs may make.
void gemm(const float* x, const float* w, const float* bias, int64_t M, int64_t N, int64_t K, float* y,
          float* abs_sum);
// acc[M, N] = sum_k qx[m,k] * qw[n,k], exact (int64 accumulation; fits int32 for K <= kS8MaxK).
void gemm_s8_s32(const int8_t* qx, const int8_t* qw, int64_t M, int64_t N, int64_t K, int32_t* acc);
// W4 dequantized to float (as kernels::dequantize_w4) and then rounded to dtype: the weights the W4A16 kernel
// multiplies. w [N, K] float.
void dequantize_w4_rounded(DType dtype, const uint8_t* qweight, const float* scales, const uint8_t* zeros,
                           int64_t N, int64_t K, int64_t group, float* w);

// Fragment emulators (no bias; f32 or exact s32 accumulation). false when a lane would feed the hardware an
// invalid operand (a 2:4 metadata code with idx0 >= idx1).
bool emulate_gemm_sp24(DType dtype, const uint16_t* x, const uint16_t* values, const uint16_t* meta, int64_t M,
                       int64_t N, int64_t K, float* y);
bool emulate_gemm_s8(const int8_t* qx, const int8_t* qw, int64_t M, int64_t N, int64_t K, int32_t* acc);
bool emulate_gemm_w4(DType dtype, const uint16_t* x, const uint8_t* qweight, const float* scales,
                     const uint8_t* zeros, int64_t M, int64_t N, int64_t K, int64_t group, float* y);

}  // namespace joule::cuda::ref
