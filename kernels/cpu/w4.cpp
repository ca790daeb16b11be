// W4 weight-only linear: y = x * dequant(W)^T + b with W stored as 4-bit nibbles, one float scale and one
// 4-bit zero point per group of G input features (layout in kernels/formats/formats.h).
//
// Three kernels (two AVX2+FMA, one AVX-512), all threaded over N with OpenMP, none ever materialising the float
// weights:
//
// GEMV (M <= 4, G >= 16), memory-bound: the packed weights (0.54 bytes/weight at G = 128) are streamed once.
//   Eight bytes (16 weights) are zero-extended to eight 32-bit lanes by one vpmovzxbd load; `& 15` gives the
//   even-k weights and `>> 4` the odd-k ones, each converted to float: 7 vector instructions per 16 weights.
//   x is reordered once per call so that each 16-wide chunk lists its even k, then its odd k, which the two
//   halves meet with plain vector loads. The weights stay integers inside a group; the affine part is applied
//   once per group,
//       sum_k scale * (q_k - z) * x_k = scale * (sum_k q_k * x_k) - scale * z * (sum_k x_k),
//   with sum_k x_k per (row of x, group) computed once per call and the z term summed after the main loop.
//   Tiles: 1 x 4 weight rows for M = 1, 2 x 2 for M = 2, M x 1 for M = 3, 4 (8 to 16 FMA chains). K is cut into
//   blocks whose slice of x stays in L1; the next tile's bytes are software-prefetched (the hardware prefetcher
//   does not ramp up on these short interleaved row streams: +50% bandwidth measured).
//
// GEMV, AVX-512 (M <= 16, G >= 32, on CPUs with AVX-512): dequantization by table lookup, see below.
//
// GEMM (otherwise): BLIS-style. Each task dequantizes a panel of 16 weight rows x 256 k into an L1
//   buffer laid out [k][16] (8 rows at a time, transposed as bytes before conversion; w = q * scale - zero *
//   scale, one FMA per 8 weights) and runs a 6x16 broadcast-FMA micro-kernel (12 accumulators) over all its
//   rows of x, accumulating into a [rows][16] buffer across k blocks; bias and the copy to y come last.
//   Dequantization costs under one instruction per weight per task, shared by the M rows that reuse it.
//
// Both differ from the reference by summation order and by the per-group factoring (relative ~1e-6 of
// sum_k |x * w|). The scalar reference dequantizes one row at a time and sums in k order; it is also the
// fallback on CPUs without AVX2/FMA. Quantization and dequantization are scalar: they run once per model.
// Which of them runs is decided by kernels/cpu/isa.h (isa::w4_impl).
#include "kernels/cpu/w4.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/scratch.h"

namespace joule::kernels {

void w4_check_args(const char* fn, int64_t M, int64_t N, int64_t K, int64_t group) {
  if (!w4_group_valid(group))
    throw std::invalid_argument(std::string(fn) + ": group must be a power of two >= 2, got " +
                                std::to_string(group));
  if (M < 0 || N < 0 || K < 0)
    throw std::invalid_argument(std::string(fn) + ": negative shape M=" + std::to_string(M) +
                                " N=" + std::to_string(N) + " K=" + std::to_string(K));
}

namespace {

// Clamp to [0, 15]; NaN goes to 0.
inline int clamp_q(float t) { return t >= 0.0f ? (t <= 15.0f ? static_cast<int>(t) : 15) : 0; }

void fill_bias(int64_t M, int64_t N, const float* bias, float* y) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) y[m * N + n] = bias ? bias[n] : 0.0f;
}

// ---------------------------------------------------------------------------------------------- GEMV path
constexpr int64_t kChunk = 16;  // weights per 8 packed bytes = one vpmovzxbd load
// The GEMV runs for M <= isa::kW4GemvMaxM (measured: from M = 5 the panel GEMM is faster, K = N = 4096) and for
// groups of whole chunks.
static_assert(isa::kW4GemvMinGroup == kChunk, "the GEMV's chunks never straddle a group");
constexpr int64_t kGemvXBytes = 16 << 10;  // x slice per K block (all M rows): half of a 32 KiB L1

struct GemvArgs {
  const float* xp;      // [M, kp] x, each 16-chunk reordered to (k even..., k odd...), zero past K
  int64_t kp;           // K rounded up to 16
  const float* sx;      // [M, ng] sum of x over each group
  const uint8_t* qw;    // [N, rb] packed weights
  int64_t rb;           // bytes per weight row, ceil(K/2)
  const float* scales;  // [N, ng]
  const uint8_t* zeros; // [N, ng]
  int64_t ng, group, K, N;
  const float* bias;    // [N] or null
  float* y;             // [M, N]
  int64_t pf;           // software prefetch distance in bytes (the next tile's rows)
};

