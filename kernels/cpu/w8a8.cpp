// W8A8 CPU kernels.
//
// Quantization (per row): one pass for max|x|, one to scale by 127 / max, round half away from zero and pack,
// 32 floats -> 32 int8 per AVX2 step.
//
// GEMM: y[m,n] = x_scale[m] w_scale[n] sum_k qx[m,k] qw[n,k] (+ bias[n]). qx is first widened to int16 rows
// zero-padded to Kp, a multiple of 16 (xw [M, Kp], thread-local scratch). The weights are read in place, int8
// [N, K] row-major, 16 at a time, sign-extended to int16 (vpmovsxbw) and multiplied with vpmaddwd, which adds
// adjacent int16 products into int32 lanes; the lanes of each (row, column) accumulator are summed at the end.
//
// Exactness: |q| <= 127 on both sides, so a vpmaddwd lane is at most 2 * 127^2 = 32258 (the int16 products
// themselves are exact, the pair sum is formed in 32 bits), and every partial sum of a dot product is at most
// K * 127^2 < 2^31 for K <= kW8A8MaxK. So int32 accumulation never overflows and, integer addition being
// associative, any blocking or summation order gives exactly the reference's sum. vpmaddubsw (u8 x s8, int16
// saturating pair sums) is not used: it needs the abs/sign trick to stay exact, and without VNNI it costs the
// same number of multiply-port uops per product. The float epilogue computes float(acc) * (x_scale * w_scale),
// fused with the bias as fma(float(acc), x_scale * w_scale, bias), in the reference (scalar) and in the fast
// path (8 lanes), which therefore agree bit for bit. K > kW8A8MaxK falls back to the reference (int64 sums).
//
// Blocking: micro-kernels compute a tile of 6 rows x 2 weight columns (4 x 2 for a remainder of 4-5 rows) over
// the whole of K in 12 (8) ymm int32 accumulators: each sign-extended weight vector serves 6 rows, each x
// vector 2 columns; the accumulators are then reduced with one hadd tree. The 6 x rows (6 * Kp * 2 bytes) sit in
// L1 and the column tile's weights (nb * K <= ~384 KiB) in L2, streamed once per 6-row group and fetched from
// memory once per tile. The 1-row tile (GEMV) takes 8 weight rows at a time, i.e. 8 sequential streams. Sums
// of up to 256 columns are collected before the epilogue runs over them, 8 columns at a time. Remainders:
// 3/2/1-row kernels, single-column kernels for odd N, a scalar K % 16 tail.
//
// Threading: OpenMP over (row tile, column tile) pairs; columns first (so M = 1 splits N), rows only when there
// are fewer column tiles than threads. Quantization and widening run over rows. Problems below ~128K
// multiply-adds stay on the calling thread; inside an active parallel region everything runs serially.
//
// Which kernel runs (reference, AVX2, AVX-512 VNNI) is decided by kernels/cpu/isa.h (isa::w8a8_gemm_impl).
#include "kernels/cpu/w8a8.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/scratch.h"
#include "kernels/formats/formats.h"

namespace joule::kernels {
namespace {

// ---- shared scalar pieces (the reference and the fast path call the same code) -----------------------------

// A row whose max|x| is below 127 / FLT_MAX (~3.7e-37; 0 included) would overflow 127 / max: it quantizes to
// zeros with scale 1, like an all-zero row (its values are below 4e-37, so the dequantization error is too).
constexpr float kMinAmax = static_cast<float>(kW8Max) / std::numeric_limits<float>::max();
inline float scale_of(float amax) { return amax >= kMinAmax ? amax / static_cast<float>(kW8Max) : 1.0f; }
inline float inv_scale_of(float amax) { return amax >= kMinAmax ? static_cast<float>(kW8Max) / amax : 0.0f; }

// v = x * inv_scale; std::round is round half away from zero. The clamp is a guard: |v| <= 127 (1 + 2^-23)^2,
// and makes +-Inf +-127. NaN (a NaN in x, or Inf x 0 when a row holds an Inf) quantizes to 0: converting it to an
// integer would be undefined; the AVX2 path masks it to 0 the same way (kernels/cpu/w8a8.h).
inline int8_t quantize_one(float v) {
  if (std::isnan(v)) return 0;
  float r = std::round(v);
  r = std::min(std::max(r, -static_cast<float>(kW8Max)), static_cast<float>(kW8Max));
  return static_cast<int8_t>(static_cast<int>(r));
}

// The one float epilogue. acc is exact (int32 in range, or int64 past kW8A8MaxK); the conversion rounds to nearest.
inline float epilogue(int64_t acc, float xs, float ws, const float* bias, int64_t n) {
  float s = xs * ws;
  float a = static_cast<float>(acc);
  return bias ? std::fma(a, s, bias[n]) : a * s;
}

constexpr int64_t kParallelMinWork = int64_t(1) << 17;  // multiply-adds (or elements) below which we stay serial

// ---- quantization, AVX2 ------------------------------------------------------------------------------------

// An optimisation barrier on a vector value; emits no instruction. Used to stop GCC from contracting a multiply and
// an add into an fma (it does so for intrinsics too, under its default -ffp-contract=fast), and to keep loop
// accumulators in place: without it GCC 12 writes each vpaddd to a new register and copies it back.
#define JOULE_PIN(v) asm("" : "+x"(v))

JOULE_AVX2 inline float hmax8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

// round(v) half away from zero, as int32, for |v| <= 128: trunc(v + copysign(0.49999997f, v)). Checked against
// std::round for every float in [0, 128] (the sum rounds to nearest-even; the sign case is symmetric). v is
// pinned so that GCC cannot contract x * inv + h into one fma, which would round differently.
JOULE_AVX2 inline __m256i round_away_epi32(__m256 v) {
  JOULE_PIN(v);
  const __m256 h = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(0.49999997f));
  __m256i q = _mm256_cvttps_epi32(_mm256_add_ps(v, h));
  q = _mm256_min_epi32(q, _mm256_set1_epi32(kW8Max));
  return _mm256_max_epi32(q, _mm256_set1_epi32(-kW8Max));
}

// q[0, n) = round(x * inv) clamped to [-127, 127], as int8 (the public layout) or as int16 zero-padded to
// q[n, pad) (the GEMM's widened layout, so linear_w8a8 skips the int8 round trip). The float clamp keeps
// round_away_epi32 in its range when a static scale is smaller than the row's max.
JOULE_AVX2 inline __m256i quantize8_avx2(const float* x, __m256 vinv) {
  const __m256 hi = _mm256_set1_ps(float(kW8Max)), lo = _mm256_set1_ps(-float(kW8Max));
  __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x), vinv);
  v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));  // NaN -> 0, as quantize_one
  return round_away_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi));
}

