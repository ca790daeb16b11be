// Packed weight formats, the one definition shared by the CPU kernels (kernels/cpu), the CUDA kernels (cuda/),
// the op binding (compress/ops) and the passes. Plain row-major arrays described here once, with the constants
// and the size arithmetic every reader uses; the 2:4 metadata codec is kernels/formats/sp24_codec.h. Host and
// device code include this header (plain constexpr / inline functions, JOULE_HD under nvcc).
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
// SP24 (2:4 semi-structured sparse weights; what mma.sp runs on the GPU, kernels/cpu/sp24.h on the CPU):
//   dense    W      [N, K]       row-major; every aligned run of 4 along K (a "chunk") has <= 2 non-zeros
//   values   T      [N, K/2]     the 2 kept values of chunk c at [n, 2c] and [n, 2c+1], in increasing k order
//                                (T = float32 in archives; the GPU rounds them to fp16/bf16 per call)
//   meta     uint16 [N, K/16]    4 chunks per word: chunk c of the word at bits [4(c%4)+3 : 4(c%4)] =
//                                idx0 | idx1 << 2, idx0 < idx1 the positions (0..3) of the kept values. A chunk
//                                with fewer than 2 non-zeros keeps zeros at the lowest free positions (idx0 != idx1
//                                always: 0b0000, 0b0101, 0b1010, 0b1111 are invalid for the hardware). Archives
//                                store meta as int16 (the same bits).
//   W[n, 4c + idx0] = values[n, 2c], W[n, 4c + idx1] = values[n, 2c + 1], every other W[n, 4c + j] = 0.
//   K % 16 == 0. The row-major order is the storage order: the CUDA kernel permutes chunks inside each 64-wide
//   K block while it builds mma.sp fragments (cuda/fragments.h), so no offline interleaving is needed.
//   32 bits per kept value + 2 bits of index (17 b/w dense) in float; 9 b/w at fp16 on the GPU.
//
// The GPU reads W8A8 and W4 byte for byte as stored here (no repack): its kernels permute k inside their K
// blocks consistently for weights and activations (cuda/tiles.h, cuda/fragments.h).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define JOULE_HD __host__ __device__
#else
#define JOULE_HD
#endif

namespace joule::formats {

// ---- W8A8 ----
constexpr int kW8Max = 127;  // symmetric int8 range used by W8A8 (weights and activations)
// Largest K whose worst-case dot product, K * 127^2, fits int32: 133143 * 16129 = 2147463447 < 2^31 - 1.
constexpr int64_t kW8A8MaxK = 133143;

// ---- W4 ----
constexpr int kW4Max = 15;  // unsigned 4-bit range used by W4
// The group sizes W4 accepts: a power of two >= 2 (the kernels split K by shifts; the GPU's blocks hold whole
// groups). The one check every reader (options, op binding, CPU and CUDA kernels) applies.
JOULE_HD constexpr bool w4_group_valid(int64_t group) { return group >= 2 && (group & (group - 1)) == 0; }
JOULE_HD constexpr int64_t w4_row_bytes(int64_t k) { return (k + 1) / 2; }                  // qweight columns
JOULE_HD constexpr int64_t w4_groups(int64_t k, int64_t group) { return (k + group - 1) / group; }  // scales/zeros columns
// The code q[n, k] of one qweight row (row = qweight + n * w4_row_bytes(K)).
JOULE_HD inline int w4_nibble(const uint8_t* row, int64_t k) { return (row[k >> 1] >> ((k & 1) * 4)) & 0x0F; }
// Whether weight k opens a group (k % group == 0), for a valid group.
JOULE_HD constexpr bool w4_group_start(int64_t k, int64_t group) { return (k & (group - 1)) == 0; }

// ---- SP24 (2:4) ----
constexpr int kSp24Chunk = 4;              // dense values per chunk
constexpr int kSp24Kept = 2;               // kept values per chunk
constexpr int kSp24KPerMetaWord = 16;      // dense k covered by one uint16 metadata word (4 chunks x 4 bits)
constexpr int kSp24KAlign = 16;            // K must be a multiple of this
constexpr uint16_t kSp24PadNibble = 0x4;   // idx0 = 0, idx1 = 1: the metadata of an all-zero chunk
constexpr uint16_t kSp24PadWord = kSp24PadNibble * 0x1111;  // a metadata word of 4 all-zero chunks (0x4444)
JOULE_HD constexpr int64_t sp24_values_cols(int64_t k) { return k / 2; }
JOULE_HD constexpr int64_t sp24_meta_cols(int64_t k) { return k / kSp24KPerMetaWord; }

static_assert(kSp24KPerMetaWord * 4 / kSp24Chunk == 16, "one uint16 holds the 4-bit codes of 4 chunks");
static_assert(kSp24KAlign % kSp24KPerMetaWord == 0, "an aligned K holds whole metadata words");
static_assert(sizeof(int8_t) == 1 && sizeof(uint8_t) == 1, "packed formats assume 8-bit bytes");
static_assert(sizeof(float) == 4, "scales are IEEE fp32");

}  // namespace joule::formats

// The CPU and CUDA kernel namespaces read the format names as their own (kernels::kSp24KAlign,
// cuda::w4_groups): one definition, no copies to keep in agreement.
namespace joule::kernels {
using namespace joule::formats;
}
namespace joule::cuda {
using namespace joule::formats;
}
