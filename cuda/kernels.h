// Launchers of Joule's CUDA GEMM kernels (no LibTorch). Every launcher takes device pointers, shapes and a
// stream, never throws and never synchronizes, and returns a Status in this order of checks:
//   kInvalidShape   bad shape, group size, dtype, or a null pointer that the shape needs (checked first, on the
//                   host, before any CUDA call, so it is testable without a GPU)
//   kOk             M == 0 or N == 0: nothing to do (no CUDA call)
//   kNoDevice / kUnsupportedArch   no GPU, or SM < 80 (sparse and integer tensor cores need Ampere)
//   kCudaError      the launch failed (cudaGetLastError)
// Layouts are row-major; x is [M, K] (M tokens), the weight has N output rows of K inputs, y is [M, N].
// Formats: kernels/formats/formats.h (W8A8, W4, 2:4 sparse, with their size functions) and
// kernels/formats/sp24_codec.h (the 2:4 metadata codec).
//
// Kernels (each warp owns 16 weight rows x up to 64 tokens and builds tensor-core fragments straight from
// global memory, see cuda/fragments.h; the 4 warps of a block split K and add their partial sums):
//   gemm_sp24  y = x * W^T, W 2:4 sparse (values + metadata), mma.sp m16n8k16, fp16/bf16, f32 accumulation
//   gemm_s8s8  y = x_scale[m] * w_scale[n] * (qx * qw^T) (+ bias), mma m16n8k32 s8 x s8 -> s32 (exact)
//   gemm_w4    y = x * dequant(W4)^T (+ bias), 4-bit weights dequantized in registers, mma m16n8k16 fp16/bf16
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/device.h"
#include "cuda/tiles.h"

namespace joule::cuda {

// Element type of activations and outputs. kF16 / kBF16 are IEEE half and bfloat16 (16-bit patterns).
enum class DType { kF16, kBF16, kF32 };

// ---- 2:4 semi-structured sparse --------------------------------------------------------------------------

// Host compressor: w [N, K] (16-bit fp16 or bf16 patterns; +-0 counts as zero) -> values [N, sp24_values_cols(K)]
// (same type) and meta uint16 [N, sp24_meta_cols(K)] (kernels/formats/formats.h). kInvalidShape unless
// K % kSp24KAlign == 0; kInvalidValue when a chunk has more than 2 non-zeros (outputs are then unspecified).
Status compress_sp24_ref(const uint16_t* w, int64_t N, int64_t K, uint16_t* values, uint16_t* meta);
// Inverse of compress_sp24_ref: w [N, K] with the pruned positions set to +0.
Status decompress_sp24_ref(const uint16_t* values, const uint16_t* meta, int64_t N, int64_t K, uint16_t* w);

// Device compressor, same contract as compress_sp24_ref. A chunk with more than 2 non-zeros keeps its first
// two and, when `violations` is not null, adds 1 to *violations (a device int the caller zeroes and reads).
Status launch_compress_sp24(const uint16_t* w, int64_t N, int64_t K, uint16_t* values, uint16_t* meta,
                            int* violations, cudaStream_t stream);

// y[M, N] = x[M, K] * W^T (+ bias[N]); dtype kF16 or kBF16 for x, values and y; bias float or null.
// K % kSp24KAlign == 0, K > 0; any M, N. Accumulation in f32.
Status launch_gemm_sp24(DType dtype, const void* x, const void* values, const uint16_t* meta, const float* bias,
                        void* y, int64_t M, int64_t N, int64_t K, cudaStream_t stream);

// ---- W8A8 ------------------------------------------------------------------------------------------------

// Per-token int8 quantization of x [M, K] (dtype kF32, kF16 or kBF16) into q int8 [M, K] and x_scale [M].
// v = x * smooth_inv[k] (smooth_inv float [K] or null). static_scale null: dynamic, x_scale[m] = max|v| / 127
// and q = clamp(round_half_away(v * (127 / max|v|)), -127, 127) (bit-identical to the CPU
// kernels::quantize_rows_s8; an all-zero row gets scale 1). static_scale (a device pointer to one float s):
// x_scale[m] = s and q = clamp(round_half_away(v * (1 / s)), -127, 127) (as kernels::ActQuant's static_scale).
Status launch_quantize_rows_s8(DType dtype, const void* x, const float* smooth_inv, const float* static_scale,
                               int8_t* q, float* x_scale, int64_t M, int64_t K, cudaStream_t stream);

// y[m, n] = fma(float(acc[m, n]), x_scale[m] * w_scale[n], bias[n]) (or the product without bias), acc the
// exact int32 sum_k qx[m,k] * qw[n,k]; out_dtype kF32, kF16 or kBF16 (rounded once from the f32 value, which is
// bit-identical to the CPU kernels::gemm_s8s8 result). Any M, N, K <= kS8MaxK; q values in [-127, 127].
Status launch_gemm_s8s8(const int8_t* qx, const float* x_scale, const int8_t* qw, const float* w_scale,
                        const float* bias, DType out_dtype, void* y, int64_t M, int64_t N, int64_t K,
                        cudaStream_t stream);
// The raw accumulators acc int32 [M, N] (tests compare them exactly with an integer reference).
Status launch_gemm_s8s8_s32(const int8_t* qx, const int8_t* qw, int32_t* acc, int64_t M, int64_t N, int64_t K,
                            cudaStream_t stream);

// ---- W4A16 -----------------------------------------------------------------------------------------------

// y[M, N] = x[M, K] * W^T (+ bias), W = scales * (q - zeros) in groups of `group` along K (W4 format), each
// weight rounded to dtype (kF16 or kBF16) before the tensor-core product; f32 accumulation; x and y in dtype.
// qweight [N, w4_row_bytes(K)], scales and zeros [N, w4_groups(K, group)]; w4_group_valid(group) and
// group <= 2^30; any M, N, K >= 1 (odd K included).
Status launch_gemm_w4(DType dtype, const void* x, const uint8_t* qweight, const float* scales, const uint8_t* zeros,
                      const float* bias, void* y, int64_t M, int64_t N, int64_t K, int64_t group,
                      cudaStream_t stream);

}  // namespace joule::cuda
