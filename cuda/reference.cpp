// Host side of the CUDA kernels: the 2:4 compressor, reference GEMMs and the fragment emulators
// (cuda/reference.h). Plain C++; cuda_fp16.h / cuda_bf16.h only for their host conversion functions.
#include "cuda/reference.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cuda/fragments.h"
#include "kernels/formats/sp24_codec.h"

namespace joule::cuda {


Status compress_sp24_ref(const uint16_t* w, int64_t N, int64_t K, uint16_t* values, uint16_t* meta) {
  if (N < 0 || K < 0 || K % kSp24KAlign != 0) return Status::kInvalidShape;
  if (N > 0 && K > 0 && (!w || !values || !meta)) return Status::kInvalidShape;
  const int64_t bad = formats::sp24_compress_rows(w, N, K, values, meta, [](uint16_t v) { return (v & 0x7fffu) != 0; });
  return bad ? Status::kInvalidValue : Status::kOk;
}

Status decompress_sp24_ref(const uint16_t* values, const uint16_t* meta, int64_t N, int64_t K, uint16_t* w) {
  if (N < 0 || K < 0 || K % kSp24KAlign != 0) return Status::kInvalidShape;
  if (N > 0 && K > 0 && (!w || !values || !meta)) return Status::kInvalidShape;
  return formats::sp24_decompress_rows(values, meta, N, K, w) ? Status::kOk : Status::kInvalidValue;
}

namespace ref {

float to_float(DType dtype, uint16_t bits) {
  if (dtype == DType::kBF16) {
    __nv_bfloat16_raw r;
    r.x = bits;
    return __bfloat162float(__nv_bfloat16(r));
  }
  __half_raw r;
  r.x = bits;
  return __half2float(__half(r));
}

uint16_t from_float(DType dtype, float v) {
  if (dtype == DType::kBF16) return __nv_bfloat16_raw(__float2bfloat16_rn(v)).x;
  return __half_raw(__float2half_rn(v)).x;
}

void gemm(const float* x, const float* w, const float* bias, int64_t M, int64_t N, int64_t K, float* y,
          float* abs_sum) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = bias ? bias[n] : 0.0, a = bias ? std::fabs(bias[n]) : 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const double p = double(x[m * K + k]) * double(w[n * K + k]);
        s += p;
        a += std::fabs(p);
      }
      y[m * N + n] = float(s);
      if (abs_sum) abs_sum[m * N + n] = float(a);
    }
}

void gemm_s8_s32(const int8_t* qx, const int8_t* qw, int64_t M, int64_t N, int64_t K, int32_t* acc) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      int64_t s = 0;
      for (int64_t k = 0; k < K; ++k) s += int32_t(qx[m * K + k]) * int32_t(qw[n * K + k]);
      acc[m * N + n] = int32_t(s);
    }
}

void dequantize_w4_rounded(DType dtype, const uint8_t* qweight, const float* scales, const uint8_t* zeros,
                           int64_t N, int64_t K, int64_t group, float* w) {
  const int64_t rb = w4_row_bytes(K), ng = w4_groups(K, group);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const int q = (qweight[n * rb + k / 2] >> (4 * (k & 1))) & 15;
      const float v = scales[n * ng + k / group] * float(q - int(zeros[n * ng + k / group]));
      w[n * K + k] = to_float(dtype, from_float(dtype, v));
    }
}