template <class T>
JOULE_AVX2 void quantize_scaled_avx2(const float* x, int64_t n, float inv, T* q, int64_t pad) {
  const __m256 vinv = _mm256_set1_ps(inv);
  int64_t c = 0;
  for (; c + 32 <= n; c += 32) {
    __m256i q0 = quantize8_avx2(x + c, vinv), q1 = quantize8_avx2(x + c + 8, vinv);
    __m256i q2 = quantize8_avx2(x + c + 16, vinv), q3 = quantize8_avx2(x + c + 24, vinv);
    // packs work per 128-bit lane: [q0 q1 | q0' q1'] (int16, 4-value groups), then bytes [q0 q1 q2 q3 | ...].
    __m256i h01 = _mm256_packs_epi32(q0, q1), h23 = _mm256_packs_epi32(q2, q3);
    if constexpr (sizeof(T) == 1) {
      __m256i b = _mm256_packs_epi16(h01, h23);
      b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + c), b);
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + c), _mm256_permute4x64_epi64(h01, 0xd8));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + c + 16), _mm256_permute4x64_epi64(h23, 0xd8));
    }
  }
  for (; c < n; ++c) q[c] = quantize_one(x[c] * inv);
  for (; c < pad; ++c) q[c] = 0;
}

JOULE_AVX2 float amax_avx2(const float* x, int64_t n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m0 = _mm256_setzero_ps(), m1 = m0, m2 = m0, m3 = m0;
  int64_t c = 0;
  for (; c + 32 <= n; c += 32) {
    // maxps returns its second operand when either is NaN: the running max goes second, so a NaN in x is
    // skipped, as std::max(amax, NaN) skips it in the reference.
    m0 = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + c)), m0);
    m1 = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + c + 8)), m1);
    m2 = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + c + 16)), m2);
    m3 = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + c + 24)), m3);
  }
  for (; c + 8 <= n; c += 8) m0 = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + c)), m0);
  float amax = hmax8(_mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
  for (; c < n; ++c) amax = std::max(amax, std::fabs(x[c]));  // max is exact: any order gives the same value
  return amax;
}

// One activation row, as the op quantizes it: times smooth_inv (into tmp) when given, then with the static
// scale or the row's own. *scale receives the row's scale.
template <class T>
JOULE_AVX2 void quantize_row_avx2(const float* x, int64_t n, T* q, int64_t pad, float* scale, const ActQuant& aq,
                                  float* tmp) {
  if (aq.smooth_inv) {
    int64_t c = 0;
    for (; c + 8 <= n; c += 8)
      _mm256_storeu_ps(tmp + c, _mm256_mul_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(aq.smooth_inv + c)));
    for (; c < n; ++c) tmp[c] = x[c] * aq.smooth_inv[c];
    x = tmp;
  }
  float inv;
  if (aq.static_scale > 0) {
    *scale = aq.static_scale;
    inv = 1.0f / aq.static_scale;
  } else {
    const float amax = amax_avx2(x, n);
    *scale = scale_of(amax);
    inv = inv_scale_of(amax);
  }
  quantize_scaled_avx2(x, n, inv, q, pad);
}

// ---- GEMM, AVX2 ----------------------------------------------------------------------------------------------

// Sums of 8 (or 4) int32 vectors, lane i = total of v[i].
JOULE_AVX2 inline __m256i hsum8_epi32(const __m256i* v) {
  __m256i ab = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
  __m256i cd = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(ab, cd, 0x20), _mm256_permute2x128_si256(ab, cd, 0x31));
}
JOULE_AVX2 inline __m128i hsum4_epi32(const __m256i* v) {
  __m256i ab = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
  return _mm_add_epi32(_mm256_castsi256_si128(ab), _mm256_extracti128_si256(ab, 1));
}
JOULE_AVX2 inline int32_t hsum1_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// Dot-product tail (K % 16), scalar.
JOULE_AVX2 inline int32_t dot_tail(const int16_t* x, const int8_t* w, int64_t k0, int64_t K) {
  int32_t s = 0;
  for (int64_t k = k0; k < K; ++k) s += int32_t(x[k]) * int32_t(w[k]);
  return s;
}

JOULE_AVX2 inline __m256i madd_w(__m256i x, const int8_t* w) {
  return _mm256_madd_epi16(x, _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w))));
}

// One MR x NR tile over the whole of K: out[i*ldo + j] = sum_k x[i*xs + k] * w[j*K + k].
//   x    int16 [MR, xs]   widened activations, zero-padded to xs = Kp (a multiple of 16), 32-byte aligned rows
//   w    int8  [NR, K]    NR consecutive weight rows (output channels), read in place
//   out  int32 [MR, ldo]
// Generic version for the remainder tiles (M % 6 rows, odd N); the hot shapes have explicit kernels below.
template <int MR, int NR>
JOULE_AVX2 inline void tile_s32(const int16_t* x, int64_t xs, const int8_t* w, int64_t K, int32_t* out, int64_t ldo) {
  __m256i acc[MR * NR];
#pragma GCC unroll 16
  for (int i = 0; i < MR * NR; ++i) acc[i] = _mm256_setzero_si256();
  const int64_t K16 = K & ~int64_t(15);
  for (int64_t k = 0; k < K16; k += 16) {
    __m256i wv[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j)
      wv[j] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + j * K + k)));
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(x + i * xs + k));
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[i * NR + j] = _mm256_add_epi32(acc[i * NR + j], _mm256_madd_epi16(xv, wv[j]));
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR * NR; ++i) JOULE_PIN(acc[i]);
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j)
      out[i * ldo + j] = hsum1_epi32(acc[i * NR + j]) + (K16 < K ? dot_tail(x + i * xs, w + j * K, K16, K) : 0);
}

