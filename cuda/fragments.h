// Fragment assembly shared by the kernels and by the host emulator that tests them without a GPU.
//
// Every kernel works on K blocks (64 k for fp16/bf16, 128 k for s8) split into 4 mma steps, and permutes k
// inside a block so that each thread reads one contiguous segment per row instead of the scattered columns
// the mma fragment layouts name. A GEMM sums over k, so any permutation is exact as long as the weight (A)
// and activation (B) fragments use the same one; the functions below are that one permutation per kernel.
//
// Lane notation (PTX ISA, "Matrix fragments for mma.m16n8k*"): g = lane / 4 (groupID), t = lane % 4
// (threadID_in_group). Fragment rows g and g + 8 are weight rows (output features), fragment column g of B is
// a token. "Virtual" k is the column index the PTX fragment tables use; "real" k is the column in memory.
//
//  f16/bf16 dense (mma.m16n8k16, W4A16): thread t owns real k [16t, 16t + 16) of a 64-wide block (8 bytes of
//    packed W4 per row, 8 words of activations). Step s, half hi (0: virtual cols 2t..2t+1, 1: 2t+8..2t+9):
//    real k = 16t + 4s + 2hi + {0,1}: word 2s + hi of the activation segment, byte 2s + hi of the W4 segment.
//    A registers: {row g hi 0, row g+8 hi 0, row g hi 1, row g+8 hi 1}; B registers: {hi 0, hi 1}.
//  2:4 sparse (mma.sp.m16n8k16, A = compressed weights): virtual chunk c (4 dense k) of step s is real chunk
//    4c + s of the block. Thread t holds the kept pair of virtual chunk t = compressed values 8t + 2s + {0,1}:
//    word s of its 4-word value segment [8t, 8t + 8). A registers: {row g, row g+8}. Metadata (selector 0: lane
//    4g holds the word for its quad): bits [4c+3:4c] row g, [16+4c+3:16+4c] row g+8, each the 4-bit code of
//    real chunk 4c + s. B: virtual k 2t + e lies in virtual chunk t/2 at position 2(t%2) + e, so real
//    k = 16(t/2) + 4s + 2(t%2) + e: word 2s + (t%2) of the 8-word activation segment starting at real k
//    16(t/2) (register 0) and 32 + 16(t/2) (register 1).
//  s8 (mma.m16n8k32, W8A8): thread t owns real k [32t, 32t + 32) of a 128-wide block (8 words per row). Step
//    s, half hi (virtual cols 4t..4t+3 or 16+4t..16+4t+3): real k = 32t + 8s + 4hi + {0..3} = word 2s + hi.
//    A registers: {row g hi 0, row g+8 hi 0, row g hi 1, row g+8 hi 1}; B registers: {hi 0, hi 1}.
#pragma once
#include <cstdint>

// Not JOULE_HD: that is kernels/formats/formats.h's (constexpr functions, no forceinline); one name with two
// definitions made every TU that includes both warn, and left each function's qualifiers to include order.
#if defined(__CUDACC__)
#define JOULE_FRAG_HD __host__ __device__ __forceinline__
#else
#define JOULE_FRAG_HD inline
#endif

namespace joule::cuda::frag {

// ---- index maps (virtual column of a PTX fragment table -> real k inside the block) ---------------------
// f16/bf16 m16n8k16: virtual v in [0, 16) of step s.
JOULE_FRAG_HD int f16_real_k(int v, int s) {
  const int t = (v & 7) >> 1, hi = v >> 3, e = v & 1;
  return 16 * t + 4 * s + 2 * hi + e;
}
// s8 m16n8k32: virtual v in [0, 32) of step s.
JOULE_FRAG_HD int s8_real_k(int v, int s) {
  const int t = (v & 15) >> 2, hi = v >> 4, e = v & 3;
  return 32 * t + 8 * s + 4 * hi + e;
}
// 2:4 sparse m16n8k16: virtual dense v in [0, 16) of step s.
JOULE_FRAG_HD int sp_real_k(int v, int s) { return 4 * (4 * (v >> 2) + s) + (v & 3); }

// ---- register selection from the per-thread segments ---------------------------------------------------
// Dense f16/bf16 B register (hi 0/1) of step s from the 8-word activation segment.
JOULE_FRAG_HD uint32_t f16_b_reg(const uint32_t seg[8], int s, int hi) { return seg[2 * s + hi]; }
// s8 A or B register (hi 0/1) of step s from an 8-word segment.
JOULE_FRAG_HD uint32_t s8_reg(const uint32_t seg[8], int s, int hi) { return seg[2 * s + hi]; }
// The W4 byte (two k: low nibble the even one) of step s, half hi, from the 8-byte segment seg = {lo, hi} words.
JOULE_FRAG_HD uint32_t w4_byte(const uint32_t seg[2], int s, int hi) {
  const int b = 2 * s + hi;
  return (seg[b >> 2] >> (8 * (b & 3))) & 0xffu;
}
// 2:4 A register of step s from the thread's 4-word value segment.
JOULE_FRAG_HD uint32_t sp_a_reg(const uint32_t seg[4], int s) { return seg[s]; }
// 2:4 B register (0/1) of step s: word 2s + (t%2) of segment 0 or 1.
JOULE_FRAG_HD uint32_t sp_b_reg(const uint32_t seg0[8], const uint32_t seg1[8], int t, int s, int reg) {
  return (reg == 0 ? seg0 : seg1)[2 * s + (t & 1)];
}
// Real k (inside the block) where the two B segments of lane t start.
JOULE_FRAG_HD int sp_b_seg_start(int t, int reg) { return 32 * reg + 16 * (t >> 1); }

// Metadata word of step s for a quad, from the 64-bit metadata of rows g and g + 8 over the block (4 uint16
// words, little-endian: chunk j of the block at bits [4j+3:4j]).
JOULE_FRAG_HD uint32_t sp_meta_word(uint64_t meta_g, uint64_t meta_g8, int s) {
  uint32_t w = 0;
  for (int c = 0; c < 4; ++c) {
    const int j = 4 * c + s;
    w |= static_cast<uint32_t>((meta_g >> (4 * j)) & 0xfu) << (4 * c);
    w |= static_cast<uint32_t>((meta_g8 >> (4 * j)) & 0xfu) << (16 + 4 * c);
  }
  return w;
}

// ---- 2:4 chunk encoding (shared by the host and device compressors) -------------------------------------
// Positions idx0 < idx1 kept from a 4-value chunk of 16-bit floats (+-0 is zero): the non-zeros, padded with the
// lowest free positions when there are fewer than two; with more than two, the first two. Returns the number of
// non-zeros (> 2 breaks the format).
JOULE_FRAG_HD int sp24_chunk(const uint16_t v[4], int* idx0, int* idx1) {
  int nz[4], n = 0;
  for (int j = 0; j < 4; ++j)
    if ((v[j] & 0x7fffu) != 0) nz[n++] = j;
  if (n >= 2) {
    *idx0 = nz[0];
    *idx1 = nz[1];
  } else if (n == 1) {
    *idx0 = 0;  // the non-zero itself when it is at 0, else the free position 0
    *idx1 = nz[0] == 0 ? 1 : nz[0];
  } else {
    *idx0 = 0;
    *idx1 = 1;
  }
  return n;
}

}  // namespace joule::cuda::frag