namespace {

// ---- PTX register semantics (PTX ISA "Matrix fragments for mma.m16n8k16 / m16n8k32 / mma.sp m16n8k16") ----
// Registers per lane in, the 16 x 8 product added to d[16][8]. Element e of a 32-bit register is its e-th
// 16-bit (or 8-bit) field from the low end.

using Dec = float (*)(DType, uint16_t);

uint16_t half_of(uint32_t reg, int e) { return uint16_t(reg >> (16 * e)); }
int8_t byte_of(uint32_t reg, int e) { return int8_t(uint8_t(reg >> (8 * e))); }

// Dense m16n8k16: A a0..a7 in regs {a0a1, a2a3, a4a5, a6a7}: row g for a0,a1,a4,a5 else g+8; col 2t + (i & 1)
// (+8 for i >= 4). B b0..b3 in {b0b1, b2b3}: k = 2t + (i & 1) (+8 for i >= 2), col g.
void mma_16816(DType dt, const uint32_t a[32][4], const uint32_t b[32][2], double d[16][8]) {
  float A[16][16], B[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 8; ++i) {
      const int row = g + ((i & 2) ? 8 : 0), col = 2 * t + (i & 1) + (i >= 4 ? 8 : 0);
      A[row][col] = to_float(dt, half_of(a[lane][i / 2], i & 1));
    }
    for (int i = 0; i < 4; ++i) B[2 * t + (i & 1) + (i >= 2 ? 8 : 0)][g] = to_float(dt, half_of(b[lane][i / 2], i & 1));
  }
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 8; ++c)
      for (int k = 0; k < 16; ++k) d[r][c] += double(A[r][k]) * double(B[k][c]);
}

// Sparse m16n8k16, selector 0: A values {row g, row g+8}, two kept values (compressed cols 2t, 2t+1) each; the
// metadata of the quad comes from lane 4g: bits [4c+3:4c] (row g) / [16+4c+3:16+4c] (row g+8) code chunk c,
// idx0 = code & 3 receives the low value, idx1 = code >> 2 the high one. B as in the dense shape.
bool mma_sp_16816(DType dt, const uint32_t a[32][2], const uint32_t e[32], const uint32_t b[32][2], double d[16][8]) {
  float A[16][16] = {}, B[16][8];
  bool ok = true;
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    for (int h = 0; h < 2; ++h) {
      const int row = g + 8 * h;
      const uint32_t code = (e[4 * g] >> (16 * h + 4 * t)) & 0xfu;
      const int i0 = code & 3, i1 = code >> 2;
      ok &= i0 < i1;
      A[row][4 * t + i0] = to_float(dt, half_of(a[lane][h], 0));
      A[row][4 * t + i1] = to_float(dt, half_of(a[lane][h], 1));
    }
    for (int i = 0; i < 4; ++i) B[2 * t + (i & 1) + (i >= 2 ? 8 : 0)][g] = to_float(dt, half_of(b[lane][i / 2], i & 1));
  }
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 8; ++c)
      for (int k = 0; k < 16; ++k) d[r][c] += double(A[r][k]) * double(B[k][c]);
  return ok;
}

// s8 m16n8k32: A a0..a15 in 4 regs of 4 bytes: row g for i < 4 or 8 <= i < 12 else g+8; col 4t + (i & 3)
// (+16 for i >= 8). B b0..b7 in 2 regs: k = 4t + (i & 3) (+16 for i >= 4), col g.
void mma_s8_16832(const uint32_t a[32][4], const uint32_t b[32][2], int64_t d[16][8]) {
  int A[16][32], B[32][8];
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 16; ++i) {
      const int row = g + (((i >> 2) & 1) ? 8 : 0), col = 4 * t + (i & 3) + (i >= 8 ? 16 : 0);
      A[row][col] = byte_of(a[lane][i / 4], i & 3);
    }
    for (int i = 0; i < 8; ++i) B[4 * t + (i & 3) + (i >= 4 ? 16 : 0)][g] = byte_of(b[lane][i / 4], i & 3);
  }
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 8; ++c)
      for (int k = 0; k < 32; ++k) d[r][c] += int64_t(A[r][k]) * B[k][c];
}

// ---- per-lane segments, loaded like the kernels' guarded paths (zero past the end) --------------------------

void u16_words(const uint16_t* p, int64_t first, int64_t n, int words, uint32_t* out) {
  for (int w = 0; w < words; ++w) {
    const int64_t i = first + 2 * w;
    out[w] = (i < n ? p[i] : 0u) | ((i + 1 < n ? uint32_t(p[i + 1]) : 0u) << 16);
  }
}