// The main tiles, 6 x 2 and 4 x 2 (rows x weight columns): each sign-extended weight vector serves 6 (4) rows,
// each x vector (one load from L1) 2 columns. Per 16 k and 6 rows: 2 vpmovsxbw, 6 loads, 12 vpmaddwd, 12 vpaddd
// in ~8 cycles on Zen 4, whose measured limit is ~1.6 vpmaddwd + vpaddd pairs per cycle; 6 x 2 takes 12 of the
// 16 ymm registers for accumulators (+2 weights, x, a product) and runs ~10% faster than 4 x 2. Not inlined:
// inlined into the tile loops, GCC spills accumulators.
#define JOULE_ROW2(r, A, B)                                                       \
  xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(x + (r) * xs + k)); \
  JOULE_PIN(xv); /* one load per row, not one memory operand per vpmaddwd */  \
  A = _mm256_add_epi32(A, _mm256_madd_epi16(xv, v0));                         \
  B = _mm256_add_epi32(B, _mm256_madd_epi16(xv, v1));

template <>
JOULE_AVX2 __attribute__((noinline)) void tile_s32<6, 2>(const int16_t* x, int64_t xs, const int8_t* w, int64_t K,
                                                         int32_t* out, int64_t ldo) {
  __m256i a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00,
          a40 = a00, a41 = a00, a50 = a00, a51 = a00;
  const int64_t K16 = K & ~int64_t(15);
  for (int64_t k = 0; k < K16; k += 16) {
    const __m256i v0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + k)));
    const __m256i v1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + K + k)));
    __m256i xv;
    JOULE_ROW2(0, a00, a01) JOULE_ROW2(1, a10, a11) JOULE_ROW2(2, a20, a21)
    JOULE_ROW2(3, a30, a31) JOULE_ROW2(4, a40, a41) JOULE_ROW2(5, a50, a51)
    JOULE_PIN(a00); JOULE_PIN(a01); JOULE_PIN(a10); JOULE_PIN(a11); JOULE_PIN(a20); JOULE_PIN(a21);
    JOULE_PIN(a30); JOULE_PIN(a31); JOULE_PIN(a40); JOULE_PIN(a41); JOULE_PIN(a50); JOULE_PIN(a51);
  }
  const __m256i acc[12] = {a00, a01, a10, a11, a20, a21, a30, a31, a40, a41, a50, a51};
  alignas(32) int32_t s[12];  // [r0c0 r0c1 r1c0 r1c1 ... r5c1]
  _mm256_store_si256(reinterpret_cast<__m256i*>(s), hsum8_epi32(acc));
  _mm_store_si128(reinterpret_cast<__m128i*>(s + 8), hsum4_epi32(acc + 8));
  if (K16 < K)
    for (int i = 0; i < 6; ++i)
      for (int j = 0; j < 2; ++j) s[i * 2 + j] += dot_tail(x + i * xs, w + j * K, K16, K);
  for (int i = 0; i < 6; ++i) std::memcpy(out + i * ldo, s + 2 * i, 2 * sizeof(int32_t));
}

template <>
JOULE_AVX2 __attribute__((noinline)) void tile_s32<4, 2>(const int16_t* x, int64_t xs, const int8_t* w, int64_t K,
                                                         int32_t* out, int64_t ldo) {
  __m256i a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
  const int64_t K16 = K & ~int64_t(15);
  for (int64_t k = 0; k < K16; k += 16) {
    const __m256i v0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + k)));
    const __m256i v1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + K + k)));
    __m256i xv;
    JOULE_ROW2(0, a00, a01) JOULE_ROW2(1, a10, a11) JOULE_ROW2(2, a20, a21) JOULE_ROW2(3, a30, a31)
    JOULE_PIN(a00); JOULE_PIN(a01); JOULE_PIN(a10); JOULE_PIN(a11);
    JOULE_PIN(a20); JOULE_PIN(a21); JOULE_PIN(a30); JOULE_PIN(a31);
  }
  const __m256i acc[8] = {a00, a01, a10, a11, a20, a21, a30, a31};
  alignas(32) int32_t s[8];  // [r0c0 r0c1 r1c0 r1c1 ... r3c1]
  _mm256_store_si256(reinterpret_cast<__m256i*>(s), hsum8_epi32(acc));
  if (K16 < K)
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 2; ++j) s[i * 2 + j] += dot_tail(x + i * xs, w + j * K, K16, K);
  for (int i = 0; i < 4; ++i) std::memcpy(out + i * ldo, s + 2 * i, 2 * sizeof(int32_t));
}
#undef JOULE_ROW2

// GEMV tile: one x row (in L1), 8 weight rows streamed from memory side by side. 8 streams keep more DRAM
// requests in flight than 4 (with 2 threads ~29 GB/s, about the machine's read bandwidth, against ~26 GB/s
// for 4 rows); software prefetch only slowed it down.
template <>
JOULE_AVX2 __attribute__((noinline)) void tile_s32<1, 8>(const int16_t* x, int64_t xs, const int8_t* w, int64_t K,
                                                         int32_t* out, int64_t ldo) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  const int64_t K16 = K & ~int64_t(15);
  for (int64_t k = 0; k < K16; k += 16) {
    const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(x + k));
    a0 = _mm256_add_epi32(a0, madd_w(xv, w + k));
    a1 = _mm256_add_epi32(a1, madd_w(xv, w + K + k));
    a2 = _mm256_add_epi32(a2, madd_w(xv, w + 2 * K + k));
    a3 = _mm256_add_epi32(a3, madd_w(xv, w + 3 * K + k));
    a4 = _mm256_add_epi32(a4, madd_w(xv, w + 4 * K + k));
    a5 = _mm256_add_epi32(a5, madd_w(xv, w + 5 * K + k));
    a6 = _mm256_add_epi32(a6, madd_w(xv, w + 6 * K + k));
    a7 = _mm256_add_epi32(a7, madd_w(xv, w + 7 * K + k));
    JOULE_PIN(a0); JOULE_PIN(a1); JOULE_PIN(a2); JOULE_PIN(a3);
    JOULE_PIN(a4); JOULE_PIN(a5); JOULE_PIN(a6); JOULE_PIN(a7);
  }
  const __m256i acc[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
  __m256i s = hsum8_epi32(acc);
  if (K16 < K) {
    alignas(32) int32_t t[8];
    for (int j = 0; j < 8; ++j) t[j] = dot_tail(x, w + j * K, K16, K);
    s = _mm256_add_epi32(s, _mm256_load_si256(reinterpret_cast<const __m256i*>(t)));
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), s);
}

