// W4A8: the W4 weights (kernels/formats/formats.h) against int8 activations, the contract in kernels/cpu/w4.h.
//
// With float activations a W4 linear is FMA-bound from a few rows of x on: every weight is dequantized and then
// multiplied in float, 16 multiply-adds per instruction. Here the nibbles stay integers and meet int8 x in
// vpdpbusd (unsigned codes x signed activations, 64 multiply-adds per instruction, exact in int32), so the
// weights are streamed once for up to ~16 rows of x at no more compute than the bytes take to arrive, and large M
// runs at about twice the float W4 GEMM.
//
// Layout. Each row of x is quantized as quantize_rows_s8 does (one scale per row), then stored per 128-k chunk
// as [chunk][row][64 even-k codes, 64 odd-k codes], zero past K. 64 packed weight bytes (128 weights) split into
// their low nibbles (the even k) and high nibbles (the odd k) with two logic ops and a shift, which line up byte
// for byte with the two halves of x's chunk: two vpdpbusd per row of x and 128 weights.
// Per group (a multiple of 128 k, so no chunk straddles one) the int32 lanes are converted and multiplied by the
// group's scale into float lanes; the zero point is applied once per K block with the exact integer sums of x per
// group, sum_k scale * (q - z) * x = scale * sum q x - scale * z * sum x, and x's row scale last.
//
// Work split: threads own fixed ranges of weight-row tiles; rows of x are taken 64 at a time and K in blocks whose
// slice of x (those rows) stays in L1; within a block, every tile runs all of the rows in passes of up to 4 (their
// weight bytes in L1 after the first pass). The next tile's weight bytes are prefetched, as in the W4 GEMV.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/w4.h"
#include "kernels/cpu/w8a8.h"

