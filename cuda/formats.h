// GPU-side weight formats of Joule's CUDA kernels. The CPU formats (W8A8, W4) are defined in
// kernels/quant_formats.h; the GPU kernels read those byte for byte (no repack), so this header only adds the
// 2:4 sparse format and the constants the launchers check. Plain constants, usable from host and device code.
//
// SP24 (2:4 semi-structured sparse weight, fp16 or bf16; what mma.sp runs):
//   dense    W      [N, K]       row-major; every aligned run of 4 along K (a "chunk") has <= 2 non-zeros
//   values   T      [N, K/2]     the 2 kept values of chunk c at [n, 2c] and [n, 2c+1], in increasing k order
//   meta     uint16 [N, K/16]    4 chunks per word: chunk c of the word at bits [4c+3 : 4c] = idx0 | idx1 << 2,
//                                idx0 < idx1 the positions (0..3) of the kept values inside the chunk. A chunk with
//                                fewer than 2 non-zeros keeps zeros at the lowest free positions (idx0 != idx1
//                                always: 0b0000, 0b0101, 0b1010, 0b1111 are invalid for the hardware).
//   W[n, 4c + idx0] = values[n, 2c], W[n, 4c + idx1] = values[n, 2c + 1], every other W[n, 4c + j] = 0.
//   K % 16 == 0 (zero-pad K otherwise); 16 bits per kept value + 2 bits of index = 9 bits per dense weight.
//   The row-major order is the storage order; the kernel permutes chunks inside each 64-wide K block while it
//   builds mma.sp fragments (cuda/fragments.h), so no offline interleaving is needed.
//
// W4 on the GPU: qweight / scales / zeros exactly as in kernels/quant_formats.h (uint8 [N, ceil(K/2)], low
// nibble = even k; float [N, ceil(K/G)]; uint8 [N, ceil(K/G)]). The W4A16 kernel reads each thread's 16
// consecutive k (8 bytes) per 64-wide K block and permutes k inside the block consistently for weights and
// activations (cuda/fragments.h), which gives the coalesced loads a Marlin-style repack would, without one.
//
// W8A8 on the GPU: int8 weight [N, K], float w_scale [N]; activations int8 [M, K] with float x_scale [M]
// (kernels/quant_formats.h). The s8 kernel permutes k inside 128-wide K blocks the same way.
#pragma once
#include <cstdint>

namespace joule::cuda {

constexpr int kSp24Chunk = 4;           // dense values per chunk
constexpr int kSp24Kept = 2;            // kept values per chunk
constexpr int kSp24KPerMetaWord = 16;   // dense k covered by one uint16 metadata word (4 chunks x 4 bits)
constexpr int kSp24KAlign = 16;         // K must be a multiple of this
constexpr uint16_t kSp24PadNibble = 0x4;  // idx0 = 0, idx1 = 1: the metadata of an all-zero chunk

inline int64_t sp24_values_cols(int64_t k) { return k / 2; }
inline int64_t sp24_meta_cols(int64_t k) { return k / kSp24KPerMetaWord; }

// K blocks of the kernels (the unit inside which k is permuted; a short last block is zero-padded).
constexpr int kBlockKF16 = 64;   // W4A16 and 2:4: four m16n8k16 steps
constexpr int kBlockKS8 = 128;   // W8A8: four m16n8k32 steps

// Largest K of the s8 GEMM (int32 accumulators cannot overflow): the same bound as the CPU kernel.
constexpr int64_t kS8MaxK = 133143;

static_assert(kSp24KPerMetaWord * 4 / kSp24Chunk == 16, "one uint16 holds the 4-bit codes of 4 chunks");
static_assert(kBlockKF16 % kSp24KPerMetaWord == 0, "a 2:4 K block holds whole metadata words");

}  // namespace joule::cuda