// Where the results go, one row segment at a time: floats through the epilogue, or the raw int32 sums (test path).
struct FloatOut {
  const float* x_scale;
  const float* w_scale;
  const float* bias;
  float* y;
  // y[m, n0 + c] for c < cnt; the vector lanes compute exactly what epilogue() computes (same roundings).
  JOULE_AVX2 void operator()(int64_t m, int64_t n0, int64_t cnt, int64_t N, const int32_t* acc) const {
    const __m256 xs = _mm256_set1_ps(x_scale[m]);
    float* yr = y + m * N + n0;
    const float* ws = w_scale + n0;
    int64_t c = 0;
    for (; c + 8 <= cnt; c += 8) {
      __m256 a = _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + c)));
      __m256 sc = _mm256_mul_ps(xs, _mm256_loadu_ps(ws + c));
      __m256 v = bias ? _mm256_fmadd_ps(a, sc, _mm256_loadu_ps(bias + n0 + c)) : _mm256_mul_ps(a, sc);
      _mm256_storeu_ps(yr + c, v);
    }
    for (; c < cnt; ++c) yr[c] = epilogue(acc[c], x_scale[m], ws[c], bias, n0 + c);
  }
};
struct S32Out {
  int32_t* out;
  void operator()(int64_t m, int64_t n0, int64_t cnt, int64_t N, const int32_t* acc) const {
    std::memcpy(out + m * N + n0, acc, size_t(cnt) * sizeof(int32_t));
  }
};

// MR rows starting at m, columns [n0, n1): NR columns per tile kernel call, then single columns. The sums of
// up to kChunk columns are collected in buf and handed to the epilogue a row segment at a time.
constexpr int64_t kChunk = 256;

template <int MR, int NR, class Out>
JOULE_AVX2 inline void rows_block(const int16_t* xw, int64_t Kp, const int8_t* qw, int64_t K, int64_t N, int64_t m,
                                  int64_t n0, int64_t n1, const Out& out) {
  alignas(32) int32_t buf[MR * kChunk];
  for (int64_t c0 = n0; c0 < n1; c0 += kChunk) {
    const int64_t c1 = std::min(n1, c0 + kChunk);
    int64_t n = c0;
    for (; n + NR <= c1; n += NR) tile_s32<MR, NR>(xw + m * Kp, Kp, qw + n * K, K, buf + (n - c0), kChunk);
    for (; n < c1; ++n) tile_s32<MR, 1>(xw + m * Kp, Kp, qw + n * K, K, buf + (n - c0), kChunk);
    for (int i = 0; i < MR; ++i) out(m + i, c0, c1 - c0, N, buf + i * kChunk);
  }
}

template <class Out>
JOULE_AVX2 void gemm_tile_avx2(const int16_t* xw, int64_t Kp, const int8_t* qw, int64_t K, int64_t N, int64_t m0,
                               int64_t m1, int64_t n0, int64_t n1, const Out& out) {
  int64_t m = m0;
  for (; m + 6 <= m1; m += 6) rows_block<6, 2>(xw, Kp, qw, K, N, m, n0, n1, out);
  if (m + 4 <= m1) {
    rows_block<4, 2>(xw, Kp, qw, K, N, m, n0, n1, out);
    m += 4;
  }
  switch (m1 - m) {
    case 3: rows_block<3, 2>(xw, Kp, qw, K, N, m, n0, n1, out); break;
    case 2: rows_block<2, 4>(xw, Kp, qw, K, N, m, n0, n1, out); break;
    case 1: rows_block<1, 8>(xw, Kp, qw, K, N, m, n0, n1, out); break;
    default: break;
  }
}

JOULE_AVX2 void widen_row_avx2(const int8_t* q, int64_t K, int64_t Kp, int16_t* out) {
  int64_t k = 0;
  for (; k + 16 <= K; k += 16)
    _mm256_store_si256(reinterpret_cast<__m256i*>(out + k),
                       _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + k))));
  for (; k < K; ++k) out[k] = q[k];
  for (; k < Kp; ++k) out[k] = 0;
}

// The work split of one GEMM: m_tiles x n_tiles tiles of mb rows x nb columns.
struct Plan {
  int64_t mb, nb, m_tiles, n_tiles;
  bool parallel;
};

Plan plan(int64_t M, int64_t K, int64_t N, int64_t col_group) {
  Plan p{};
  p.parallel = M * N * K >= kParallelMinWork && omp_get_max_threads() > 1 && !omp_in_parallel();
  const int64_t threads = p.parallel ? omp_get_max_threads() : 1;
  // Column tiles: the weights of one tile (nb * K bytes) stay in L2 while every 6-row group streams them; a
  // multiple of the thread count, so that equal tiles share out evenly. Row tiles only when there are too few
  // column tiles for the threads (small N, larger M).
  constexpr int64_t kL2Weights = 384 << 10;
  int64_t n_tiles = (N * K + kL2Weights - 1) / kL2Weights;
  n_tiles = (n_tiles + threads - 1) / threads * threads;
  n_tiles = std::max<int64_t>(std::min(n_tiles, (N + col_group - 1) / col_group), 1);
  p.nb = (N + n_tiles - 1) / n_tiles;
  // whole column groups: 8 for the AVX2 GEMV kernel and column pairs, 16 for the VNNI vectors (a tile of
  // prepacked weights then starts at a packed vector)
  p.nb = (p.nb + col_group - 1) / col_group * col_group;
  p.n_tiles = (N + p.nb - 1) / p.nb;
  p.m_tiles = 1;
  if (p.n_tiles < threads) p.m_tiles = std::min((threads + p.n_tiles - 1) / p.n_tiles, (M + 5) / 6);
  p.mb = (M + p.m_tiles - 1) / p.m_tiles;
  p.mb = (p.mb + 5) / 6 * 6;  // whole 6-row groups
  p.m_tiles = (M + p.mb - 1) / p.mb;
  return p;
}