namespace joule::kernels {
namespace {

constexpr int64_t kChunk = isa::kW4A8GroupMultiple;  // 128 weights = 64 packed bytes = one zmm per parity
constexpr int64_t kChunkBytes = kChunk / 2;
constexpr int64_t kXBlockBytes = 64 << 10;  // x slice per K block (the block's rows), from L1 or L2
constexpr int64_t kMBlock = 64;             // rows of x per block

inline int nibble(const uint8_t* row, int64_t k) { return (row[k >> 1] >> ((k & 1) * 4)) & 0x0F; }

struct Args {
  const int8_t* xq;     // [nc][M][128]: chunk c of row m, even k then odd k, zero past K
  int64_t M;
  const float* xs;      // [M] x's row scales
  const float* xsum;    // [M, ng] sum of row m's codes over group g (an exact integer)
  const uint8_t* qw;    // [N, rb]
  int64_t rb;
  const float* scales;  // [N, ng]
  const uint8_t* zeros; // [N, ng]
  int64_t ng, group, K, N;
  const float* bias;
  float* y;
  int64_t pf;           // prefetch distance in bytes: the next tile's rows
};

#define JOULE_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// One 128-weight chunk of NR weight rows (64 bytes each at p[j]) against MR rows of x (xc: row i at xc + 128 i).
template <int MR, int NR>
JOULE_VNNI inline __attribute__((always_inline)) void chunk(const uint8_t* const (&p)[NR], const int8_t* xc,
                                                            __m512i (&s)[MR][NR]) {
  // All weights unpacked first, then x row by row: 2 NR + 2 vector registers live beside the accumulators.
  const __m512i low = _mm512_set1_epi8(0x0F);
  __m512i we[NR], wo[NR];
#pragma GCC unroll 4
  for (int j = 0; j < NR; ++j) {
    const __m512i b = _mm512_loadu_si512(p[j]);
    we[j] = _mm512_and_si512(b, low), wo[j] = _mm512_and_si512(_mm512_srli_epi16(b, 4), low);
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
    const __m512i xe = _mm512_loadu_si512(xc + kChunk * i), xo = _mm512_loadu_si512(xc + kChunk * i + kChunkBytes);
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      s[i][j] = _mm512_dpbusd_epi32(s[i][j], we[j], xe);
      s[i][j] = _mm512_dpbusd_epi32(s[i][j], wo[j], xo);
    }
  }
}

// MR rows of x (from m0) against NR weight rows (from n0), groups [g0, g1); adds to y (or starts it from the bias
// at the first block). Every loop over i and j is unrolled, so that the accumulators stay in registers.
template <int MR, int NR>
JOULE_VNNI void tile(const Args& a, int64_t m0, int64_t n0, int64_t g0, int64_t g1) {
  __m512 f[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) f[i][j] = _mm512_setzero_ps();
  const uint8_t* row[NR];
#pragma GCC unroll 4
  for (int j = 0; j < NR; ++j) row[j] = a.qw + (n0 + j) * a.rb;
  for (int64_t g = g0; g < g1; ++g) {
    const int64_t o0 = g * a.group / 2, o1 = std::min(a.rb, (g + 1) * a.group / 2);
    const int64_t ofull = o0 + (o1 - o0) / kChunkBytes * kChunkBytes;  // end of the whole chunks
    for (int64_t off = o0; off < o1; off += 64)
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) _mm_prefetch(reinterpret_cast<const char*>(row[j] + a.pf + off), _MM_HINT_T0);
    __m512i s[MR][NR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) s[i][j] = _mm512_setzero_si512();
    const int8_t* xc = a.xq + (uint64_t(o0) / kChunkBytes * a.M + m0) * kChunk;  // chunk o0 / 64 of row m0
    const int64_t xstep = a.M * kChunk;
    for (int64_t o = o0; o < ofull; o += kChunkBytes, xc += xstep) {  // o: byte offset in the row
      const uint8_t* p[NR];
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) p[j] = row[j] + o;
      chunk<MR, NR>(p, xc, s);
    }
    if (ofull < o1) {  // the row's last, partial chunk: copied so the load stays inside the buffer (x is zero there)
      alignas(64) uint8_t tail[NR][kChunkBytes] = {};
      const uint8_t* p[NR];
      for (int j = 0; j < NR; ++j) std::memcpy(tail[j], row[j] + ofull, size_t(o1 - ofull)), p[j] = tail[j];
      chunk<MR, NR>(p, xc, s);
    }
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      const __m512 sv = _mm512_set1_ps(a.scales[(n0 + j) * a.ng + g]);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) f[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[i][j]), sv, f[i][j]);
    }
  }
  // The zero points, 16 groups per vector: f -= scale * zero * sum x, lane by lane, before the lanes are summed.
  for (int64_t g = g0; g < g1; g += 16) {
    const __mmask16 mk = g1 - g >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (g1 - g)) - 1);
    __m512 sz[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      const int64_t gi = (n0 + j) * a.ng + g;
      const __m512 z = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mk, a.zeros + gi)));
      sz[j] = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, a.scales + gi), z);
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = _mm512_maskz_loadu_ps(mk, a.xsum + (m0 + i) * a.ng + g);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) f[i][j] = _mm512_fnmadd_ps(sz[j], xv, f[i][j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      const int64_t m = m0 + i, n = n0 + j;
      float& out = a.y[m * a.N + n];
      out = (g0 > 0 ? out : (a.bias ? a.bias[n] : 0.0f)) + a.xs[m] * _mm512_reduce_add_ps(f[i][j]);
    }
}

// Rows [m0, m1) of x against weight rows [n0, n0 + NR): passes of up to 4 rows.
template <int NR>
JOULE_VNNI void rows(const Args& a, int64_t m0, int64_t m1, int64_t n0, int64_t g0, int64_t g1) {
  for (int64_t m = m0; m < m1;) {
    const int64_t r = m1 - m;
    if (NR == 1 && r >= 8) tile<8, 1>(a, m, n0, g0, g1), m += 8;
    else if (NR <= 2 && r >= 4) tile<4, NR>(a, m, n0, g0, g1), m += 4;
    else if (r >= 2) tile<2, NR>(a, m, n0, g0, g1), m += 2;
    else tile<1, NR>(a, m, n0, g0, g1), m += 1;
  }
}