JOULE_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Eight packed bytes (16 weights) as two float vectors: lanes k = 0, 2, ..., 14 and k = 1, 3, ..., 15.
JOULE_AVX2 inline void unpack16(const uint8_t* p, __m256& wl, __m256& wh) {
  const __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  wl = _mm256_cvtepi32_ps(_mm256_and_si256(b, _mm256_set1_epi32(0x0F)));
  wh = _mm256_cvtepi32_ps(_mm256_srli_epi32(b, 4));
}

// Group [k0, k1) of a row as byte range and whole-chunk end; the last chunk of a row may be partial.
struct GroupSpan {
  int64_t o0, ofull, o1;  // byte offsets: start, end of whole 16-weight chunks, end
};
inline GroupSpan group_span(const GemvArgs& a, int64_t g) {
  const int64_t k0 = g * a.group, k1 = std::min(a.K, k0 + a.group);
  return {k0 / 2, (k0 + ((k1 - k0) & ~(kChunk - 1))) / 2, w4_row_bytes(k1)};
}

// The same bytes of the next tile's rows: a few hundred ns ahead, enough to cover DRAM latency, which the
// hardware prefetcher alone does not on these short (rb-byte) interleaved streams.
template <int NR>
JOULE_AVX2 inline void prefetch_next(const uint8_t* const (&row)[NR], int64_t pf, const GroupSpan& sp) {
  for (int64_t off = (sp.o0 + 63) & ~int64_t{63}; off < sp.o1; off += 64)  // each 64-byte step of the row once
    for (int j = 0; j < NR; ++j) _mm_prefetch(reinterpret_cast<const char*>(row[j] + pf + off), _MM_HINT_T0);
}

// y row n: first K block writes partial + bias, later blocks add.
inline void gemv_store(const GemvArgs& a, int64_t m, int64_t n, int64_t g0, float partial) {
  float& out = a.y[m * a.N + n];
  out = (g0 > 0 ? out : (a.bias ? a.bias[n] : 0.0f)) + partial;
}

// sum_{g0 <= g < g1} scale[g] * zero[g] * sx[g] for one weight row and one row of x.
JOULE_AVX2 inline float zero_correction(const float* scale, const uint8_t* zero, const float* sx, int64_t g0,
                                        int64_t g1) {
  __m256 acc = _mm256_setzero_ps();
  int64_t g = g0;
  for (; g + 8 <= g1; g += 8) {
    const __m128i z8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(zero + g));
    const __m256 z = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(z8));
    acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(scale + g), z), _mm256_loadu_ps(sx + g), acc);
  }
  float c = hsum(acc);
  for (; g < g1; ++g) c += scale[g] * static_cast<float>(zero[g]) * sx[g];
  return c;
}

template <int MR, int NR>
JOULE_AVX2 inline void qsum_chunk(const uint8_t* const (&p)[NR], const float* x, int64_t kp, __m256 (&lo)[MR][NR],
                                  __m256 (&hi)[MR][NR]) {
#pragma GCC unroll 4
  for (int j = 0; j < NR; ++j) {
    __m256 wl, wh;
    unpack16(p[j], wl, wh);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      lo[i][j] = _mm256_fmadd_ps(wl, _mm256_loadu_ps(x + i * kp), lo[i][j]);
      hi[i][j] = _mm256_fmadd_ps(wh, _mm256_loadu_ps(x + i * kp + 8), hi[i][j]);
    }
  }
}