// Scratch (kernels/cpu/scratch.h), one per calling thread: a call's OpenMP workers fill and read disjoint rows of
// their caller's buffer, and calls made from different threads never share one.
thread_local Scratch xw_scratch, xs_scratch;  // x rows in the kernel's layout; linear_w8a8's per-token scales
thread_local Scratch tmp_scratch;              // one smoothed x row per worker thread
thread_local Scratch q_scratch;                // one int8 x row per worker thread (VNNI path)

// One parallel region for either kernel: prep(m, rows + m * row_len) lays out every x row in the kernel's format
// (T elements per row), then tile(rows, m0, m1, n0, n1) computes each (row tile, column tile) pair of the plan.
template <class T, class Prep, class Tile>
void run_tiled(int64_t M, int64_t K, int64_t N, int64_t row_len, const Prep& prep, const Tile& tile) {
  T* rows = xw_scratch.get<T>(size_t(M) * size_t(row_len));
  const Plan p = plan(M, K, N, sizeof(T) == 1 ? 16 : 8);
#pragma omp parallel if (p.parallel)
  {
#pragma omp for schedule(static)
    for (int64_t m = 0; m < M; ++m) prep(m, rows + m * row_len);
#pragma omp for collapse(2) schedule(static)
    for (int64_t mt = 0; mt < p.m_tiles; ++mt)
      for (int64_t nt = 0; nt < p.n_tiles; ++nt)
        tile(static_cast<const T*>(rows), mt * p.mb, std::min(M, (mt + 1) * p.mb), nt * p.nb,
             std::min(N, (nt + 1) * p.nb));
  }
}

// AVX2: x rows widened to int16, zero-padded to a multiple of 16.
template <class Prep, class Out>
void run_avx2(int64_t M, int64_t K, const int8_t* qw, int64_t N, const Prep& prep, const Out& out) {
  const int64_t Kp = (K + 15) & ~int64_t(15);
  run_tiled<int16_t>(M, K, N, Kp, prep, [&](const int16_t* xw, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    gemm_tile_avx2(xw, Kp, qw, K, N, m0, m1, n0, n1, out);
  });
}

// ---- GEMM, AVX-512 VNNI -------------------------------------------------------------------------------------
//
// vpdpbusd multiplies 4 unsigned bytes by 4 signed bytes and adds the 4 products to an int32 lane, without
// saturation (the sum wraps). x is made unsigned, xu = q + 128 in [1, 255], and the weights of a column tile are
// repacked per call so that one 64-byte vector holds 16 output columns x 4 consecutive k ([k/4][16 cols][4 k]):
// a broadcast dword of xu (4 k of one row) times one packed vector adds to 16 columns at once, so no horizontal
// sums are needed. sum_k xu * q_w = sum_k q_x * q_w + 128 * sum_k q_w, and the exact result is recovered by
// subtracting 128 * colsum (computed while packing). Exactness: every partial sum is taken mod 2^32 and the true
// result lies in int32 (K <= kW8A8MaxK), so the wrapped arithmetic gives it exactly, as the reference does.
// The repack costs one pass over the tile's weights, small against the M / 6 passes of the row groups, so this
// path serves M >= isa::kW8A8VnniMinRows; fewer rows are memory-bound and take the AVX2 kernels, which stream the
// weights in place. isa::w8a8_gemm_impl makes that choice (and JOULE_CPU_ISA=avx2 keeps the AVX2 kernels on a
// VNNI machine, for comparisons).


// Columns [n0, n1) of qw [N, K] into pw: per 16-column vector v, [K4 / 4][16][4] bytes (zero beyond n1 and K);
// colsum[c] = sum_k qw[n0 + c, k] (0 for padding columns). One gather of 16 dwords (4 k of 16 rows) per packed
// vector; vpdpbusd with all-ones bytes sums each lane's 4 weights into the column sums on the way.
JOULE_VNNI void pack_vnni(const int8_t* qw, int64_t K, int64_t K4, int64_t n0, int64_t n1, int8_t* pw,
                          int32_t* colsum) {
  const int64_t nv = (n1 - n0 + 15) / 16, K4full = K & ~int64_t(3);
  const __m512i ones = _mm512_set1_epi8(1);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t v = 0; v < nv; ++v) {
    const int64_t c0 = n0 + 16 * v, cols = std::min<int64_t>(16, n1 - c0);
    const __mmask16 live = static_cast<__mmask16>((1u << cols) - 1);
    const __m512i rows = _mm512_mullo_epi32(lane, _mm512_set1_epi32(static_cast<int32_t>(K)));  // row offsets, bytes
    const int8_t* base = qw + c0 * K;
    int8_t* dst = pw + v * 16 * K4;
    __m512i sum = _mm512_setzero_si512();
    int64_t k = 0;
    for (; k < K4full; k += 4) {
      __m512i w = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, rows, base + k, 1);
      _mm512_storeu_si512(dst + k * 16, w);
      sum = _mm512_dpbusd_epi32(sum, ones, w);
    }
    if (k < K4) {  // the last 1-3 k: bytewise, the rest of the dword zero
      alignas(64) int8_t t[64] = {};
      for (int64_t c = 0; c < cols; ++c)
        for (int64_t kk = k; kk < K; ++kk) t[c * 4 + (kk - k)] = base[c * K + kk];
      const __m512i w = _mm512_load_si512(t);
      _mm512_storeu_si512(dst + k * 16, w);
      sum = _mm512_dpbusd_epi32(sum, ones, w);
    }
    _mm512_storeu_si512(colsum + 16 * v, sum);
  }
}

// One K block of a tile: the x rows (stride xs bytes) and the packed vectors (stride vstride bytes) start at the
// block; kl bytes of K per row (a multiple of 4). The sums start from out (acc = true: a later block) or 0, and go
// back to out[i * 64 + 16 j + lane], less 128 * colsum on the last block (colsum given), raw otherwise.
struct KBlock {
  int64_t xs, vstride, kl;
  bool acc;
  const int32_t* colsum;  // the last block only
};