template <int NR>
JOULE_VNNI void run(const Args& a, bool parallel) {
  const int64_t tiles = (a.N + NR - 1) / NR;
  const int64_t mb = std::min(a.M, kMBlock);
  const int64_t groups_per_block = std::max<int64_t>(1, kXBlockBytes / (mb * a.group));
#pragma omp parallel if (parallel)
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t t0 = tiles * t / nt, t1 = tiles * (t + 1) / nt;
    for (int64_t m0 = 0; m0 < a.M; m0 += mb) {
      const int64_t m1 = std::min(a.M, m0 + mb);
      for (int64_t g0 = 0; g0 < a.ng; g0 += groups_per_block) {
        const int64_t g1 = std::min(a.ng, g0 + groups_per_block);
        for (int64_t b = t0; b < t1; ++b) {
          const int64_t n0 = b * NR;
          if (n0 + NR <= a.N)
            rows<NR>(a, m0, m1, n0, g0, g1);
          else
            for (int64_t n = n0; n < a.N; ++n) rows<1>(a, m0, m1, n, g0, g1);
        }
      }
    }
  }
}

// x's codes into the chunk layout, with each row's sum per group. 128 codes at a time: as 16-bit words, the even
// k are the low bytes and the odd k the high ones, and vpmovwb packs either half.
JOULE_VNNI void layout_x(const int8_t* q, int64_t M, int64_t K, int64_t ng, int64_t group, int8_t* xq, float* xsum,
                         bool parallel) {
  const int64_t nc = (K + kChunk - 1) / kChunk;
#pragma omp parallel for if (parallel) schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    const int8_t* qr = q + m * K;
    for (int64_t g = 0; g < ng; ++g) xsum[m * ng + g] = 0.0f;
    for (int64_t c = 0; c < nc; ++c) {
      const int64_t k0 = c * kChunk, n = std::min(kChunk, K - k0);
      __m512i v0, v1;
      if (n == kChunk) {
        v0 = _mm512_loadu_si512(qr + k0), v1 = _mm512_loadu_si512(qr + k0 + 64);
      } else {  // zero past K
        const __mmask64 m0 = n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
        const __mmask64 m1 = n <= 64 ? 0 : n == 128 ? ~__mmask64{0} : (__mmask64{1} << (n - 64)) - 1;
        v0 = _mm512_maskz_loadu_epi8(m0, qr + k0), v1 = _mm512_maskz_loadu_epi8(m1, qr + k0 + 64);
      }
      int8_t* dst = xq + (c * M + m) * kChunk;
      const __m256i e0 = _mm512_cvtepi16_epi8(v0), e1 = _mm512_cvtepi16_epi8(v1);
      const __m256i o0 = _mm512_cvtepi16_epi8(_mm512_srai_epi16(v0, 8)), o1 = _mm512_cvtepi16_epi8(_mm512_srai_epi16(v1, 8));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), e0);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32), e1);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 64), o0);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 96), o1);
      // Sum of the 128 codes: biased to unsigned, summed per 8 bytes by vpsadbw, the bias taken off.
      const __m512i bias = _mm512_set1_epi8(int8_t(-128));
      const __m512i s = _mm512_add_epi64(_mm512_sad_epu8(_mm512_xor_si512(v0, bias), _mm512_setzero_si512()),
                                         _mm512_sad_epu8(_mm512_xor_si512(v1, bias), _mm512_setzero_si512()));
      xsum[m * ng + k0 / group] += float(_mm512_reduce_add_epi64(s) - 128 * kChunk);
    }
  }
}
#pragma GCC diagnostic pop