// MR rows of x against NR weight rows, groups [g0, g1). Weights stay integers: per group the kernel sums q * x
// (lo/hi lanes in separate accumulators: 2 * MR * NR FMA chains) and then folds in the scale,
//   y += scale * sum(q * x) - scale * zero * sum(x),
// the second term for all groups at once, after the loop (zero_correction).
template <int MR, int NR>
JOULE_AVX2 void gemv_tile_qsum(const GemvArgs& a, int64_t m0, int64_t n0, int64_t g0, int64_t g1) {
  __m256 tot[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) tot[i][j] = _mm256_setzero_ps();
  const uint8_t* row[NR];
  for (int j = 0; j < NR; ++j) row[j] = a.qw + (n0 + j) * a.rb;
  const float* xm = a.xp + m0 * a.kp;

  for (int64_t g = g0; g < g1; ++g) {
    const GroupSpan sp = group_span(a, g);
    prefetch_next<NR>(row, a.pf, sp);
    __m256 lo[MR][NR], hi[MR][NR];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) lo[i][j] = _mm256_setzero_ps(), hi[i][j] = _mm256_setzero_ps();
#pragma GCC unroll 2
    for (int64_t o = sp.o0; o < sp.ofull; o += kChunk / 2) {  // o: byte offset in the row, k = 2 * o
      const uint8_t* p[NR];
      for (int j = 0; j < NR; ++j) p[j] = row[j] + o;
      qsum_chunk<MR, NR>(p, xm + 2 * o, a.kp, lo, hi);
    }
    if (sp.ofull < sp.o1) {  // partial last chunk: copy its bytes so the 8-byte load stays inside the buffer
      alignas(8) uint8_t tail[NR][8] = {};
      const uint8_t* p[NR];
      for (int j = 0; j < NR; ++j) std::memcpy(tail[j], row[j] + sp.ofull, size_t(sp.o1 - sp.ofull)), p[j] = tail[j];
      qsum_chunk<MR, NR>(p, xm + 2 * sp.ofull, a.kp, lo, hi);
    }
    for (int j = 0; j < NR; ++j) {
      const __m256 sv = _mm256_set1_ps(a.scales[(n0 + j) * a.ng + g]);
      for (int i = 0; i < MR; ++i) tot[i][j] = _mm256_fmadd_ps(sv, _mm256_add_ps(lo[i][j], hi[i][j]), tot[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      const int64_t n = n0 + j, gr = n * a.ng;
      const float corr = zero_correction(a.scales + gr, a.zeros + gr, a.sx + (m0 + i) * a.ng, g0, g1);
      gemv_store(a, m0 + i, n, g0, hsum(tot[i][j]) - corr);
    }
}

// All M (<= 4) rows of x against weight rows [n0, n0 + NR).
template <int NR>
JOULE_AVX2 void gemv_rows(const GemvArgs& a, int64_t M, int64_t n0, int64_t g0, int64_t g1) {
  if constexpr (NR == 4) {
    gemv_tile_qsum<1, 4>(a, 0, n0, g0, g1);  // M == 1
  } else if constexpr (NR == 2) {
    gemv_tile_qsum<2, 2>(a, 0, n0, g0, g1);  // M == 2
  } else {
    for (int64_t m = 0; m < M;) {  // one pass for M <= 4
      switch (std::min<int64_t>(M - m, 4)) {
        case 4: gemv_tile_qsum<4, 1>(a, m, n0, g0, g1); m += 4; break;
        case 3: gemv_tile_qsum<3, 1>(a, m, n0, g0, g1); m += 3; break;
        case 2: gemv_tile_qsum<2, 1>(a, m, n0, g0, g1); m += 2; break;
        default: gemv_tile_qsum<1, 1>(a, m, n0, g0, g1); m += 1; break;
      }
    }
  }
}

// Each thread owns a fixed range of weight rows (whole NR tiles). K is cut into blocks of whole groups whose
// slice of x (all M rows) fits in L1 next to the weights; every block sweeps the thread's rows.
template <int NR>
JOULE_AVX2 void gemv_run(const GemvArgs& a, int64_t M, int64_t groups_per_block, bool parallel) {
  const int64_t tiles = (a.N + NR - 1) / NR;
#pragma omp parallel if (parallel)
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t t0 = tiles * t / nt, t1 = tiles * (t + 1) / nt;
    for (int64_t g0 = 0; g0 < a.ng; g0 += groups_per_block) {
      const int64_t g1 = std::min(a.ng, g0 + groups_per_block);
      for (int64_t b = t0; b < t1; ++b) {
        const int64_t n0 = b * NR;
        if (n0 + NR <= a.N) {
          gemv_rows<NR>(a, M, n0, g0, g1);
        } else {
          for (int64_t n = n0; n < a.N; ++n) gemv_rows<1>(a, M, n, g0, g1);
        }
      }
    }
  }
}

void linear_w4_gemv(const float* x, int64_t M, int64_t K, const uint8_t* qweight, const float* scales,
                    const uint8_t* zeros, int64_t N, int64_t group, const float* bias, float* y, bool parallel) {
  const int64_t ng = w4_groups(K, group), kp = (K + kChunk - 1) / kChunk * kChunk, rb = w4_row_bytes(K);
  std::vector<float> xp(static_cast<size_t>(M * kp), 0.0f), sx(static_cast<size_t>(M * ng), 0.0f);
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * K;
    float* xpr = xp.data() + m * kp;
    for (int64_t c = 0; c < K; c += kChunk)  // chunk c: x[c], x[c+2], ..., x[c+14], x[c+1], ..., x[c+15]
      for (int64_t j = 0; j < std::min(kChunk, K - c); ++j) xpr[c + (j >> 1) + (j & 1) * 8] = xr[c + j];
    for (int64_t g = 0; g < ng; ++g) {
      float acc = 0.0f;
      for (int64_t k = g * group; k < std::min(K, (g + 1) * group); ++k) acc += xr[k];
      sx[m * ng + g] = acc;
    }
  }
  const int64_t groups_per_block = std::max<int64_t>(1, kGemvXBytes / (M * group * int64_t{sizeof(float)}));
  const int nr = (M == 1 && N >= 4) ? 4 : (M == 2 && N >= 2) ? 2 : 1;
  const GemvArgs a{xp.data(), kp, sx.data(), qweight, rb, scales, zeros, ng, group, K, N, bias, y,
                   std::max<int64_t>(nr * rb, 1024)};
  if (nr == 4)
    gemv_run<4>(a, M, groups_per_block, parallel);
  else if (nr == 2)
    gemv_run<2>(a, M, groups_per_block, parallel);
  else
    gemv_run<1>(a, M, groups_per_block, parallel);
}