// MR rows x NR 16-column vectors over one K block: acc[i][j] (row i, columns 16j..16j+15) += sum_k xu * w.
template <int MR, int NR>
JOULE_VNNI __attribute__((noinline)) void tile_vnni(const uint8_t* xu, const int8_t* pw, const KBlock& b,
                                                    int32_t* out) {
  __m512i acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j)
      acc[i][j] = b.acc ? _mm512_loadu_si512(out + i * 64 + 16 * j) : _mm512_setzero_si512();
  const int64_t vstride = b.vstride, xs = b.xs;
  for (int64_t k4 = 0; k4 < b.kl; k4 += 4) {
    __m512i w[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) w[j] = _mm512_loadu_si512(pw + j * vstride + k4 * 16);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      int32_t x4;
      std::memcpy(&x4, xu + i * xs + k4, 4);
      const __m512i xb = _mm512_set1_epi32(x4);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], xb, w[j]);
    }
  }
#pragma GCC unroll 4
  for (int j = 0; j < NR; ++j) {
    // 128 * colsum (a multiply: GCC 12 warns falsely on _mm512_slli_epi32)
    const __m512i corr = b.colsum ? _mm512_mullo_epi32(_mm512_loadu_si512(b.colsum + 16 * j), _mm512_set1_epi32(128))
                                  : _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) _mm512_storeu_si512(out + i * 64 + 16 * j, _mm512_sub_epi32(acc[i][j], corr));
  }
}

// The hot tile, 6 rows x 64 columns, written out: GCC keeps an array of 24 zmm accumulators on the stack, these
// 24 variables in registers (24 accumulators + 4 weight vectors + 1 broadcast of 32).
#define JOULE_VROW(r, A0, A1, A2, A3)                                                  \
  {                                                                                    \
    int32_t x4;                                                                        \
    std::memcpy(&x4, xu + (r) * xs + k4, 4);                                           \
    const __m512i xb = _mm512_set1_epi32(x4);                                          \
    A0 = _mm512_dpbusd_epi32(A0, xb, w0);                                              \
    A1 = _mm512_dpbusd_epi32(A1, xb, w1);                                              \
    A2 = _mm512_dpbusd_epi32(A2, xb, w2);                                              \
    A3 = _mm512_dpbusd_epi32(A3, xb, w3);                                              \
  }

template <>
JOULE_VNNI __attribute__((noinline)) void tile_vnni<6, 4>(const uint8_t* xu, const int8_t* pw, const KBlock& b,
                                                          int32_t* out) {
  auto init = [&](int i, int j) JOULE_VNNI {
    return b.acc ? _mm512_loadu_si512(out + i * 64 + 16 * j) : _mm512_setzero_si512();
  };
  __m512i a00 = init(0, 0), a01 = init(0, 1), a02 = init(0, 2), a03 = init(0, 3), a10 = init(1, 0), a11 = init(1, 1),
          a12 = init(1, 2), a13 = init(1, 3), a20 = init(2, 0), a21 = init(2, 1), a22 = init(2, 2), a23 = init(2, 3),
          a30 = init(3, 0), a31 = init(3, 1), a32 = init(3, 2), a33 = init(3, 3), a40 = init(4, 0), a41 = init(4, 1),
          a42 = init(4, 2), a43 = init(4, 3), a50 = init(5, 0), a51 = init(5, 1), a52 = init(5, 2), a53 = init(5, 3);
  const int64_t vstride = b.vstride, xs = b.xs;
  for (int64_t k4 = 0; k4 < b.kl; k4 += 4) {
    const int8_t* p = pw + k4 * 16;
    const __m512i w0 = _mm512_loadu_si512(p), w1 = _mm512_loadu_si512(p + vstride),
                  w2 = _mm512_loadu_si512(p + 2 * vstride), w3 = _mm512_loadu_si512(p + 3 * vstride);
    JOULE_VROW(0, a00, a01, a02, a03) JOULE_VROW(1, a10, a11, a12, a13) JOULE_VROW(2, a20, a21, a22, a23)
    JOULE_VROW(3, a30, a31, a32, a33) JOULE_VROW(4, a40, a41, a42, a43) JOULE_VROW(5, a50, a51, a52, a53)
  }
  const __m512i acc[24] = {a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23,
                           a30, a31, a32, a33, a40, a41, a42, a43, a50, a51, a52, a53};
  for (int j = 0; j < 4; ++j) {
    const __m512i corr = b.colsum ? _mm512_mullo_epi32(_mm512_loadu_si512(b.colsum + 16 * j), _mm512_set1_epi32(128))
                                  : _mm512_setzero_si512();
    for (int i = 0; i < 6; ++i) _mm512_storeu_si512(out + i * 64 + 16 * j, _mm512_sub_epi32(acc[i * 4 + j], corr));
  }
}
#undef JOULE_VROW

// Rows m..m+MR of one chunk of up to 64 columns [c0, c0 + cnt): its NV (<= 4) packed vectors over one K block,
// into buf (MR x 64 int32: the sums so far, and after the last block the results handed to out).
template <int MR, class Out>
JOULE_VNNI void rows_vnni(const uint8_t* xu, const int8_t* pw, const KBlock& b, int64_t nv, int32_t* buf, int64_t m,
                          int64_t c0, int64_t cnt, int64_t N, const Out& out) {
  switch (nv) {
    case 4: tile_vnni<MR, 4>(xu, pw, b, buf); break;
    case 3: tile_vnni<MR, 3>(xu, pw, b, buf); break;
    case 2: tile_vnni<MR, 2>(xu, pw, b, buf); break;
    default: tile_vnni<MR, 1>(xu, pw, b, buf); break;
  }
  if (b.colsum)
    for (int i = 0; i < MR; ++i) out(m + i, c0, cnt, N, buf + i * 64);
}

thread_local Scratch pw_scratch, colsum_scratch;  // one packed column tile per worker thread
thread_local Scratch sums_scratch;                 // a row tile's partial sums across K blocks, per worker thread
// K per block (bytes of xu per row): one 64-column chunk's weights for a block, 64 x 512 bytes, stay in L1 (and the
// 6 x rows' 3 KiB) while the rows stream past; MiniLM's K = 384 is one block, K = 1536 three.
constexpr int64_t kVnniKBlock = 512;