void linear_w4a8_vnni(const float* x, int64_t M, int64_t K, const uint8_t* qweight, const float* scales,
                      const uint8_t* zeros, int64_t N, int64_t group, const float* bias, float* y, bool parallel) {
  const int64_t ng = w4_groups(K, group), nc = (K + kChunk - 1) / kChunk, rb = w4_row_bytes(K);
  thread_local Scratch q_scratch, xq_scratch, xs_scratch, xsum_scratch;
  int8_t* q = q_scratch.get<int8_t>(size_t(M * K));
  float* xs = xs_scratch.get<float>(size_t(M));
  quantize_rows_s8(x, M, K, q, xs);
  int8_t* xq = xq_scratch.get<int8_t>(size_t(nc * M * kChunk));
  float* xsum = xsum_scratch.get<float>(size_t(M * ng));
  // The layout is a pass over x's bytes: threaded when there are enough rows to share.
  layout_x(q, M, K, ng, group, xq, xsum, parallel && M >= 8);
  const int nr = M <= 2 ? 4 : 2;
  const Args a{xq, M, xs, xsum, qweight, rb, scales, zeros, ng, group, K, N, bias, y, std::max<int64_t>(nr * rb, 1024)};
  if (nr == 4 && N >= 4)
    run<4>(a, parallel);
  else if (N >= 2)
    run<2>(a, parallel);
  else
    run<1>(a, parallel);
}


// ---------------------------------------------------------------------------------- panel kernel (packed)
// Output columns in the lanes, as in the W8A8 VNNI GEMM: per 8 k a panel's 64 bytes give two code vectors (16
// columns x 4 k each) against x[m, k..k+3] and x[m, k+4..k+7] broadcast, so a group's conversion and scaling is
// shared by 2 x group / 8 vpdpbusd per row and panel, and the accumulators are the outputs themselves.
constexpr int64_t kPanel = 16;       // output columns per panel
constexpr int64_t kStep = 8;         // k per 64 packed bytes
constexpr int64_t kPanelBytes = 64;

struct PanelArgs {
  const int8_t* xq;    // [M, kp] x's codes, zero past K
  int64_t kp;          // K rounded up to 8
  const float* xs;     // [M]
  const float* xsum;   // [M, ng]
  const W4A8Packed* pk;
  int64_t ng, panels, N;
  const float* bias;
  float* y;
};

inline int32_t load4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// MR rows of x (from m0) against NP panels (from p0), the whole of K.
template <int MR, int NP>
JOULE_VNNI void panel_tile(const PanelArgs& a, int64_t m0, int64_t p0) {
  const W4A8Packed& pk = *a.pk;
  const int64_t steps = a.kp / kStep, gsteps = pk.group / kStep;
  const __m512i low = _mm512_set1_epi8(0x0F);
  __m512 f[MR][NP];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p) f[i][p] = _mm512_setzero_ps();
  const uint8_t* wp[NP];
#pragma GCC unroll 4
  for (int p = 0; p < NP; ++p) wp[p] = pk.w.data() + (p0 + p) * steps * kPanelBytes;
  const int8_t* xr = a.xq + m0 * a.kp;
  for (int64_t g = 0; g < a.ng; ++g) {
    __m512i s[MR][NP];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int p = 0; p < NP; ++p) s[i][p] = _mm512_setzero_si512();
    const int64_t t1 = std::min(steps, (g + 1) * gsteps);
    for (int64_t t = g * gsteps; t < t1; ++t) {
      __m512i lo[NP], hi[NP];
#pragma GCC unroll 4
      for (int p = 0; p < NP; ++p) {
        const __m512i b = _mm512_loadu_si512(wp[p] + t * kPanelBytes);
        _mm_prefetch(reinterpret_cast<const char*>(wp[p] + t * kPanelBytes + 1024), _MM_HINT_T0);
        lo[p] = _mm512_and_si512(b, low), hi[p] = _mm512_and_si512(_mm512_srli_epi16(b, 4), low);
      }
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const int8_t* xk = xr + i * a.kp + t * kStep;
        const __m512i xl = _mm512_set1_epi32(load4(xk)), xh = _mm512_set1_epi32(load4(xk + 4));
#pragma GCC unroll 4
        for (int p = 0; p < NP; ++p) {
          s[i][p] = _mm512_dpbusd_epi32(s[i][p], lo[p], xl);
          s[i][p] = _mm512_dpbusd_epi32(s[i][p], hi[p], xh);
        }
      }
    }
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p) {
      const int64_t o = ((p0 + p) * a.ng + g) * kPanel;
      const __m512 sc = _mm512_loadu_ps(pk.scale.data() + o), sz = _mm512_loadu_ps(pk.sz.data() + o);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        f[i][p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[i][p]), sc, f[i][p]);
        f[i][p] = _mm512_fnmadd_ps(sz, _mm512_set1_ps(a.xsum[(m0 + i) * a.ng + g]), f[i][p]);
      }
    }
  }
