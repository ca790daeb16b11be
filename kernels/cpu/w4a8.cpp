// W4A8: the W4 weights (kernels/formats/formats.h) against int8 activations, the contract in kernels/cpu/w4.h.
//
// With float activations a W4 linear is FMA-bound from a few rows of x on: every weight is dequantized and then
// multiplied in float, 16 multiply-adds per instruction. Here the nibbles stay integers and meet int8 x in
// vpdpbusd (unsigned codes x signed activations, 64 multiply-adds per instruction, exact in int32) or, with AVX2
// only, vpmaddubsw (32 per instruction, exact in int16 for a few steps), so the weights are streamed once for up to
// ~16 rows of x at about the time their bytes take to arrive, and large M runs at int8 GEMM speed.
//
// Layout (pack_w4a8, made once per weight by the op's cache): per 16 output columns (a panel) and 8 k, 64 bytes
// whose low nibbles are the codes of k..k+3 and high nibbles those of k+4..k+7, 4 bytes per column; two logic ops
// and a shift give two vpdpbusd operands with the columns in the lanes, against x[m, k..k+3] and x[m, k+4..k+7]
// broadcast. x is quantized per row as quantize_rows_s8 does (kernels/cpu/w8a8.h) and zero-padded to whole 8-k
// steps. Per group the int32 lanes are converted and scaled into float lanes, and the zero point taken off with the
// exact integer sum of x over the group, sum_k scale * (q - z) * x = scale * sum q x - scale * z * sum x; the
// accumulators are the outputs, so nothing is summed across lanes.
//
// Work split: threads own fixed ranges of panel tiles; rows of x are taken 64 at a time (their codes stay in L2
// while the tiles pass), and each tile runs the whole of K for passes of up to 4 rows, its weights in L1/L2 after
// the first. The weight stream is software-prefetched 1 KiB ahead.
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


constexpr int64_t kPanel = 16;      // output columns per panel (one zmm of int32 lanes)
constexpr int64_t kStep = 8;        // k per 64 packed bytes of a panel
constexpr int64_t kPanelBytes = 64;
constexpr int64_t kMBlock = 64;     // rows of x per block
static_assert(isa::kW4A8MinGroup == kStep, "a group is whole 8-k steps");

struct PanelArgs {
  const int8_t* xq;    // [M, kp] x's codes, zero past K
  int64_t kp;          // K rounded up to 8
  const float* xs;     // [M]
  const float* xsum;   // [M, ng]
  const W4A8Packed* pk;
  int64_t ng, N;
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
struct VnniTile {
  static constexpr int64_t kUnit = kPanel;  // output columns per unit of p0
  JOULE_VNNI static void run(const PanelArgs& a, int64_t m0, int64_t p0);
};
template <int MR, int NP>
JOULE_VNNI void VnniTile<MR, NP>::run(const PanelArgs& a, int64_t m0, int64_t p0) {
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
// AVX2 (no VNNI): vpmaddubsw multiplies the unsigned codes by signed x bytes and adds pairs into int16 lanes,
// exactly: |2 * 15 * 128| per instruction, so one lane takes the two nibble halves of kFlush steps (4 * 2 * 3840 =
// 30720 < 2^15) before vpmaddwd with ones widens it into the group's int32 sums. That is one multiply instruction
// per 32 products, a quarter of the FMA work of float activations. A unit is half a panel (8 columns, the 32 bytes
// of a step that hold them); the group sums then meet the same float operations as on VNNI, so both give the
// same bits.
constexpr int64_t kHalf = kPanel / 2;
constexpr int64_t kFlush = 4;

template <int MR, int NH>
struct Avx2Tile {
  static constexpr int64_t kUnit = kHalf;
  JOULE_AVX2 static void run(const PanelArgs& a, int64_t m0, int64_t h0);
};
template <int MR, int NH>
JOULE_AVX2 void Avx2Tile<MR, NH>::run(const PanelArgs& a, int64_t m0, int64_t h0) {
  const W4A8Packed& pk = *a.pk;
  const int64_t steps = a.kp / kStep, gsteps = pk.group / kStep;
  const __m256i low = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  __m256 f[MR][NH];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int h = 0; h < NH; ++h) f[i][h] = _mm256_setzero_ps();
  const uint8_t* wp[NH];
#pragma GCC unroll 4
  for (int h = 0; h < NH; ++h) wp[h] = pk.w.data() + (h0 + h) / 2 * steps * kPanelBytes + (h0 + h) % 2 * 32;
  const int8_t* xr = a.xq + m0 * a.kp;
  for (int64_t g = 0; g < a.ng; ++g) {
    __m256i s[MR][NH];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int h = 0; h < NH; ++h) s[i][h] = _mm256_setzero_si256();
    const int64_t t1 = std::min(steps, (g + 1) * gsteps);
    for (int64_t t0 = g * gsteps; t0 < t1; t0 += kFlush) {
      __m256i acc[MR][NH];
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int h = 0; h < NH; ++h) acc[i][h] = _mm256_setzero_si256();
      for (int64_t t = t0; t < std::min(t1, t0 + kFlush); ++t) {
#pragma GCC unroll 4
        for (int h = 0; h < NH; ++h) {
          const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp[h] + t * kPanelBytes));
          _mm_prefetch(reinterpret_cast<const char*>(wp[h] + t * kPanelBytes + 1024), _MM_HINT_T0);
          const __m256i lo = _mm256_and_si256(b, low), hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), low);