// VNNI: x rows offset to unsigned bytes, padded to a multiple of 4. Each task packs its column tile, or reads it
// from `packed` (the whole matrix packed once: pack_w8a8); tiles start at multiples of 16 columns (plan), so a
// tile's part of the packed matrix is the same bytes pack_vnni would make for it.
template <class Prep, class Out>
void run_vnni(int64_t M, int64_t K, const int8_t* qw, int64_t N, const W8A8Packed* packed, const Prep& prep,
              const Out& out) {
  const int64_t K4 = (K + 3) & ~int64_t(3);
  run_tiled<uint8_t>(M, K, N, K4, prep, [&](const uint8_t* xu, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const int8_t* pw;
    const int32_t* colsum;
    if (packed) {
      pw = packed->w.data() + n0 * K4;
      colsum = packed->colsum.data() + n0;
    } else {
      const int64_t ncols = (n1 - n0 + 15) / 16 * 16;
      int8_t* p = pw_scratch.get<int8_t>(size_t(ncols * K4));
      int32_t* cs = colsum_scratch.get<int32_t>(size_t(ncols));
      pack_vnni(qw, K, K4, n0, n1, p, cs);
      pw = p;
      colsum = cs;
    }
    // 64 columns at a time, and K in blocks of kVnniKBlock, every row group of the tile against them: that
    // chunk's block of packed weights (64 x 512 bytes at most) stays in L1 while the x rows stream past, instead
    // of the tile's weights being fetched from L2 again for each group of 6 rows. Across blocks the sums wait in
    // a [rows of the tile][64] buffer.
    // One block (K4 <= kVnniKBlock): each row group's sums go straight to a small buffer that stays in L1.
    const bool blocked = K4 > kVnniKBlock;
    int32_t* sums = blocked ? sums_scratch.get<int32_t>(size_t((m1 - m0) * 64)) : nullptr;
    alignas(64) int32_t local[6 * 64];
    for (int64_t c0 = n0; c0 < n1; c0 += 64) {
      const int64_t cnt = std::min<int64_t>(64, n1 - c0), nv = (cnt + 15) / 16;
      const int8_t* pc = pw + (c0 - n0) * K4;
      for (int64_t kb = 0; kb < K4; kb += kVnniKBlock) {
        const KBlock b{K4, 16 * K4, std::min(kVnniKBlock, K4 - kb), kb > 0,
                       kb + kVnniKBlock >= K4 ? colsum + (c0 - n0) : nullptr};
        const uint8_t* xk = xu + kb;
        const int8_t* pk = pc + kb * 16;
        int64_t m = m0;
        for (; m + 6 <= m1; m += 6)
          rows_vnni<6>(xk + m * K4, pk, b, nv, blocked ? sums + (m - m0) * 64 : local, m, c0, cnt, N, out);
        int32_t* sm = blocked ? sums + (m - m0) * 64 : local;
        switch (m1 - m) {
          case 5: rows_vnni<5>(xk + m * K4, pk, b, nv, sm, m, c0, cnt, N, out); break;
          case 4: rows_vnni<4>(xk + m * K4, pk, b, nv, sm, m, c0, cnt, N, out); break;
          case 3: rows_vnni<3>(xk + m * K4, pk, b, nv, sm, m, c0, cnt, N, out); break;
          case 2: rows_vnni<2>(xk + m * K4, pk, b, nv, sm, m, c0, cnt, N, out); break;
          case 1: rows_vnni<1>(xk + m * K4, pk, b, nv, sm, m, c0, cnt, N, out); break;
          default: break;
        }
      }
    }
  });
}

// x row q (int8, K values) -> xu = q + 128 as bytes (flipping the sign bit), padded to K4 with 128 (= q 0).
JOULE_AVX2 void offset_row(const int8_t* q, int64_t K, int64_t K4, uint8_t* xu) {
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  int64_t k = 0;
  for (; k + 32 <= K; k += 32)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(xu + k),
                        _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + k)), flip));
  for (; k < K; ++k) xu[k] = static_cast<uint8_t>(q[k] ^ 0x80);
  for (; k < K4; ++k) xu[k] = 0x80;
}

// The VNNI path fed with int8 rows: prep8(m, q) writes row m's int8 values (quantized, or copied), then they are
// offset into the unsigned layout.
template <class Prep8, class Out>
void run_vnni_s8(int64_t M, int64_t K, const int8_t* qw, int64_t N, const W8A8Packed* packed, const Prep8& prep8,
                 const Out& out) {
  const int64_t K4 = (K + 3) & ~int64_t(3);
  run_vnni(M, K, qw, N, packed,
           [&](int64_t m, uint8_t* xu) {
             int8_t* q = q_scratch.get<int8_t>(size_t(K));
             prep8(m, q);
             offset_row(q, K, K4, xu);
           },
           out);
}

}  // namespace

// ---- public functions --------------------------------------------------------------------------------------

void quantize_rows_s8_ref(const float* x, int64_t rows, int64_t cols, int8_t* q, float* scales, const ActQuant& aq) {
  std::vector<float> v(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) v[c] = aq.smooth_inv ? x[r * cols + c] * aq.smooth_inv[c] : x[r * cols + c];
    float inv;
    if (aq.static_scale > 0) {
      scales[r] = aq.static_scale;
      inv = 1.0f / aq.static_scale;
    } else {
      float amax = 0.0f;
      for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(v[c]));
      scales[r] = scale_of(amax);
      inv = inv_scale_of(amax);
    }
    for (int64_t c = 0; c < cols; ++c) q[r * cols + c] = quantize_one(v[c] * inv);
  }
}

void quantize_rows_s8(const float* x, int64_t rows, int64_t cols, int8_t* q, float* scales, const ActQuant& aq) {
  if (isa::w8a8_quantize_impl() == isa::W8A8Impl::kReference)
    return quantize_rows_s8_ref(x, rows, cols, q, scales, aq);
  const bool par = rows > 1 && rows * cols >= kParallelMinWork / 8 && !omp_in_parallel();
#pragma omp parallel if (par)
  {
    float* tmp = aq.smooth_inv ? tmp_scratch.get<float>(size_t(cols)) : nullptr;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) quantize_row_avx2(x + r * cols, cols, q + r * cols, cols, scales + r, aq, tmp);
  }
}