// ------------------------------------------------------------------------------------- GEMV path, AVX-512
// M <= kW4Gemv512MaxM rows of x (decode, small-batch serving) against the weights streamed once. Per group and
// weight row, a 16-float table holds the dequantized value of every code, (q - zero) * scale, so a weight is one
// vpermps away from its nibble and the zero-point correction disappears: 16 packed bytes (32 weights) become
// two float vectors (k even, k odd) in 1 load-extend, 2 logic ops and 2 permutes, shared by every row of x
// (2 FMAs per row). x is reordered once per call so that each 32-k chunk lists its even k, then its odd k.
// Tiles: MR rows of x x NR weight rows with separate even/odd accumulators (8-16 FMA chains); rows of x beyond
// 8 run as further passes over the same K block, whose weight bytes are then in L1. Like the AVX2 GEMV: K cut
// into blocks whose slice of x stays in L1, each thread owning whole weight-row tiles, the next tile prefetched.
// GCC 12's own AVX-512 headers start some intrinsics (the extends, permutes) from an "undefined" vector and
// then warn that it is uninitialised; the warning is about the header, not this code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
constexpr int64_t kChunk512 = 32;  // weights per 16 packed bytes = one vpmovzxbd zmm load
static_assert(isa::kW4Gemv512MinGroup == kChunk512, "the AVX-512 GEMV's chunks never straddle a group");

// One 32-weight chunk of NR weight rows (16 packed bytes each, p[j]) against MR rows of x (xc: row i's even k at
// xc + 32 i, odd k at xc + 32 i + 16). Small tiles keep even and odd k in separate accumulators (ao), so that
// at least 8 FMA chains are in flight; tiles of 16 outputs and more add both into ae (ao unused).
template <int MR, int NR, int AO>
JOULE_AVX512 inline __attribute__((always_inline)) void chunk512(const uint8_t* const (&p)[NR], const float* xc,
                                                                 const __m512 (&tab)[NR], __m512 (&ae)[MR][NR],
                                                                 __m512 (&ao)[AO][NR]) {
  const __m512i low = _mm512_set1_epi32(0x0F);
#pragma GCC unroll 4
  for (int j = 0; j < NR; ++j) {
    const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p[j])));
    const __m512 we = _mm512_permutexvar_ps(_mm512_and_si512(b, low), tab[j]);
    const __m512 wo = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), tab[j]);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      ae[i][j] = _mm512_fmadd_ps(we, _mm512_loadu_ps(xc + 32 * i), ae[i][j]);
      if constexpr (AO == MR)
        ao[i][j] = _mm512_fmadd_ps(wo, _mm512_loadu_ps(xc + 32 * i + 16), ao[i][j]);
      else
        ae[i][j] = _mm512_fmadd_ps(wo, _mm512_loadu_ps(xc + 32 * i + 16), ae[i][j]);
    }
  }
}