#pragma GCC unroll 4
  for (int p = 0; p < NP; ++p) {
    const int64_t n0 = (p0 + p) * kPanel, nv = std::min(kPanel, a.N - n0);
    const __mmask16 mk = nv == kPanel ? __mmask16(0xFFFF) : __mmask16((1u << nv) - 1);
    const __m512 b = a.bias ? _mm512_maskz_loadu_ps(mk, a.bias + n0) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      _mm512_mask_storeu_ps(a.y + (m0 + i) * a.N + n0, mk,
                            _mm512_fmadd_ps(f[i][p], _mm512_set1_ps(a.xs[m0 + i]), b));
  }
}
#pragma GCC diagnostic pop

// Rows [m0, m1) against panels [p0, p0 + NP): passes of up to MR rows.
template <int MR, int NP>
JOULE_VNNI void panel_rows(const PanelArgs& a, int64_t m0, int64_t m1, int64_t p0) {
  int64_t m = m0;
  for (; m + MR <= m1; m += MR) panel_tile<MR, NP>(a, m, p0);
  for (; m < m1; ++m) panel_tile<1, NP>(a, m, p0);
}

template <int MR, int NP>
JOULE_VNNI void panel_run(const PanelArgs& a, int64_t M, bool parallel) {
  const int64_t tiles = (a.panels + NP - 1) / NP;
#pragma omp parallel if (parallel)
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t t0 = tiles * t / nt, t1 = tiles * (t + 1) / nt;
    for (int64_t m0 = 0; m0 < M; m0 += kMBlock) {  // a block's rows of x stay in L2 while its tiles pass
      const int64_t m1 = std::min(M, m0 + kMBlock);
      for (int64_t b = t0; b < t1; ++b) {
        const int64_t p0 = b * NP;
        if (p0 + NP <= a.panels)
          panel_rows<MR, NP>(a, m0, m1, p0);
        else
          for (int64_t p = p0; p < a.panels; ++p) panel_rows<MR, 1>(a, m0, m1, p);
      }
    }
  }
}

// x's codes, zero-padded to whole 8-k steps, and each row's sum per group.
void panel_x(const float* x, int64_t M, int64_t K, int64_t kp, int64_t ng, int64_t group, int8_t* xq, float* xs,
             float* xsum) {
  quantize_rows_s8(x, M, K, xq, xs);  // [M, K] first, then spread to [M, kp] from the last row back
  if (kp != K)
    for (int64_t m = M - 1; m >= 0; --m) {
      std::memmove(xq + m * kp, xq + m * K, size_t(K));
      std::memset(xq + m * kp + K, 0, size_t(kp - K));
    }
  for (int64_t m = 0; m < M; ++m)
    for (int64_t g = 0; g < ng; ++g) {
      int32_t sum = 0;
      for (int64_t k = g * group; k < std::min(K, (g + 1) * group); ++k) sum += xq[m * kp + k];
      xsum[m * ng + g] = float(sum);
    }
}

void linear_w4a8_panel(const float* x, int64_t M, int64_t K, const W4A8Packed& pk, int64_t N, const float* bias,
                       float* y, bool parallel) {
  const int64_t kp = (K + kStep - 1) / kStep * kStep, ng = w4_groups(K, pk.group);
  thread_local Scratch q_scratch, xs_scratch, xsum_scratch;
  int8_t* xq = q_scratch.get<int8_t>(size_t(M * kp));
  float* xs = xs_scratch.get<float>(size_t(M));
  float* xsum = xsum_scratch.get<float>(size_t(M * ng));
  panel_x(x, M, K, kp, ng, pk.group, xq, xs, xsum);
  const PanelArgs a{xq, kp, xs, xsum, &pk, ng, (N + kPanel - 1) / kPanel, N, bias, y};
  if (M == 1)
    panel_run<1, 4>(a, M, parallel);
  else if (M < 4)
    panel_run<2, 4>(a, M, parallel);
  else
    panel_run<4, 2>(a, M, parallel);
}

}  // namespace