void u8_words(const uint8_t* p, int64_t first, int64_t n, int words, uint32_t* out) {
  for (int w = 0; w < words; ++w) {
    uint32_t v = 0;
    for (int b = 0; b < 4; ++b)
      if (first + 4 * w + b < n) v |= uint32_t(p[first + 4 * w + b]) << (8 * b);
    out[w] = v;
  }
}

// Tiles of 16 weight rows x 8 tokens; rows and tokens past the end are clamped (as in the kernels) and dropped.
template <typename Acc, typename TileFn>
void for_tiles(int64_t M, int64_t N, Acc* y, const TileFn& tile) {
  for (int64_t n0 = 0; n0 < N; n0 += 16)
    for (int64_t m0 = 0; m0 < M; m0 += 8) {
      auto d = tile(n0, m0);  // d[16][8] in the mma layout: row = weight row, column = token
      for (int r = 0; r < 16 && n0 + r < N; ++r)
        for (int c = 0; c < 8 && m0 + c < M; ++c) y[(m0 + c) * N + n0 + r] = Acc(d[r][c]);
    }
}

struct TileF {
  double v[16][8];
  const double* operator[](int r) const { return v[r]; }
};
struct TileI {
  int64_t v[16][8];
  const int64_t* operator[](int r) const { return v[r]; }
};

}  // namespace

bool emulate_gemm_sp24(DType dt, const uint16_t* x, const uint16_t* values, const uint16_t* meta, int64_t M,
                       int64_t N, int64_t K, float* y) {
  bool ok = true;
  const int64_t vcols = sp24_values_cols(K), mcols = sp24_meta_cols(K), nkb = (K + kBlockKF16 - 1) / kBlockKF16;
  for_tiles(M, N, y, [&](int64_t n0, int64_t m0) {
    TileF d{};
    for (int64_t kb = 0; kb < nkb; ++kb) {
      const int64_t k0 = kb * kBlockKF16;
      uint32_t av[32][2][4], xs0[32][8], xs1[32][8];
      uint64_t mrow[32][2];
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane >> 2, t = lane & 3;
        const int64_t rows[2] = {std::min(n0 + g, N - 1), std::min(n0 + g + 8, N - 1)};
        for (int r = 0; r < 2; ++r) {
          u16_words(values + rows[r] * vcols, sp24_values_cols(k0) + 8 * t, vcols, 4, av[lane][r]);
          uint64_t m = 0;
          for (int w = 0; w < 4; ++w) {
            const int64_t i = sp24_meta_cols(k0) + w;
            m |= uint64_t(i < mcols ? meta[rows[r] * mcols + i] : kSp24PadWord) << (16 * w);
          }
          mrow[lane][r] = m;
        }
        const uint16_t* xr = x + std::min(m0 + g, M - 1) * K;
        u16_words(xr, k0 + frag::sp_b_seg_start(t, 0), K, 8, xs0[lane]);
        u16_words(xr, k0 + frag::sp_b_seg_start(t, 1), K, 8, xs1[lane]);
      }
      for (int s = 0; s < 4; ++s) {
        uint32_t a[32][2], e[32], b[32][2];
        for (int lane = 0; lane < 32; ++lane) {
          const int t = lane & 3;
          a[lane][0] = frag::sp_a_reg(av[lane][0], s);
          a[lane][1] = frag::sp_a_reg(av[lane][1], s);
          e[lane] = frag::sp_meta_word(mrow[lane][0], mrow[lane][1], s);
          b[lane][0] = frag::sp_b_reg(xs0[lane], xs1[lane], t, s, 0);
          b[lane][1] = frag::sp_b_reg(xs0[lane], xs1[lane], t, s, 1);
        }
        ok &= mma_sp_16816(dt, a, e, b, d.v);
      }
    }
    return d;
  });
  return ok;
}