// MR rows of x (from m0) against NR weight rows (from n0), groups [g0, g1).
template <int MR, int NR>
JOULE_AVX512 void gemv512_tile(const GemvArgs& a, int64_t m0, int64_t n0, int64_t g0, int64_t g1) {
  constexpr int AO = MR * NR <= 8 ? MR : 1;
  __m512 ae[MR][NR], ao[AO][NR];
  for (int j = 0; j < NR; ++j) {
    for (int i = 0; i < MR; ++i) ae[i][j] = _mm512_setzero_ps();
    for (int i = 0; i < AO; ++i) ao[i][j] = _mm512_setzero_ps();
  }
  const uint8_t* row[NR];
  for (int j = 0; j < NR; ++j) row[j] = a.qw + (n0 + j) * a.rb;
  const float* xm = a.xp + m0 * kChunk512;  // a.kp: floats per chunk of all M rows
  const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t g = g0; g < g1; ++g) {
    const int64_t k0 = g * a.group, k1 = std::min(a.K, k0 + a.group);
    const int64_t o0 = k0 / 2, ofull = (k0 + ((k1 - k0) & ~(kChunk512 - 1))) / 2, o1 = w4_row_bytes(k1);
    for (int64_t off = (o0 + 63) & ~int64_t{63}; off < o1; off += 64)
      for (int j = 0; j < NR; ++j) _mm_prefetch(reinterpret_cast<const char*>(row[j] + a.pf + off), _MM_HINT_T0);
    __m512 tab[NR];
    for (int j = 0; j < NR; ++j) {
      const int64_t gi = (n0 + j) * a.ng + g;
      tab[j] = _mm512_mul_ps(_mm512_sub_ps(iota, _mm512_set1_ps(float(a.zeros[gi]))), _mm512_set1_ps(a.scales[gi]));
    }
    for (int64_t o = o0; o < ofull; o += kChunk512 / 2) {  // o: byte offset in the row, k = 2 * o (o >= 0)
      const uint8_t* p[NR];
      for (int j = 0; j < NR; ++j) p[j] = row[j] + o;
      chunk512<MR, NR, AO>(p, xm + (uint64_t(o) / 16) * a.kp, tab, ae, ao);
    }
    if (ofull < o1) {  // partial last chunk: its bytes copied so the 16-byte load stays inside the buffer; the
      alignas(16) uint8_t tail[NR][16];  // padding codes meet x's zero padding
      const uint8_t* p[NR];
      for (int j = 0; j < NR; ++j) {
        std::memset(tail[j], 0, 16);
        std::memcpy(tail[j], row[j] + ofull, size_t(o1 - ofull));
        p[j] = tail[j];
      }
      chunk512<MR, NR, AO>(p, xm + (ofull / 16) * a.kp, tab, ae, ao);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j)
      gemv_store(a, m0 + i, n0 + j, g0,
                 _mm512_reduce_add_ps(AO == MR ? _mm512_add_ps(ae[i][j], ao[i % AO][j]) : ae[i][j]));
}

// All M rows of x against weight rows [n0, n0 + NR): passes of up to 8 rows.
template <int NR>
JOULE_AVX512 void gemv512_rows(const GemvArgs& a, int64_t M, int64_t n0, int64_t g0, int64_t g1) {
  for (int64_t m = 0; m < M;) {
    const int64_t r = M - m;
    if (r >= 8) gemv512_tile<8, NR>(a, m, n0, g0, g1), m += 8;
    else if (r >= 4) gemv512_tile<4, NR>(a, m, n0, g0, g1), m += 4;
    else if (r >= 2) gemv512_tile<2, NR>(a, m, n0, g0, g1), m += 2;
    else gemv512_tile<1, NR>(a, m, n0, g0, g1), m += 1;
  }
}

template <int NR>
JOULE_AVX512 void gemv512_run(const GemvArgs& a, int64_t M, int64_t groups_per_block, bool parallel) {
  const int64_t tiles = (a.N + NR - 1) / NR;
#pragma omp parallel if (parallel)
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t t0 = tiles * t / nt, t1 = tiles * (t + 1) / nt;
    for (int64_t g0 = 0; g0 < a.ng; g0 += groups_per_block) {
      const int64_t g1 = std::min(a.ng, g0 + groups_per_block);
      for (int64_t b = t0; b < t1; ++b) {
        const int64_t n0 = b * NR;
        if (n0 + NR <= a.N)
          gemv512_rows<NR>(a, M, n0, g0, g1);
        else
          for (int64_t n = n0; n < a.N; ++n) gemv512_rows<1>(a, M, n, g0, g1);
      }
    }
  }
}

void linear_w4_gemv512(const float* x, int64_t M, int64_t K, const uint8_t* qweight, const float* scales,
                       const uint8_t* zeros, int64_t N, int64_t group, const float* bias, float* y, bool parallel) {
  // x as [K / 32 chunks][M rows][32]: chunk c of row m lists x[m, c], x[m, c+2], ..., x[m, c+30], then the odd k;
  // a tile's rows of one chunk are then 128-byte steps from one pointer. Zero past K.
  const int64_t ng = w4_groups(K, group), nc = (K + kChunk512 - 1) / kChunk512, rb = w4_row_bytes(K);
  thread_local Scratch xp_scratch;
  float* xp = xp_scratch.get<float>(size_t(nc * M * kChunk512));
  std::fill(xp, xp + nc * M * kChunk512, 0.0f);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t c = k / kChunk512, j = k % kChunk512;
      xp[(c * M + m) * kChunk512 + (j >> 1) + (j & 1) * 16] = x[m * K + k];
    }
  const int64_t kp = M * kChunk512;  // GemvArgs::kp here: floats per chunk of all rows
  // M rows of x per K block, in L1 with the block's weight bytes; at least one group.
  const int64_t groups_per_block = std::max<int64_t>(1, kGemvXBytes / (std::min<int64_t>(M, 8) * group * 4));
  const int nr = M <= 4 ? 4 : 2;  // tiles of 4-16 outputs (1 x 4, 2 x 4, 4 x 4, 8 x 2)
  const GemvArgs a{xp, kp, nullptr, qweight, rb, scales, zeros, ng, group, K, N, bias, y,
                   std::max<int64_t>(nr * rb, 1024)};
  if (nr == 4 && N >= 4)
    gemv512_run<4>(a, M, groups_per_block, parallel);
  else if (nr >= 2 && N >= 2)
    gemv512_run<2>(a, M, groups_per_block, parallel);
  else
    gemv512_run<1>(a, M, groups_per_block, parallel);
}
#pragma GCC diagnostic pop