#pragma GCC unroll 8
          for (int i = 0; i < MR; ++i) {
            const int8_t* xk = xr + i * a.kp + t * kStep;
            acc[i][h] = _mm256_add_epi16(acc[i][h], _mm256_maddubs_epi16(lo, _mm256_set1_epi32(load4(xk))));
            acc[i][h] = _mm256_add_epi16(acc[i][h], _mm256_maddubs_epi16(hi, _mm256_set1_epi32(load4(xk + 4))));
          }
        }
      }
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int h = 0; h < NH; ++h) s[i][h] = _mm256_add_epi32(s[i][h], _mm256_madd_epi16(acc[i][h], ones));
    }
#pragma GCC unroll 4
    for (int h = 0; h < NH; ++h) {
      const int64_t o = ((h0 + h) / 2 * a.ng + g) * kPanel + (h0 + h) % 2 * kHalf;
      const __m256 sc = _mm256_loadu_ps(pk.scale.data() + o), sz = _mm256_loadu_ps(pk.sz.data() + o);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        f[i][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[i][h]), sc, f[i][h]);
        f[i][h] = _mm256_fnmadd_ps(sz, _mm256_set1_ps(a.xsum[(m0 + i) * a.ng + g]), f[i][h]);
      }
    }
  }
#pragma GCC unroll 4
  for (int h = 0; h < NH; ++h) {
    const int64_t n0 = (h0 + h) * kHalf, nv = std::min(kHalf, a.N - n0);
    if (nv <= 0) continue;
    const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(nv)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256 b = a.bias ? _mm256_maskload_ps(a.bias + n0, mk) : _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      _mm256_maskstore_ps(a.y + (m0 + i) * a.N + n0, mk, _mm256_fmadd_ps(f[i][h], _mm256_set1_ps(a.xs[m0 + i]), b));
  }
}
#pragma GCC diagnostic pop

// Rows [m0, m1) against units [u0, u0 + NU) of Tile's columns: passes of up to MR rows.
template <template <int, int> class Tile, int MR, int NU>
void tile_rows(const PanelArgs& a, int64_t m0, int64_t m1, int64_t u0) {
  int64_t m = m0;
  for (; m + MR <= m1; m += MR) Tile<MR, NU>::run(a, m, u0);
  for (; m < m1; ++m) Tile<1, NU>::run(a, m, u0);
}

// Threads own fixed ranges of NU-unit tiles (a unit: a panel for VNNI, half of one for AVX2).
template <template <int, int> class Tile, int MR, int NU>
void tile_run(const PanelArgs& a, int64_t M, bool parallel) {
  const int64_t units = (a.N + Tile<1, 1>::kUnit - 1) / Tile<1, 1>::kUnit, tiles = (units + NU - 1) / NU;
#pragma omp parallel if (parallel)
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t t0 = tiles * t / nt, t1 = tiles * (t + 1) / nt;
    for (int64_t m0 = 0; m0 < M; m0 += kMBlock) {  // a block's rows of x stay in L2 while its tiles pass
      const int64_t m1 = std::min(M, m0 + kMBlock);
      for (int64_t b = t0; b < t1; ++b) {
        const int64_t u0 = b * NU;
        if (u0 + NU <= units)
          tile_rows<Tile, MR, NU>(a, m0, m1, u0);
        else
          for (int64_t u = u0; u < units; ++u) tile_rows<Tile, MR, 1>(a, m0, m1, u);
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
#pragma omp parallel for schedule(static) if (M * K >= (int64_t{1} << 16) && !omp_in_parallel())
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
  const PanelArgs a{xq, kp, xs, xsum, &pk, ng, N, bias, y};
  if (isa::w4a8_impl(pk.group) == isa::W4A8Impl::kPanelVnni) {
    if (M == 1)
      tile_run<VnniTile, 1, 4>(a, M, parallel);
    else if (M < 4)
      tile_run<VnniTile, 2, 4>(a, M, parallel);
    else
      tile_run<VnniTile, 4, 2>(a, M, parallel);
  } else if (M == 1) {
    tile_run<Avx2Tile, 1, 4>(a, M, parallel);
  } else if (M < 4) {
    tile_run<Avx2Tile, 2, 2>(a, M, parallel);
  } else {
    tile_run<Avx2Tile, 4, 1>(a, M, parallel);
  }
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
      pk.w[size_t((p * steps + t) * kPanelBytes + 4 * c + b)] |=
          uint8_t(formats::w4_nibble(qweight + n * rb, k) << (4 * high));
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
          dot += int64_t{formats::w4_nibble(qweight + n * rb, k)} * q[m * K + k];
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
  if (K == 0 || isa::w4a8_impl(group) == isa::W4A8Impl::kReference)
    return linear_w4a8_ref(x, M, K, qweight, scales, zeros, N, group, bias, y);
  const bool parallel = M * N * K >= (int64_t{1} << 15) && omp_get_max_threads() > 1;
  if (packed) return linear_w4a8_panel(x, M, K, *packed, N, bias, y, parallel);
  const W4A8Packed once = pack_w4a8(qweight, scales, zeros, N, K, group);  // a caller without a cache
  linear_w4a8_panel(x, M, K, once, N, bias, y, parallel);
}

}  // namespace joule::kernels
