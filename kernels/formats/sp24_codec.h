// The SP24 metadata codec (format: kernels/formats/formats.h), header-only so that the CPU kernels
// (kernels/cpu/sp24.cpp, on float) and the CUDA host code (cuda/reference.cpp, on 16-bit float patterns) write
// and read the same metadata bit for bit. The device compressor (cuda/fragments.h frag::sp24_chunk) applies the
// same position rule.
#pragma once
#include <cstdint>

#include "kernels/formats/formats.h"

namespace joule::formats {

// Positions idx0 < idx1 kept from a chunk whose non-zeros are the set bits of `nz` (bit j = position j): the
// non-zeros, padded with the lowest free positions when there are fewer than two (the hardware rejects
// idx0 == idx1); with more than two, the first two. The same rule as the device compressor.
inline void sp24_positions(unsigned nz, int* idx0, int* idx1) {
  int kept[2], n = 0;
  for (int j = 0; j < 4 && n < 2; ++j)
    if (nz >> j & 1u) kept[n++] = j;
  for (int j = 0; j < 4 && n < 2; ++j)
    if (!(nz >> j & 1u)) kept[n++] = j;
  *idx0 = kept[0] < kept[1] ? kept[0] : kept[1];
  *idx1 = kept[0] < kept[1] ? kept[1] : kept[0];
}

// The 4-bit code of chunk c in its metadata row, and its inverse (idx0 >= idx1 marks an invalid code).
inline uint16_t sp24_code(int idx0, int idx1, int64_t c) { return uint16_t((idx0 | idx1 << 2) << (4 * (c % 4))); }
inline void sp24_decode(const uint16_t* meta_row, int64_t c, int* idx0, int* idx1) {
  const unsigned code = meta_row[c / 4] >> (4 * (c % 4)) & 0xfu;
  *idx0 = int(code & 3u);
  *idx1 = int(code >> 2);
}

// Compresses w [N, K] (T: float, or 16-bit float patterns) into values [N, K/2] and meta [N, K/16];
// nonzero(v) decides what counts as a non-zero (+-0 must not). Returns the number of chunks with more than two
// non-zeros (each keeps its first two; the caller reports the error). K % 16 == 0 is the caller's check.
template <typename T, typename NonZero>
int64_t sp24_compress_rows(const T* w, int64_t N, int64_t K, T* values, uint16_t* meta, NonZero nonzero) {
  int64_t violations = 0;
  for (int64_t n = 0; n < N; ++n) {
    const T* src = w + n * K;
    T* val = values + n * sp24_values_cols(K);
    uint16_t* mrow = meta + n * sp24_meta_cols(K);
    for (int64_t i = 0; i < sp24_meta_cols(K); ++i) mrow[i] = 0;
    for (int64_t c = 0; c < K / kSp24Chunk; ++c) {
      unsigned nz = 0;
      for (int j = 0; j < kSp24Chunk; ++j) nz |= unsigned(nonzero(src[4 * c + j])) << j;
      violations += __builtin_popcount(nz) > kSp24Kept;
      int i0, i1;
      sp24_positions(nz, &i0, &i1);
      val[2 * c] = src[4 * c + i0];
      val[2 * c + 1] = src[4 * c + i1];
      mrow[c / 4] |= sp24_code(i0, i1, c);
    }
  }
  return violations;
}

// Inverse of sp24_compress_rows: w [N, K] with the pruned positions set to T(0). False (w then partly written)
// when a code has idx0 >= idx1, which no compressor writes.
template <typename T>
bool sp24_decompress_rows(const T* values, const uint16_t* meta, int64_t N, int64_t K, T* w) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < K / kSp24Chunk; ++c) {
      int i0, i1;
      sp24_decode(meta + n * sp24_meta_cols(K), c, &i0, &i1);
      if (i0 >= i1) return false;
      T* dst = w + n * K + 4 * c;
      for (int j = 0; j < kSp24Chunk; ++j) dst[j] = T(0);
      dst[i0] = values[n * sp24_values_cols(K) + 2 * c];
      dst[i1] = values[n * sp24_values_cols(K) + 2 * c + 1];
    }
  return true;
}

}  // namespace joule::formats