// ---------------------------------------------------------------------------------------------- GEMM path
constexpr int64_t kPanelN = 16;  // W rows per panel (two ymm of outputs)
constexpr int64_t kPanelK = 256; // k per panel: 16 KiB of floats, L1-resident
constexpr int kMicroM = 6;       // rows of x per micro-kernel call (12 accumulators)

// panel[(k - k0) * 16 + r] = dequantized W[n0 + r, k] for k in [k0, k0 + kc), zero for rows >= nv.
// Whole 16-weight chunks of 8 rows go through an 8x8 byte transpose (12 unpacks), then one column (8 rows) at a
// time: zero-extend, split nibbles, convert, q * scale - zero * scale. The rest is scalar.
JOULE_AVX2 void dequant_panel(const uint8_t* qw, int64_t rb, const float* scales, const uint8_t* zeros,
                              int64_t ng, int64_t group, int64_t K, int64_t n0, int64_t nv, int64_t k0,
                              int64_t kc, float* panel) {
  // The next k block of these rows: 16 short segments rb bytes apart, which the hardware prefetcher misses.
  if (k0 + kc < K)
    for (int64_t r = 0; r < nv; ++r)
      for (int64_t off = (k0 + kc) / 2; off < std::min(rb, (k0 + 2 * kc) / 2); off += 64)
        _mm_prefetch(reinterpret_cast<const char*>(qw + (n0 + r) * rb + off), _MM_HINT_T0);
  const int64_t kvec = group >= kChunk ? std::min(k0 + kc, K & ~(kChunk - 1)) : k0;  // end of whole chunks
  for (int64_t h = 0; h < kPanelN; h += 8) {  // two halves of 8 rows
    const int64_t rows = std::min<int64_t>(8, nv - h);
    int64_t k = k0;
    if (rows == 8) {
      const uint8_t* row = qw + (n0 + h) * rb;
      __m256 sv = _mm256_setzero_ps(), bv = sv;  // per-row scale and -scale * zero of the current group
      for (int64_t g = -1; k < kvec; k += kChunk) {
        if (g < 0 || w4_group_start(k, group)) {  // a new group every group / 16 chunks
          g = k / group;
          alignas(32) float s8[8], b8[8];
          for (int r = 0; r < 8; ++r) {
            const int64_t i = (n0 + h + r) * ng + g;
            s8[r] = scales[i], b8[r] = -scales[i] * static_cast<float>(zeros[i]);
          }
          sv = _mm256_load_ps(s8), bv = _mm256_load_ps(b8);
        }
        // 8 rows x 8 bytes, transposed as bytes: c[j] holds byte columns 2j and 2j + 1 (8 rows each).
        __m128i a[8];
        for (int r = 0; r < 8; ++r) a[r] = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + r * rb + k / 2));
        const __m128i b0 = _mm_unpacklo_epi8(a[0], a[1]), b1 = _mm_unpacklo_epi8(a[2], a[3]);
        const __m128i b2 = _mm_unpacklo_epi8(a[4], a[5]), b3 = _mm_unpacklo_epi8(a[6], a[7]);
        const __m128i c0 = _mm_unpacklo_epi16(b0, b1), c1 = _mm_unpackhi_epi16(b0, b1);
        const __m128i c2 = _mm_unpacklo_epi16(b2, b3), c3 = _mm_unpackhi_epi16(b2, b3);
        const __m128i c[4] = {_mm_unpacklo_epi32(c0, c2), _mm_unpackhi_epi32(c0, c2), _mm_unpacklo_epi32(c1, c3),
                              _mm_unpackhi_epi32(c1, c3)};
        float* dst = panel + (k - k0) * kPanelN + h;
        for (int j = 0; j < 4; ++j)
          for (int e = 0; e < 2; ++e) {  // byte column 2j + e holds k + 4j + 2e (low nibble) and the next k (high)
            const __m256i q = _mm256_cvtepu8_epi32(e ? _mm_unpackhi_epi64(c[j], c[j]) : c[j]);
            const __m256 wl = _mm256_cvtepi32_ps(_mm256_and_si256(q, _mm256_set1_epi32(0x0F)));
            const __m256 wh = _mm256_cvtepi32_ps(_mm256_srli_epi32(q, 4));
            _mm256_store_ps(dst + (4 * j + 2 * e) * kPanelN, _mm256_fmadd_ps(wl, sv, bv));
            _mm256_store_ps(dst + (4 * j + 2 * e + 1) * kPanelN, _mm256_fmadd_ps(wh, sv, bv));
          }
      }
    }
    for (; k < k0 + kc; ++k)  // the rest: partial chunks, groups < 16, missing rows (zero)
      for (int64_t r = 0; r < 8; ++r) {
        const int64_t n = n0 + h + r, i = n * ng + k / group;
        panel[(k - k0) * kPanelN + h + r] =
            (r < rows && k < K) ? scales[i] * static_cast<float>(formats::w4_nibble(qw + n * rb, k) - zeros[i])
                                : 0.0f;
      }
  }
}