void gemm_s8s8_ref(const int8_t* qx, const float* x_scale, int64_t M, int64_t K, const int8_t* qw, const float* w_scale,
                   int64_t N, const float* bias, float* y) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      int64_t acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += int32_t(qx[m * K + k]) * int32_t(qw[n * K + k]);
      y[m * N + n] = epilogue(acc, x_scale[m], w_scale[n], bias, n);
    }
}

W8A8Packed pack_w8a8(const int8_t* qw, int64_t N, int64_t K) {
  W8A8Packed p;
  if (N <= 0 || K <= 0 || isa::w8a8_gemm_impl(isa::kW8A8VnniMinRows, K) != isa::W8A8Impl::kAvx512Vnni) return p;
  const int64_t K4 = (K + 3) & ~int64_t(3), ncols = (N + 15) / 16 * 16;
  p.N = N;
  p.K = K;
  p.w.resize(size_t(ncols * K4));
  p.colsum.resize(size_t(ncols));
  pack_vnni(qw, K, K4, 0, N, p.w.data(), p.colsum.data());
  return p;
}

namespace {
// The packed weights when they serve this call (made for this N, K, and the VNNI path still on), else nullptr.
const W8A8Packed* usable(const W8A8Packed* p, int64_t N, int64_t K) {
  return p && p->N == N && p->K == K && !p->w.empty() && isa::w8a8_vnni_available() ? p : nullptr;
}
}  // namespace

void gemm_s8s8(const int8_t* qx, const float* x_scale, int64_t M, int64_t K, const int8_t* qw, const float* w_scale,
               int64_t N, const float* bias, float* y, const W8A8Packed* packed) {
  if (M <= 0 || N <= 0) return;
  packed = usable(packed, N, K);
  const isa::W8A8Impl impl = isa::w8a8_gemm_impl(M, K, packed != nullptr);
  if (impl == isa::W8A8Impl::kReference) return gemm_s8s8_ref(qx, x_scale, M, K, qw, w_scale, N, bias, y);
  if (impl == isa::W8A8Impl::kAvx512Vnni)
    return run_vnni_s8(M, K, qw, N, packed, [=](int64_t m, int8_t* q) { std::memcpy(q, qx + m * K, size_t(K)); },
                       FloatOut{x_scale, w_scale, bias, y});
  const int64_t Kp = (K + 15) & ~int64_t(15);
  run_avx2(M, K, qw, N, [=](int64_t m, int16_t* xw) { widen_row_avx2(qx + m * K, K, Kp, xw); },
           FloatOut{x_scale, w_scale, bias, y});
}

void linear_w8a8_ref(const float* x, int64_t M, int64_t K, const int8_t* qw, const float* w_scale, int64_t N,
                     const float* bias, float* y, const ActQuant& aq) {
  std::vector<int8_t> qx(size_t(M * K));
  std::vector<float> xs(static_cast<size_t>(M));
  quantize_rows_s8_ref(x, M, K, qx.data(), xs.data(), aq);
  gemm_s8s8_ref(qx.data(), xs.data(), M, K, qw, w_scale, N, bias, y);
}

// Fused: each x row is quantized straight into the GEMM's int16 layout (the same q values quantize_rows_s8 gives),
// in the same parallel region as the tiles.
void linear_w8a8(const float* x, int64_t M, int64_t K, const int8_t* qw, const float* w_scale, int64_t N,
                 const float* bias, float* y, const ActQuant& aq, const W8A8Packed* packed) {
  if (M <= 0 || N <= 0) return;
  packed = usable(packed, N, K);
  const isa::W8A8Impl impl = isa::w8a8_gemm_impl(M, K, packed != nullptr);
  if (impl == isa::W8A8Impl::kReference) return linear_w8a8_ref(x, M, K, qw, w_scale, N, bias, y, aq);
  float* xs = xs_scratch.get<float>(size_t(M));
  if (impl == isa::W8A8Impl::kAvx512Vnni)
    return run_vnni_s8(M, K, qw, N, packed,
                       [=](int64_t m, int8_t* q) {
                         float* tmp = aq.smooth_inv ? tmp_scratch.get<float>(size_t(K)) : nullptr;
                         quantize_row_avx2(x + m * K, K, q, K, xs + m, aq, tmp);
                       },
                       FloatOut{xs, w_scale, bias, y});
  const int64_t Kp = (K + 15) & ~int64_t(15);
  run_avx2(M, K, qw, N,
           [=](int64_t m, int16_t* xw) {
             float* tmp = aq.smooth_inv ? tmp_scratch.get<float>(size_t(K)) : nullptr;
             quantize_row_avx2(x + m * K, K, xw, Kp, xs + m, aq, tmp);
           },
           FloatOut{xs, w_scale, bias, y});
}

namespace detail {
void gemm_s8s8_s32(const int8_t* qx, int64_t M, int64_t K, const int8_t* qw, int64_t N, int32_t* acc,
                   const W8A8Packed* packed) {
  if (M <= 0 || N <= 0) return;
  packed = usable(packed, N, K);
  const isa::W8A8Impl impl = isa::w8a8_gemm_impl(M, K, packed != nullptr);
  if (impl == isa::W8A8Impl::kReference) {  // same contract as the fast path: exact sums, here the obvious way
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        int64_t s = 0;
        for (int64_t k = 0; k < K; ++k) s += int32_t(qx[m * K + k]) * int32_t(qw[n * K + k]);
        acc[m * N + n] = static_cast<int32_t>(s);
      }
    return;
  }
  if (impl == isa::W8A8Impl::kAvx512Vnni)
    return run_vnni_s8(M, K, qw, N, packed, [=](int64_t m, int8_t* q) { std::memcpy(q, qx + m * K, size_t(K)); },
                       S32Out{acc});
  const int64_t Kp = (K + 15) & ~int64_t(15);
  run_avx2(M, K, qw, N, [=](int64_t m, int16_t* xw) { widen_row_avx2(qx + m * K, K, Kp, xw); }, S32Out{acc});
}

void use_vnni(bool on) { isa::set_w8a8_vnni(on); }
bool vnni_available() { return isa::w8a8_vnni_available(); }
}  // namespace detail

}  // namespace joule::kernels