bool emulate_gemm_s8(const int8_t* qx, const int8_t* qw, int64_t M, int64_t N, int64_t K, int32_t* acc) {
  const int64_t nkb = (K + kBlockKS8 - 1) / kBlockKS8;
  for_tiles(M, N, acc, [&](int64_t n0, int64_t m0) {
    TileI d{};
    for (int64_t kb = 0; kb < nkb; ++kb) {
      uint32_t wa[32][8], wb[32][8], xs[32][8];
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane >> 2, t = lane & 3;
        const int64_t kseg = kb * kBlockKS8 + 32 * t;
        const auto* w0 = reinterpret_cast<const uint8_t*>(qw + std::min(n0 + g, N - 1) * K);
        const auto* w1 = reinterpret_cast<const uint8_t*>(qw + std::min(n0 + g + 8, N - 1) * K);
        u8_words(w0, kseg, K, 8, wa[lane]);
        u8_words(w1, kseg, K, 8, wb[lane]);
        u8_words(reinterpret_cast<const uint8_t*>(qx + std::min(m0 + g, M - 1) * K), kseg, K, 8, xs[lane]);
      }
      for (int s = 0; s < 4; ++s) {
        uint32_t a[32][4], b[32][2];
        for (int lane = 0; lane < 32; ++lane) {
          a[lane][0] = frag::s8_reg(wa[lane], s, 0);
          a[lane][1] = frag::s8_reg(wb[lane], s, 0);
          a[lane][2] = frag::s8_reg(wa[lane], s, 1);
          a[lane][3] = frag::s8_reg(wb[lane], s, 1);
          b[lane][0] = frag::s8_reg(xs[lane], s, 0);
          b[lane][1] = frag::s8_reg(xs[lane], s, 1);
        }
        mma_s8_16832(a, b, d.v);
      }
    }
    return d;
  });
  return true;
}

bool emulate_gemm_w4(DType dt, const uint16_t* x, const uint8_t* qweight, const float* scales, const uint8_t* zeros,
                     int64_t M, int64_t N, int64_t K, int64_t group, float* y) {
  const int64_t rb = w4_row_bytes(K), ng = w4_groups(K, group), nkb = (K + kBlockKF16 - 1) / kBlockKF16;
  for_tiles(M, N, y, [&](int64_t n0, int64_t m0) {
    TileF d{};
    for (int64_t kb = 0; kb < nkb; ++kb) {
      uint32_t a[4][32][4], xs[32][8];
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane >> 2, t = lane & 3;
        const int64_t kseg = kb * kBlockKF16 + 16 * t;
        for (int r = 0; r < 2; ++r) {
          const int64_t row = std::min(n0 + g + 8 * r, N - 1);
          uint32_t seg[2];
          u8_words(qweight + row * rb, kseg / 2, rb, 2, seg);
          for (int s = 0; s < 4; ++s)
            for (int hi = 0; hi < 2; ++hi) {
              const int64_t gi = std::min((kseg + 4 * s + 2 * hi) / group, ng - 1);
              const float sc = scales[row * ng + gi], zf = float(zeros[row * ng + gi]);
              const uint32_t byte = frag::w4_byte(seg, s, hi);
              const uint16_t lo = from_float(dt, sc * (float(byte & 15u) - zf));
              const uint16_t hv = from_float(dt, sc * (float(byte >> 4) - zf));
              a[s][lane][2 * hi + r] = uint32_t(lo) | (uint32_t(hv) << 16);
            }
        }
        u16_words(x + std::min(m0 + g, M - 1) * K, kseg, K, 8, xs[lane]);
      }
      for (int s = 0; s < 4; ++s) {
        uint32_t b[32][2];
        for (int lane = 0; lane < 32; ++lane) {
          b[lane][0] = frag::f16_b_reg(xs[lane], s, 0);
          b[lane][1] = frag::f16_b_reg(xs[lane], s, 1);
        }
        mma_16816(dt, a[s], b, d.v);
      }
    }
    return d;
  });
  return true;
}

}  // namespace ref
}  // namespace joule::cuda