// c[i, 0..16] (+)= sum_k x[i, k] * panel[k, 0..16] for MR rows of x (row stride ldx); c has row stride 16.
template <int MR>
JOULE_AVX2 void micro_kernel(const float* x, int64_t ldx, const float* panel, int64_t kc, float* c, bool accumulate) {
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = accumulate ? _mm256_load_ps(c + i * kPanelN) : _mm256_setzero_ps();
    acc[i][1] = accumulate ? _mm256_load_ps(c + i * kPanelN + 8) : _mm256_setzero_ps();
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(panel + k * kPanelN), b1 = _mm256_load_ps(panel + k * kPanelN + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 av = _mm256_broadcast_ss(x + i * ldx + k);
      acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    _mm256_store_ps(c + i * kPanelN, acc[i][0]);
    _mm256_store_ps(c + i * kPanelN + 8, acc[i][1]);
  }
}

JOULE_AVX2 void micro_dispatch(int64_t mr, const float* x, int64_t ldx, const float* panel, int64_t kc, float* c,
                               bool accumulate) {
  switch (mr) {
    case 6: micro_kernel<6>(x, ldx, panel, kc, c, accumulate); break;
    case 5: micro_kernel<5>(x, ldx, panel, kc, c, accumulate); break;
    case 4: micro_kernel<4>(x, ldx, panel, kc, c, accumulate); break;
    case 3: micro_kernel<3>(x, ldx, panel, kc, c, accumulate); break;
    case 2: micro_kernel<2>(x, ldx, panel, kc, c, accumulate); break;
    default: micro_kernel<1>(x, ldx, panel, kc, c, accumulate); break;
  }
}

// Per worker thread (kernels/cpu/scratch.h): the dequantized panel and the [rows][16] accumulators of its task.
thread_local Scratch panel_scratch, cbuf_scratch;

JOULE_AVX2 void linear_w4_gemm(const float* x, int64_t M, int64_t K, const uint8_t* qweight, const float* scales,
                               const uint8_t* zeros, int64_t N, int64_t group, const float* bias, float* y,
                               bool parallel) {
  const int64_t ng = w4_groups(K, group), rb = w4_row_bytes(K);
  const int64_t panels = (N + kPanelN - 1) / kPanelN;
  const int64_t threads = parallel ? omp_get_max_threads() : 1;
  // Few panels: also split the rows of x (each part dequantizes the panel again), at least 24 rows a part.
  int64_t mparts = 1;
  if (panels < 2 * threads)
    mparts = std::max<int64_t>(1, std::min((M + 23) / 24, (2 * threads + panels - 1) / panels));
  const int64_t mstep = ((M + mparts - 1) / mparts + kMicroM - 1) / kMicroM * kMicroM;
  mparts = (M + mstep - 1) / mstep;
  const int64_t tasks = panels * mparts;

#pragma omp parallel if (parallel && tasks > 1)
  {
    float* const panel = panel_scratch.get<float>(static_cast<size_t>(kPanelK * kPanelN));
    float* const cbuf = cbuf_scratch.get<float>(static_cast<size_t>(mstep * kPanelN));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t n0 = (t / mparts) * kPanelN, nv = std::min(kPanelN, N - n0);
      const int64_t ma = (t % mparts) * mstep, mb = std::min(M, ma + mstep);
      for (int64_t k0 = 0; k0 < K; k0 += kPanelK) {
        const int64_t kc = std::min(kPanelK, K - k0);
        dequant_panel(qweight, rb, scales, zeros, ng, group, K, n0, nv, k0, kc, panel);
        for (int64_t m = ma, mr; m < mb; m += mr) {
          // Balanced calls (8 rows: 4 + 4, not 6 + 2): a short call has too few FMA chains to hide latency.
          const int64_t left = mb - m, calls = (left + kMicroM - 1) / kMicroM;
          mr = (left + calls - 1) / calls;
          micro_dispatch(mr, x + m * K + k0, K, panel, kc, cbuf + (m - ma) * kPanelN, k0 > 0);
        }
      }
      for (int64_t m = ma; m < mb; ++m)
        for (int64_t r = 0; r < nv; ++r)
          y[m * N + n0 + r] = cbuf[(m - ma) * kPanelN + r] + (bias ? bias[n0 + r] : 0.0f);
    }
  }
}

}  // namespace

