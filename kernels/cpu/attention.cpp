// Attention kernels (attention.h). The fast path, per (batch, head) and block of 8 query rows:
//   1. K of the head is transposed once into Kt [D][Sk padded to 32], so that scores for 32 keys are 2 vector
//      FMAs per head-dim element with the query element broadcast: 8 rows x 2 vectors = 16 accumulators;
//   2. per row: scale, add the mask, max, exp (a Cephes polynomial with vscalefps for the 2^n), sum;
//   3. O = P V with V's rows read in place: per key, D/16 vectors of V and one broadcast of p per query row,
//      16 accumulators again; the row is divided by its sum when it is stored.
// Rows past the last query of a block repeat the last row (computed, never stored), so no block is special.
// (batch, head) pairs are split over the OpenMP threads.
#include "kernels/cpu/attention.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/scratch.h"

namespace joule::kernels {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

}  // namespace

void attention_f32_ref(const float* q, Strides4 qs, const float* k, Strides4 ks, const float* v, Strides4 vs,
                       const float* mask, Strides4 ms, float* o, Strides4 os, AttentionShape sh, float scale) {
  std::vector<float> s(static_cast<size_t>(std::max<int64_t>(sh.k_len, 1)));
  for (int64_t b = 0; b < sh.batch; ++b)
    for (int64_t h = 0; h < sh.heads; ++h)
      for (int64_t i = 0; i < sh.q_len; ++i) {
        const float* qi = q + b * qs.b + h * qs.h + i * qs.r;
        float mx = kNegInf;
        for (int64_t j = 0; j < sh.k_len; ++j) {
          const float* kj = k + b * ks.b + h * ks.h + j * ks.r;
          float dot = 0;
          for (int64_t d = 0; d < sh.head_dim; ++d) dot += qi[d * qs.c] * kj[d * ks.c];
          s[j] = dot * scale + (mask ? mask[b * ms.b + h * ms.h + i * ms.r + j * ms.c] : 0.0f);
          if (!(s[j] <= mx)) mx = s[j];  // a NaN score makes the row NaN, as it does in the fast kernel
        }
        float* oi = o + b * os.b + h * os.h + i * os.r;
        if (mx == kNegInf) {  // every key masked out
          for (int64_t d = 0; d < sh.head_dim; ++d) oi[d * os.c] = 0;
          continue;
        }
        float sum = 0;
        for (int64_t j = 0; j < sh.k_len; ++j) sum += (s[j] = std::exp(s[j] - mx));
        for (int64_t d = 0; d < sh.head_dim; ++d) {
          float acc = 0;
          for (int64_t j = 0; j < sh.k_len; ++j) acc += s[j] * v[b * vs.b + h * vs.h + j * vs.r + d * vs.c];
          oi[d * os.c] = acc / sum;
        }
      }
}

