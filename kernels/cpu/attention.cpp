// Attention kernels (attention.h): the scalar reference, and the fast kernel written once (attention_simd.inc,
// which describes it) and compiled twice, for AVX-512 and for AVX2, each with its vector traits below. The traits
// hold what differs: the vector width, the tile sizes the register file allows (32 or 16 registers), masked tails,
// horizontal reductions and exp's 2^n.
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

// ---- AVX-512: 8 query rows x 32 keys of scores (16 of the 32 registers), P V in up to 16 accumulators --------
namespace avx512 {

struct Vec {
  using R = __m512;
  static constexpr int kW = 16, kRows = 8, kKeyVecs = 2, kMaxPvVecs = 8, kPvAcc = 16;
  JOULE_AVX512 static R zero() { return _mm512_setzero_ps(); }
  JOULE_AVX512 static R set1(float x) { return _mm512_set1_ps(x); }
  JOULE_AVX512 static R load(const float* p) { return _mm512_load_ps(p); }
  JOULE_AVX512 static R loadu(const float* p) { return _mm512_loadu_ps(p); }
  JOULE_AVX512 static void store(float* p, R v) { _mm512_store_ps(p, v); }
  JOULE_AVX512 static void storeu(float* p, R v) { _mm512_storeu_ps(p, v); }
  JOULE_AVX512 static R fmadd(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  JOULE_AVX512 static R fnmadd(R a, R b, R c) { return _mm512_fnmadd_ps(a, b, c); }
  JOULE_AVX512 static R add(R a, R b) { return _mm512_add_ps(a, b); }
  JOULE_AVX512 static R sub(R a, R b) { return _mm512_sub_ps(a, b); }
  JOULE_AVX512 static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  JOULE_AVX512 static R max(R a, R b) { return _mm512_max_ps(a, b); }
  JOULE_AVX512 static R min(R a, R b) { return _mm512_min_ps(a, b); }
  JOULE_AVX512 static R round(R x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  JOULE_AVX512 static __mmask16 first(int n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }
  // The first n lanes from p (n <= kW), zeros after them; nothing past them is read.
  JOULE_AVX512 static R loadn(const float* p, int n) { return _mm512_maskz_loadu_ps(first(n), p); }
  // v's first n lanes, `fill` in the others.
  JOULE_AVX512 static R keep(R v, int n, float fill) { return _mm512_mask_mov_ps(set1(fill), first(n), v); }
  JOULE_AVX512 static float hmax(R v) { return _mm512_reduce_max_ps(v); }
  JOULE_AVX512 static float hsum(R v) { return _mm512_reduce_add_ps(v); }
  // exp's argument range: below kExpLo the result is 0 after scalef's rounding.
  static constexpr float kExpLo = -104.0f, kExpHi = 88.72283f;
  // p * 2^n (x: exp's argument before the clamp).
  JOULE_AVX512 static R scale2(R p, R n, R /*x*/) { return _mm512_scalef_ps(p, n); }
};

#define JOULE_ATTN_FN JOULE_AVX512
#include "kernels/cpu/attention_simd.inc"
#undef JOULE_ATTN_FN

}  // namespace avx512

// ---- AVX2: 16 registers, so 6 query rows x 16 keys of scores (12 accumulators), P V in up to 12 -------------
namespace avx2 {

struct Vec {
  using R = __m256;
  static constexpr int kW = 8, kRows = 6, kKeyVecs = 2, kMaxPvVecs = 4, kPvAcc = 12;
  JOULE_AVX2 static R zero() { return _mm256_setzero_ps(); }
  JOULE_AVX2 static R set1(float x) { return _mm256_set1_ps(x); }
  JOULE_AVX2 static R load(const float* p) { return _mm256_load_ps(p); }
  JOULE_AVX2 static R loadu(const float* p) { return _mm256_loadu_ps(p); }
  JOULE_AVX2 static void store(float* p, R v) { _mm256_store_ps(p, v); }
  JOULE_AVX2 static void storeu(float* p, R v) { _mm256_storeu_ps(p, v); }
  JOULE_AVX2 static R fmadd(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  JOULE_AVX2 static R fnmadd(R a, R b, R c) { return _mm256_fnmadd_ps(a, b, c); }
  JOULE_AVX2 static R add(R a, R b) { return _mm256_add_ps(a, b); }
  JOULE_AVX2 static R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  JOULE_AVX2 static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  JOULE_AVX2 static R max(R a, R b) { return _mm256_max_ps(a, b); }
  JOULE_AVX2 static R min(R a, R b) { return _mm256_min_ps(a, b); }
  JOULE_AVX2 static R round(R x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // All-ones in the first n lanes.
  JOULE_AVX2 static __m256i first(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  JOULE_AVX2 static R loadn(const float* p, int n) { return _mm256_maskload_ps(p, first(n)); }
  JOULE_AVX2 static R keep(R v, int n, float fill) {
    return _mm256_blendv_ps(set1(fill), v, _mm256_castsi256_ps(first(n)));
  }
  JOULE_AVX2 static float hmax(R v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
  }
  JOULE_AVX2 static float hsum(R v) {
    __m128 m = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_add_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m)));
  }
  // 2^n is built in the exponent field, so n must stay in [-126, 127]: x in [-87.3365, 88]. Below that
  // exp(x) < FLT_MIN, and the result is set to 0, as scalef's rounding makes it in the AVX-512 kernel.
  static constexpr float kExpLo = -87.33654f, kExpHi = 88.0f;
  JOULE_AVX2 static R scale2(R p, R n, R x) {
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    const R tiny = _mm256_cmp_ps(x, _mm256_set1_ps(kExpLo), _CMP_LT_OQ);  // false for NaN: NaN passes
    return _mm256_andnot_ps(tiny, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
  }
};

#define JOULE_ATTN_FN JOULE_AVX2
#include "kernels/cpu/attention_simd.inc"
#undef JOULE_ATTN_FN

}  // namespace avx2

}  // namespace

bool attention_f32_fast_supported(int64_t head_dim, Strides4 qs, Strides4 ks, Strides4 vs, Strides4 os) {
  return isa::attention_impl(head_dim) != isa::AttentionImpl::kReference && qs.c == 1 && ks.c == 1 && vs.c == 1 &&
         os.c == 1;
}

void attention_f32(const float* q, Strides4 qs, const float* k, Strides4 ks, const float* v, Strides4 vs,
                   const float* mask, Strides4 ms, float* o, Strides4 os, AttentionShape sh, float scale) {
  if (sh.batch <= 0 || sh.heads <= 0 || sh.q_len <= 0) return;
  if (sh.k_len <= 0 || !attention_f32_fast_supported(sh.head_dim, qs, ks, vs, os))
    return attention_f32_ref(q, qs, k, ks, v, vs, mask, ms, o, os, sh, scale);
  if (isa::attention_impl(sh.head_dim) == isa::AttentionImpl::kAvx512)
    return avx512::attention_any(q, qs, k, ks, v, vs, mask, ms, o, os, sh, scale);
  return avx2::attention_any(q, qs, k, ks, v, vs, mask, ms, o, os, sh, scale);
}

}  // namespace joule::kernels