W4A8Packed pack_w4a8(const uint8_t* qweight, const float* scales, const uint8_t* zeros, int64_t N, int64_t K,
                     int64_t group) {
  w4_check_args("pack_w4a8", 0, N, K, group);
  W4A8Packed pk;
  pk.N = N, pk.K = K, pk.group = group;
  const int64_t panels = (N + kPanel - 1) / kPanel, steps = (K + kStep - 1) / kStep, ng = w4_groups(K, group);
  const int64_t rb = w4_row_bytes(K);
  pk.w.assign(size_t(panels * steps * kPanelBytes), 0);
  pk.scale.assign(size_t(panels * ng * kPanel), 0.0f);
  pk.sz.assign(size_t(panels * ng * kPanel), 0.0f);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t p = n / kPanel, c = n % kPanel;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t t = k / kStep, b = k % 4, high = (k % kStep) / 4;
      pk.w[size_t((p * steps + t) * kPanelBytes + 4 * c + b)] |= uint8_t(nibble(qweight + n * rb, k) << (4 * high));
    }
    for (int64_t g = 0; g < ng; ++g) {
      const size_t o = size_t((p * ng + g) * kPanel + c);
      pk.scale[o] = scales[n * ng + g];
      pk.sz[o] = scales[n * ng + g] * float(zeros[n * ng + g]);
    }
  }
  return pk;
}

void linear_w4a8_ref(const float* x, int64_t M, int64_t K, const uint8_t* qweight, const float* scales,
                     const uint8_t* zeros, int64_t N, int64_t group, const float* bias, float* y) {
  w4_check_args("linear_w4a8_ref", M, N, K, group);
  std::vector<int8_t> q(static_cast<size_t>(M * K));
  std::vector<float> xs(static_cast<size_t>(M));
  quantize_rows_s8_ref(x, M, K, q.data(), xs.data());
  const int64_t rb = w4_row_bytes(K), ng = w4_groups(K, group);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m) {
      float acc = 0.0f;
      for (int64_t g = 0; g < ng; ++g) {
        int64_t dot = 0, sum = 0;
        for (int64_t k = g * group; k < std::min(K, (g + 1) * group); ++k) {
          dot += int64_t{nibble(qweight + n * rb, k)} * q[m * K + k];
          sum += q[m * K + k];
        }
        acc += scales[n * ng + g] * float(dot - int64_t{zeros[n * ng + g]} * sum);
      }
      y[m * N + n] = xs[m] * acc + (bias ? bias[n] : 0.0f);
    }
}

void linear_w4a8(const float* x, int64_t M, int64_t K, const uint8_t* qweight, const float* scales,
                 const uint8_t* zeros, int64_t N, int64_t group, const float* bias, float* y,
                 const W4A8Packed* packed) {
  w4_check_args("linear_w4a8", M, N, K, group);
  if (packed && (packed->N != N || packed->K != K || packed->group != group))
    throw std::invalid_argument("linear_w4a8: the packed weights are of another shape or group");
  if (M == 0 || N == 0) return;
  const isa::W4A8Impl impl = isa::w4a8_impl(group, packed != nullptr);
  if (K == 0 || impl == isa::W4A8Impl::kReference)
    return linear_w4a8_ref(x, M, K, qweight, scales, zeros, N, group, bias, y);
  const bool parallel = M * N * K >= (int64_t{1} << 15) && omp_get_max_threads() > 1;
  if (impl == isa::W4A8Impl::kPanelVnni)
    linear_w4a8_panel(x, M, K, *packed, N, bias, y, parallel);
  else
    linear_w4a8_vnni(x, M, K, qweight, scales, zeros, N, group, bias, y, parallel);
}

}  // namespace joule::kernels