namespace {

// GCC 12's AVX-512 intrinsics (roundscale, scalef, reduce) start from an undefined register that its flow analysis
// then calls uninitialised: a false positive (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

constexpr int kRows = 8;  // query rows per block

// exp(x) = 2^n * p(r), n = round(x log2 e), r = x - n ln 2 (in two parts), p Cephes' expf polynomial. Clamped to
// [-104, 88.7] (below, the result is 0 after scalef's rounding), with the operand order that lets NaN through.
JOULE_AVX512 inline __m512 exp512(__m512 x) {
  x = _mm512_min_ps(_mm512_set1_ps(88.72283f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

JOULE_AVX512 inline __mmask16 tail_mask(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// Scores of kRows query rows (pointers qr) against 32 keys from column jc of Kt: s[r][jc..jc+32).
JOULE_AVX512 inline void scores_32(const float* const* qr, const float* kt, int64_t ldk, int64_t D, float* s,
                                   int64_t lds) {
  __m512 acc[kRows][2];
  for (int r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t d = 0; d < D; ++d) {
    const __m512 k0 = _mm512_load_ps(kt + d * ldk), k1 = _mm512_load_ps(kt + d * ldk + 16);
    for (int r = 0; r < kRows; ++r) {
      const __m512 qv = _mm512_set1_ps(qr[r][d]);
      acc[r][0] = _mm512_fmadd_ps(qv, k0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(qv, k1, acc[r][1]);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    _mm512_store_ps(s + r * lds, acc[r][0]);
    _mm512_store_ps(s + r * lds + 16, acc[r][1]);
  }
}

// One row of scores in place -> exp(s * scale + mask - max); returns the sum (0 when every key is masked, -inf).
JOULE_AVX512 inline float softmax_row(float* s, int64_t n, float scale, const float* mrow, int64_t mstride) {
  const __m512 vs = _mm512_set1_ps(scale);
  __m512 mx = _mm512_set1_ps(kNegInf);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 t = tail_mask(n - j);
    __m512 x = _mm512_mul_ps(_mm512_maskz_load_ps(t, s + j), vs);
    if (mrow) {
      __m512 m;
      if (mstride == 1) {
        m = _mm512_maskz_loadu_ps(t, mrow + j);
      } else {
        alignas(64) float buf[16] = {};
        for (int64_t e = 0; e < std::min<int64_t>(16, n - j); ++e) buf[e] = mrow[(j + e) * mstride];
        m = _mm512_load_ps(buf);
      }
      x = _mm512_add_ps(x, m);
    }
    _mm512_store_ps(s + j, x);
    mx = _mm512_mask_max_ps(mx, t, mx, x);
  }
  const float m = _mm512_reduce_max_ps(mx);
  if (m == kNegInf) {  // every key masked: p = 0, and the row's output 0
    for (int64_t j = 0; j < n; ++j) s[j] = 0;
    return 0;
  }
  const __m512 vm = _mm512_set1_ps(m);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 t = tail_mask(n - j);
    const __m512 e = _mm512_maskz_mov_ps(t, exp512(_mm512_sub_ps(_mm512_load_ps(s + j), vm)));
    _mm512_store_ps(s + j, e);
    sum = _mm512_add_ps(sum, e);
  }
  return _mm512_reduce_add_ps(sum);
}

// O rows = P V / sum for kRows rows of P (s, stride lds), DV vectors of 16 per row, RB rows at a time.
template <int DV>
JOULE_AVX512 void pv_rows(const float* s, int64_t lds, const float* vh, int64_t vstride, int64_t n, const float* sums,
                          float* const* orow, int rows) {
  constexpr int RB = DV >= 4 ? 16 / DV : kRows;
  for (int r0 = 0; r0 < kRows; r0 += RB) {
    if (r0 >= rows) break;
    __m512 acc[RB][DV];
    for (int r = 0; r < RB; ++r)
      for (int c = 0; c < DV; ++c) acc[r][c] = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; ++j) {
      __m512 vv[DV];
      for (int c = 0; c < DV; ++c) vv[c] = _mm512_loadu_ps(vh + j * vstride + 16 * c);
      for (int r = 0; r < RB; ++r) {
        const __m512 p = _mm512_set1_ps(s[(r0 + r) * lds + j]);
        for (int c = 0; c < DV; ++c) acc[r][c] = _mm512_fmadd_ps(p, vv[c], acc[r][c]);
      }
    }
    for (int r = 0; r < RB && r0 + r < rows; ++r) {
      const float sum = sums[r0 + r];
      const __m512 inv = _mm512_set1_ps(sum > 0 ? 1.0f / sum : 0.0f);
      for (int c = 0; c < DV; ++c) _mm512_storeu_ps(orow[r0 + r] + 16 * c, _mm512_mul_ps(acc[r][c], inv));
    }
  }
}

template <int DV>
JOULE_AVX512 void attention_head(const float* q, Strides4 qs, const float* kh, int64_t ks_r, const float* vh,
                                 int64_t vs_r, const float* mh, Strides4 ms, float* oh, int64_t os_r,
                                 const AttentionShape& sh, float scale, Scratch& scratch) {
  const int64_t D = 16 * DV, Sk = sh.k_len, ldk = (Sk + 31) / 32 * 32;
  float* kt = scratch.get<float>(static_cast<size_t>(D * ldk + kRows * ldk + Sk * D));
  float* s = kt + D * ldk;
  // K's rows are a cache line or more apart in the projection: copied with vector loads first (many misses in
  // flight instead of one per scalar load), then transposed out of L1.
  float* kc = s + kRows * ldk;
  for (int64_t j = 0; j < Sk; ++j)
    for (int c = 0; c < DV; ++c) _mm512_storeu_ps(kc + j * D + 16 * c, _mm512_loadu_ps(kh + j * ks_r + 16 * c));
  for (int64_t d = 0; d < D; ++d) {
    for (int64_t j = 0; j < Sk; ++j) kt[d * ldk + j] = kc[j * D + d];
    for (int64_t j = Sk; j < ldk; ++j) kt[d * ldk + j] = 0.0f;
  }
  for (int64_t i0 = 0; i0 < sh.q_len; i0 += kRows) {
    const int rows = static_cast<int>(std::min<int64_t>(kRows, sh.q_len - i0));
    const float* qr[kRows];
    float* orow[kRows];
    for (int r = 0; r < kRows; ++r) {
      const int64_t i = i0 + std::min(r, rows - 1);
      qr[r] = q + i * qs.r;
      orow[r] = oh + i * os_r;
    }
    for (int64_t jc = 0; jc < ldk; jc += 32) scores_32(qr, kt + jc, ldk, D, s + jc, ldk);
    float sums[kRows];
    for (int r = 0; r < rows; ++r)
      sums[r] = softmax_row(s + r * ldk, Sk, scale, mh ? mh + (i0 + r) * ms.r : nullptr, ms.c);
    pv_rows<DV>(s, ldk, vh, vs_r, Sk, sums, orow, rows);
  }
}

template <int DV>
JOULE_AVX512 void attention_avx512(const float* q, Strides4 qs, const float* k, Strides4 ks, const float* v,
                                   Strides4 vs, const float* mask, Strides4 ms, float* o, Strides4 os,
                                   const AttentionShape& sh, float scale) {
  const int64_t tasks = sh.batch * sh.heads;
  const bool parallel = tasks > 1 && sh.q_len * sh.k_len * sh.head_dim * tasks >= (int64_t{1} << 16);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t t = 0; t < tasks; ++t) {
    thread_local Scratch scratch;
    const int64_t b = t / sh.heads, h = t % sh.heads;
    attention_head<DV>(q + b * qs.b + h * qs.h, qs, k + b * ks.b + h * ks.h, ks.r, v + b * vs.b + h * vs.h, vs.r,
                       mask ? mask + b * ms.b + h * ms.h : nullptr, ms, o + b * os.b + h * os.h, os.r, sh, scale,
                       scratch);
  }
}

}  // namespace

bool attention_f32_fast_supported(int64_t head_dim, Strides4 qs, Strides4 ks, Strides4 vs, Strides4 os) {
  return isa::attention_impl(head_dim) == isa::AttentionImpl::kAvx512 && qs.c == 1 && ks.c == 1 && vs.c == 1 &&
         os.c == 1;
}

void attention_f32(const float* q, Strides4 qs, const float* k, Strides4 ks, const float* v, Strides4 vs,
                   const float* mask, Strides4 ms, float* o, Strides4 os, AttentionShape sh, float scale) {
  if (sh.batch <= 0 || sh.heads <= 0 || sh.q_len <= 0) return;
  if (sh.k_len <= 0 || !attention_f32_fast_supported(sh.head_dim, qs, ks, vs, os))
    return attention_f32_ref(q, qs, k, ks, v, vs, mask, ms, o, os, sh, scale);
  switch (sh.head_dim / 16) {
    case 1: return attention_avx512<1>(q, qs, k, ks, v, vs, mask, ms, o, os, sh, scale);
    case 2: return attention_avx512<2>(q, qs, k, ks, v, vs, mask, ms, o, os, sh, scale);
    case 4: return attention_avx512<4>(q, qs, k, ks, v, vs, mask, ms, o, os, sh, scale);
    default: return attention_avx512<8>(q, qs, k, ks, v, vs, mask, ms, o, os, sh, scale);
  }
}

}  // namespace joule::kernels
