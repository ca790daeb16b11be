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
//
// SP24 (2:4 semi-structured sparse weights, kernels/sp24.h; the CPU storage of the CUDA format in cuda/formats.h,
// which is the definition: the metadata must stay bit-identical so one model runs on both):
//   values   float  [N, K/2]   the 2 kept values of chunk c (dense k in [4c, 4c+4)) at [n, 2c], [n, 2c+1]
//   meta     uint16 [N, K/16]  chunk c at bits [4(c%4)+3 : 4(c%4)] of word c/4: idx0 | idx1 << 2, idx0 < idx1
//                              (a chunk with < 2 non-zeros keeps zeros at the lowest free positions)
//   W[n, 4c + idx0] = values[n, 2c], W[n, 4c + idx1] = values[n, 2c + 1], other W[n, 4c + j] = 0; K % 16 == 0.
//   The GPU casts values to fp16/bf16 per call; 32 bits per kept value + 2 bits of index (17 b/w dense).
#pragma once
#include <cstdint>

namespace joule::kernels {

constexpr int kW8Max = 127;  // symmetric int8 range used by W8A8 (weights and activations)
constexpr int kW4Max = 15;   // unsigned 4-bit range used by W4

inline int64_t w4_row_bytes(int64_t k) { return (k + 1) / 2; }
inline int64_t w4_groups(int64_t k, int64_t group) { return (k + group - 1) / group; }

constexpr int kSp24Chunk = 4;          // dense values per chunk
constexpr int kSp24Kept = 2;           // kept values per chunk
constexpr int kSp24KAlign = 16;        // K must be a multiple of this (4 chunks per metadata word)
inline int64_t sp24_meta_cols(int64_t k) { return k / kSp24KAlign; }

static_assert(sizeof(int8_t) == 1 && sizeof(uint8_t) == 1, "packed formats assume 8-bit bytes");
static_assert(sizeof(float) == 4, "scales are IEEE fp32");

}  // namespace joule::kernels
