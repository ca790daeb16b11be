// W4 weight-only linear layers: asymmetric 4-bit weights in groups of G input features, float activations.
// The packed format (qweight / scales / zeros, w = scale * (q - zero)) is defined in kernels/formats/formats.h.
//
// Every function takes raw row-major pointers and shapes; x is [M, K], y is [M, N], the weight has N output
// rows of K input features. `group` is G: a power of two >= 2 (32, 64, 128 in practice); a group larger than
// K is allowed (one group per row). Every function throws std::invalid_argument for a bad group, before it
// touches any buffer. Shapes must be >= 0; M, N or K may be 0.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/formats/formats.h"

namespace joule::kernels {

// Round-to-nearest quantization per (row, group). Over the group's values, min = min(0, min w) and
// max = max(0, max w) (so 0 is exactly representable), scale = (max - min) / 15,
// zero = clamp(round(-min / scale), 0, 15), q = clamp(round(w / scale) + zero, 0, 15). round() is
// round-half-to-even (std::nearbyint, like torch.round). An all-zero group (or one whose range underflows
// to scale 0) gets scale 1, zero 0. Guarantee: |w - scale * (q - zero)| <= scale / 2 (+ float rounding).
// Writes qweight [N, ceil(K/2)] (pad nibble 0), scales [N, ceil(K/G)], zeros [N, ceil(K/G)].
void quantize_w4_rtn(const float* w, int64_t N, int64_t K, int64_t group, uint8_t* qweight, float* scales,
                     uint8_t* zeros);

// The pieces of quantize_w4_rtn, for quantizers that choose codes themselves (GPTQ): the (scale, zero) of one
// group of n weights, the code of one weight under them, and the nibble packing of codes [N, K] (0..15).
void w4_group_params(const float* w, int64_t n, float* scale, uint8_t* zero);
int w4_code(float w, float scale, int zero);
void pack_w4(const uint8_t* codes, int64_t N, int64_t K, uint8_t* qweight);

// w[n, k] = scales[n, g] * float(q[n, k] - zeros[n, g]), g = k / G; w is [N, K] float.
void dequantize_w4(const uint8_t* qweight, const float* scales, const uint8_t* zeros, int64_t N, int64_t K,
                   int64_t group, float* w);

// y[M, N] = x[M, K] * dequant(W)^T + (bias ? bias[n] : 0). Scalar reference: dequantizes one weight row at a
// time exactly as dequantize_w4 does and sums x * w in increasing k order in float, so it matches a plain
// float matmul on dequantize_w4's output.
void linear_w4_ref(const float* x, int64_t M, int64_t K, const uint8_t* qweight, const float* scales,
                   const uint8_t* zeros, int64_t N, int64_t group, const float* bias, float* y);

// Same contract as linear_w4_ref; AVX2+FMA when the CPU has it (else the reference; kernels/cpu/isa.h chooses
// the path), OpenMP threads over N (omp_get_max_threads()). The float weight matrix is never materialised:
//   M <= 4 and G >= 16: GEMV kernel that streams the packed weights once, summing q * x per group and applying
//     scale * (sum q*x - zero * sum x) at the group's end;
//   otherwise: panels of 16 weight rows x 256 k dequantized into an L1 buffer for a 6x16 FMA micro-kernel.
// Results differ from the reference only by summation order (relative ~1e-6 of sum_k |x * w|) and do not
// depend on the thread count.
void linear_w4(const float* x, int64_t M, int64_t K, const uint8_t* qweight, const float* scales,
               const uint8_t* zeros, int64_t N, int64_t group, const float* bias, float* y);

// W4A8: the same weights against int8 activations. Each row of x is quantized as quantize_rows_s8 does
// (kernels/cpu/w8a8.h: symmetric, one scale per row, computed at run time), and the products are exact integers:
//   y[m, n] = xs[m] * sum_g scales[n, g] * float(sum_{k in g} q[n, k] * xq[m, k] - zeros[n, g] * sum_{k in g} xq[m, k])
//             + bias[n]
// The reference sums the groups in increasing g in float. A different numeric contract from linear_w4 (x is
// rounded to 8 bits: `joule --w4a8`, compress/ir/lower.h); same arguments, same checks.
void linear_w4a8_ref(const float* x, int64_t M, int64_t K, const uint8_t* qweight, const float* scales,
                     const uint8_t* zeros, int64_t N, int64_t group, const float* bias, float* y);
// The weights repacked once for the W4A8 panel kernel (pack_w4a8): per 16 output columns (a panel) and 8 k, 64
// bytes, byte 4c + b of output column c holding the codes of k0 + b (low nibble) and k0 + 4 + b (high nibble), so
// that the two nibble halves are vpdpbusd operands with the columns in the lanes; codes past N or K are 0. Beside
// them each panel's scales and scale x zero per group, [panel][group][16] floats (0 past N). As many bytes as the
// nibbles, plus 8 per weight group.
struct W4A8Packed {
  int64_t N = 0, K = 0, group = 0;
  std::vector<uint8_t> w;       // [ceil(N/16)][ceil(K/8)][64]
  std::vector<float> scale, sz;  // [ceil(N/16)][ceil(K/G)][16]
};
W4A8Packed pack_w4a8(const uint8_t* qweight, const float* scales, const uint8_t* zeros, int64_t N, int64_t K,
                     int64_t group);

// AVX-512 VNNI or AVX2 for groups of 8 and more (isa::w4a8_impl; the two give the same bits), else the reference;
// OpenMP threads over N. It runs on `packed` (pack_w4a8 of these very arguments: the op caches it per weight), or packs the
// weights itself first (one pass over them: for callers without a cache). The integer sums are the reference's;
// the float sums over groups run in another order (relative ~1e-6 of sum_g |scale * (dot - zero * sum)|), the
// same for any thread count.
void linear_w4a8(const float* x, int64_t M, int64_t K, const uint8_t* qweight, const float* scales,
                 const uint8_t* zeros, int64_t N, int64_t group, const float* bias, float* y,
                 const W4A8Packed* packed = nullptr);

// The argument check every W4 function starts with (std::invalid_argument naming `fn`).
void w4_check_args(const char* fn, int64_t M, int64_t N, int64_t K, int64_t group);

}  // namespace joule::kernels
