// Packed quantized weight formats, shared by the CPU kernels, the quantization pass and (later) the CUDA
// kernels. Plain row-major arrays described here once; every kernel and test refers to these definitions.
//
// W8A8 (symmetric int8 weights per output channel, int8 activations per token, computed at run time):
//   weight   int8  [N, K]   q_w[n,k] in [-127, 127]      w[n,k] ~= w_scale[n] * q_w[n,k]
//   w_scale  float [N]      max_k |w[n,k]| / 127 (a zero row gets scale 1 so it dequantizes to zeros)
//   x        float [M, K] -> q_x int8 [M, K] in [-127, 127], x_scale[m] = max_k |x[m,k]| / 127
//   y[m,n] = x_scale[m] * w_scale[n] * sum_k q_x[m,k] * q_w[n,k] (+ bias[n])
//   Both operands stay in [-127, 127] (never -128), so |sum| <= K * 127^2 fits int32 for K < 133,000.
//   8 bits per weight + 32 bits per output channel.
//
// W4 (asymmetric 4-bit weights in groups of G consecutive input features; activations stay float):
//   qweight  uint8 [N, ceil(K/2)]      two weights per byte: low nibble = even k, high nibble = odd k;
//                                      a pad nibble (odd K) is 0
//   scales   float [N, ceil(K/G)]      per (row, group)
//   zeros    uint8 [N, ceil(K/G)]      integer zero point in [0, 15]
//   w[n,k] ~= scales[n,g] * (q[n,k] - zeros[n,g]),  g = k / G; the last group may be shorter than G.
//   G is a power of two >= 2 (32, 64, 128); 4 bits per weight + 40 bits per group (4.3125 b/w at G = 128).
#pragma once
#include <cstdint>

namespace joule::kernels {

constexpr int kW8Max = 127;  // symmetric int8 range used by W8A8 (weights and activations)
constexpr int kW4Max = 15;   // unsigned 4-bit range used by W4

inline int64_t w4_row_bytes(int64_t k) { return (k + 1) / 2; }
inline int64_t w4_groups(int64_t k, int64_t group) { return (k + group - 1) / group; }

static_assert(sizeof(int8_t) == 1 && sizeof(uint8_t) == 1, "packed formats assume 8-bit bytes");
static_assert(sizeof(float) == 4, "scales are IEEE fp32");

}  // namespace joule::kernels