void w4_group_params(const float* w, int64_t n, float* scale, uint8_t* zero) {
  float lo = 0.0f, hi = 0.0f;
  for (int64_t k = 0; k < n; ++k) lo = std::min(lo, w[k]), hi = std::max(hi, w[k]);
  float s = (hi - lo) / static_cast<float>(kW4Max);
  int z = 0;
  if (s > 0.0f && std::isfinite(s))
    z = clamp_q(std::nearbyint(-lo / s));
  else
    s = 1.0f;  // all-zero group (or a range that underflows): dequantizes to exact zeros
  *scale = s;
  *zero = static_cast<uint8_t>(z);
}

int w4_code(float w, float scale, int zero) { return clamp_q(std::nearbyint(w / scale) + static_cast<float>(zero)); }

void pack_w4(const uint8_t* codes, int64_t N, int64_t K, uint8_t* qweight) {
  const int64_t rb = w4_row_bytes(K);
  for (int64_t n = 0; n < N; ++n) {
    uint8_t* qr = qweight + n * rb;
    std::memset(qr, 0, static_cast<size_t>(rb));
    for (int64_t k = 0; k < K; ++k) qr[k >> 1] |= static_cast<uint8_t>((codes[n * K + k] & 0x0F) << ((k & 1) * 4));
  }
}

void quantize_w4_rtn(const float* w, int64_t N, int64_t K, int64_t group, uint8_t* qweight, float* scales,
                     uint8_t* zeros) {
  w4_check_args("quantize_w4_rtn", 0, N, K, group);
  const int64_t ng = w4_groups(K, group);
  std::vector<uint8_t> codes(static_cast<size_t>(N * K));
  for (int64_t n = 0; n < N; ++n) {
    const float* wr = w + n * K;
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t k0 = g * group, k1 = std::min(K, k0 + group);
      float& scale = scales[n * ng + g];
      uint8_t& zero = zeros[n * ng + g];
      w4_group_params(wr + k0, k1 - k0, &scale, &zero);
      for (int64_t k = k0; k < k1; ++k) codes[n * K + k] = static_cast<uint8_t>(w4_code(wr[k], scale, zero));
    }
  }
  pack_w4(codes.data(), N, K, qweight);
}

void dequantize_w4(const uint8_t* qweight, const float* scales, const uint8_t* zeros, int64_t N, int64_t K,
                   int64_t group, float* w) {
  w4_check_args("dequantize_w4", 0, N, K, group);
  const int64_t rb = w4_row_bytes(K), ng = w4_groups(K, group);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t g = n * ng + k / group;
      w[n * K + k] = scales[g] * static_cast<float>(formats::w4_nibble(qweight + n * rb, k) - zeros[g]);
    }
}

void linear_w4_ref(const float* x, int64_t M, int64_t K, const uint8_t* qweight, const float* scales,
                   const uint8_t* zeros, int64_t N, int64_t group, const float* bias, float* y) {
  w4_check_args("linear_w4_ref", M, N, K, group);
  std::vector<float> wrow(static_cast<size_t>(K));
  for (int64_t n = 0; n < N; ++n) {
    dequantize_w4(qweight + n * w4_row_bytes(K), scales + n * w4_groups(K, group), zeros + n * w4_groups(K, group),
                  1, K, group, wrow.data());
    for (int64_t m = 0; m < M; ++m) {
      float acc = 0.0f;
      for (int64_t k = 0; k < K; ++k) acc += x[m * K + k] * wrow[k];
      y[m * N + n] = acc + (bias ? bias[n] : 0.0f);
    }
  }
}

void linear_w4(const float* x, int64_t M, int64_t K, const uint8_t* qweight, const float* scales,
               const uint8_t* zeros, int64_t N, int64_t group, const float* bias, float* y) {
  w4_check_args("linear_w4", M, N, K, group);
  if (M == 0 || N == 0) return;
  if (K == 0) return fill_bias(M, N, bias, y);
  const isa::W4Impl impl = isa::w4_impl(M, group);
  if (impl == isa::W4Impl::kReference) return linear_w4_ref(x, M, K, qweight, scales, zeros, N, group, bias, y);
  // Below ~32k multiply-adds a fork/join costs more than it saves.
  const bool parallel = M * N * K >= (int64_t{1} << 15) && omp_get_max_threads() > 1;
  if (impl == isa::W4Impl::kGemvAvx512)
    linear_w4_gemv512(x, M, K, qweight, scales, zeros, N, group, bias, y, parallel);
  else if (impl == isa::W4Impl::kGemvAvx2)
    linear_w4_gemv(x, M, K, qweight, scales, zeros, N, group, bias, y, parallel);
  else
    linear_w4_gemm(x, M, K, qweight, scales, zeros, N, group, bias, y, parallel);
}

}  // namespace joule::kernels
