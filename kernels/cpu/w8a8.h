// W8A8 linear on the CPU: int8 weights per output channel, int8 activations per token (quantized at run time),
// exact int32 accumulation, float epilogue. Format: kernels/formats/formats.h. Every fast function has the
// signature of its scalar reference and returns bit-identical results; the fast path (AVX2 or AVX-512 VNNI,
// OpenMP) is chosen at run time (kernels/cpu/isa.h) and falls back to the reference on CPUs without AVX2.
//
// Preconditions (not checked: these are raw kernels; the LibTorch binding checks shapes): pointers are valid for
// the stated shapes, q values are in [-127, 127] (never -128), K <= kW8A8MaxK. All outputs are row-major and do
// not alias the inputs. The functions may use OpenMP threads (omp_get_max_threads). Non-finite x is defined and
// the same in every path: a NaN is skipped by a row's max|x| and quantizes to 0; with a static scale +-Inf clamps
// to +-127; a row holding an Inf gets its own scale Inf and quantizes to zeros (Inf x 0 is a NaN), so its outputs
// are NaN (0 x Inf), not a plausible number.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/formats/formats.h"

namespace joule::kernels {


// Symmetric per-row int8 quantization of x [rows, cols]: scales[r] = max|x[r,:]| / 127 (1 for an all-zero row, and
// for a row whose max is below 127 / FLT_MAX, which quantizes to zeros), q[r,c] = round_half_away_from_zero(
// x[r,c] * (127 / max|x[r,:]|)) clamped to [-127, 127]. |x - scales[r] * q| <= scales[r] / 2 up to float rounding.
// q int8 [rows, cols], scales float [rows].
//
// ActQuant changes what the activation quantizer sees (the W8A8 op's options, kernels/formats/formats.h): with
// smooth_inv, row r is first multiplied by it element-wise (SmoothQuant); with static_scale > 0, every row uses
// that scale (from calibration) and values beyond 127 * static_scale clamp to +-127.
struct ActQuant {
  const float* smooth_inv = nullptr;  // [cols] or nullptr
  float static_scale = 0.0f;          // 0: dynamic, per row
};
void quantize_rows_s8_ref(const float* x, int64_t rows, int64_t cols, int8_t* q, float* scales, const ActQuant& aq = {});
void quantize_rows_s8(const float* x, int64_t rows, int64_t cols, int8_t* q, float* scales,
                      const ActQuant& aq = {});  // fast, identical

// The weights packed once for the AVX-512 VNNI GEMM, which otherwise repacks each column tile on every call:
// per 16 output columns, [K4 / 4][16 columns][4 k] bytes (K4 = K rounded up to 4, zero-padded), and each column's
// sum of weights (the kernel runs on x + 128 and subtracts 128 * colsum). An optional argument of the GEMMs
// below: given, the VNNI path serves every M (from one row up; without it, M >= isa::kW8A8VnniMinRows); results
// are bit-identical either way. Empty (w.empty()) where the VNNI path cannot run (CPU, JOULE_CPU_ISA,
// K > kW8A8MaxK): the GEMMs then ignore it. Made from, and used only with, the qw it was packed from.
struct W8A8Packed {
  int64_t N = 0, K = 0;
  std::vector<int8_t> w;        // (N + 15) / 16 * 16 * K4 bytes
  std::vector<int32_t> colsum;  // (N + 15) / 16 * 16
};
W8A8Packed pack_w8a8(const int8_t* qw, int64_t N, int64_t K);

// y[m,n] = acc * (x_scale[m] * w_scale[n]) (+ bias[n], fused: fma(acc, x_scale[m] * w_scale[n], bias[n])),
// acc = sum_k qx[m,k] * qw[n,k] as an exact int32 converted to float.
//   qx      int8  [M, K]  row-major        x_scale float [M]
//   qw      int8  [N, K]  row-major        w_scale float [N]   (the W8A8 weight layout)
//   bias    float [N] or nullptr           y       float [M, N]
void gemm_s8s8_ref(const int8_t* qx, const float* x_scale, int64_t M, int64_t K, const int8_t* qw, const float* w_scale,
                   int64_t N, const float* bias, float* y);
void gemm_s8s8(const int8_t* qx, const float* x_scale, int64_t M, int64_t K, const int8_t* qw, const float* w_scale,
               int64_t N, const float* bias, float* y, const W8A8Packed* packed = nullptr);

// The whole op: x float [M, K] is quantized (per token, or as `aq` says) into scratch, then gemm_s8s8.
// y float [M, N].
void linear_w8a8_ref(const float* x, int64_t M, int64_t K, const int8_t* qw, const float* w_scale, int64_t N,
                     const float* bias, float* y, const ActQuant& aq = {});
void linear_w8a8(const float* x, int64_t M, int64_t K, const int8_t* qw, const float* w_scale, int64_t N,
                 const float* bias, float* y, const ActQuant& aq = {}, const W8A8Packed* packed = nullptr);

namespace detail {
// Test-only view of the fast path's integer accumulators: acc[m,n] = sum_k qx[m,k] * qw[n,k] as int32, computed by
// the same blocked kernels and threading as gemm_s8s8 (only the epilogue differs). acc int32 [M, N].
void gemm_s8s8_s32(const int8_t* qx, int64_t M, int64_t K, const int8_t* qw, int64_t N, int32_t* acc,
                   const W8A8Packed* packed = nullptr);
// The fast path has two GEMM kernels: AVX2 (any M) and AVX-512 VNNI (M >= 16, on CPUs that have it). Tests
// switch VNNI off to check the AVX2 kernels on such CPUs too; vnni_available() tells whether it would run.
void use_vnni(bool on);
bool vnni_available();
}  // namespace detail

}  // namespace joule::kernels
