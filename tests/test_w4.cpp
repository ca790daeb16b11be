// W4 kernels: packed layout checked by hand, RTN error bound, the reference against a dense matmul on the
// dequantized weights, and the AVX2 kernel against the reference over odd shapes, groups and thread counts.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/w4.h"
#include "kernels/cpu/w8a8.h"

using namespace joule::kernels;

namespace {

struct Packed {
  int64_t N, K, group;
  std::vector<uint8_t> qweight, zeros;
  std::vector<float> scales;
  Packed(int64_t n, int64_t k, int64_t g)
      : N(n), K(k), group(g), qweight(n * w4_row_bytes(k)), zeros(n * w4_groups(k, g)), scales(n * w4_groups(k, g)) {}
};

Packed quantize(const std::vector<float>& w, int64_t N, int64_t K, int64_t group) {
  Packed p(N, K, group);
  quantize_w4_rtn(w.data(), N, K, group, p.qweight.data(), p.scales.data(), p.zeros.data());
  return p;
}

std::vector<float> dequantize(const Packed& p) {
  std::vector<float> w(p.N * p.K);
  dequantize_w4(p.qweight.data(), p.scales.data(), p.zeros.data(), p.N, p.K, p.group, w.data());
  return w;
}

std::vector<float> randn(size_t n, std::mt19937& rng, float sigma = 1.0f) {
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// y = x * w^T (+ bias), summed in k order in float, bias added last: the reference's exact arithmetic.
std::vector<float> dense_linear(const std::vector<float>& x, const std::vector<float>& w, int64_t M, int64_t K,
                                int64_t N, const float* bias) {
  std::vector<float> y(M * N);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      float acc = 0.0f;
      for (int64_t k = 0; k < K; ++k) acc += x[m * K + k] * w[n * K + k];
      y[m * N + n] = acc + (bias ? bias[n] : 0.0f);
    }
  return y;
}

// sum_k |x * w| + |bias|: the scale the summation-order tolerance is relative to.
std::vector<double> magnitudes(const std::vector<float>& x, const std::vector<float>& w, int64_t M, int64_t K,
                               int64_t N, const float* bias) {
  std::vector<double> mag(M * N);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = bias ? std::fabs(bias[n]) : 0.0;
      for (int64_t k = 0; k < K; ++k) s += std::fabs(double(x[m * K + k]) * w[n * K + k]);
      mag[m * N + n] = s;
    }
  return mag;
}

struct ThreadCount {  // restores OpenMP's thread count after a test
  int saved = omp_get_max_threads();
  explicit ThreadCount(int t) { omp_set_num_threads(t); }
  ~ThreadCount() { omp_set_num_threads(saved); }
};

}  // namespace

TEST(W4, NibbleOrderAndLayoutByHand) {
  // Row 0: min 0, max 15 -> scale 1, zero 0, q = w. Row 1: min -2, max 13 -> scale 1, zero 2, q = w + 2.
  // K = 3 is odd, so each row has 2 bytes and the second byte's high (pad) nibble is 0.
  const std::vector<float> w = {0.0f, 1.0f, 15.0f,  //
                                -2.0f, 13.0f, 5.0f};
  const Packed p = quantize(w, 2, 3, 4);  // group 4 > K: one (short) group per row
  EXPECT_EQ(p.qweight, (std::vector<uint8_t>{0x10, 0x0F, 0xF0, 0x07}));
  EXPECT_EQ(p.scales, (std::vector<float>{1.0f, 1.0f}));
  EXPECT_EQ(p.zeros, (std::vector<uint8_t>{0, 2}));
  EXPECT_EQ(dequantize(p), w);

  // Hand-packed: byte 0x21 holds q(k=0) = 1 (low nibble) and q(k=1) = 2 (high nibble).
  Packed h(1, 4, 2);
  h.qweight = {0x21, 0xF0};
  h.scales = {0.5f, 0.25f};
  h.zeros = {1, 3};
  EXPECT_EQ(dequantize(h), (std::vector<float>{0.0f, 0.5f, -0.75f, 3.0f}));
}

TEST(W4, PackUnpackRoundTrip) {
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> q4(0, 15);
  std::uniform_real_distribution<float> su(0.01f, 2.0f);
  for (int64_t K : {1, 2, 7, 31, 64, 129})
    for (int64_t group : {2, 8, 32, 128}) {
      const int64_t N = 5, rb = w4_row_bytes(K), ng = w4_groups(K, group);
      std::vector<int> q(N * K);
      Packed p(N, K, group);
      for (auto& v : q) v = q4(rng);
      for (auto& s : p.scales) s = su(rng);
      for (auto& z : p.zeros) z = static_cast<uint8_t>(q4(rng));
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k)
          p.qweight[n * rb + k / 2] |= static_cast<uint8_t>(q[n * K + k] << (4 * (k % 2)));
      const auto w = dequantize(p);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) {
          const int64_t g = n * ng + k / group;
          ASSERT_EQ(w[n * K + k], p.scales[g] * static_cast<float>(q[n * K + k] - p.zeros[g])) << K << " " << group;
        }
      // Weights that sit on a grid with both ends present quantize back to the same codes.
      for (int64_t n = 0; n < N; ++n)
        for (int64_t g = 0; g < ng; ++g) p.zeros[n * ng + g] = 0, p.scales[n * ng + g] = 1.0f;
      std::vector<float> grid(N * K);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) grid[n * K + k] = (k % group == 0) ? 15.0f : static_cast<float>(q[n * K + k]);
      const Packed back = quantize(grid, N, K, group);
      EXPECT_EQ(back.zeros, p.zeros);
      EXPECT_EQ(back.scales, p.scales);
      EXPECT_EQ(dequantize(back), grid);
    }
}

TEST(W4, RtnErrorBoundAndParameters) {
  std::mt19937 rng(2);
  for (int64_t K : {3, 64, 127, 200, 1000})
    for (int64_t group : {2, 32, 128, 2048}) {
      const int64_t N = 9, ng = w4_groups(K, group);
      auto w = randn(N * K, rng, 0.05f);
      for (int64_t k = 0; k < K; ++k) w[2 * K + k] = std::fabs(w[2 * K + k]);   // all >= 0: zero must be 0
      for (int64_t k = 0; k < K; ++k) w[3 * K + k] = -std::fabs(w[3 * K + k]);  // all <= 0: zero must be 15
      for (int64_t k = 0; k < K; ++k) w[4 * K + k] = 0.0f;                     // all zero: scale 1, zero 0
      for (int64_t k = 0; k < K; ++k) w[5 * K + k] = 3.0f;                     // constant
      const Packed p = quantize(w, N, K, group);
      const auto d = dequantize(p);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t g = 0; g < ng; ++g) {
          const int64_t k0 = g * group, k1 = std::min(K, k0 + group);
          float lo = 0.0f, hi = 0.0f;
          for (int64_t k = k0; k < k1; ++k) lo = std::min(lo, w[n * K + k]), hi = std::max(hi, w[n * K + k]);
          const float scale = p.scales[n * ng + g];
          const int zero = p.zeros[n * ng + g];
          if (hi == lo) {  // all zero
            EXPECT_EQ(scale, 1.0f);
            EXPECT_EQ(zero, 0);
          } else {
            EXPECT_EQ(scale, (hi - lo) / 15.0f);
            EXPECT_LE(zero, 15);
            if (n == 2) {
              EXPECT_EQ(zero, 0);
            }
            if (n == 3) {
              EXPECT_EQ(zero, 15);
            }
          }
          for (int64_t k = k0; k < k1; ++k)
            ASSERT_LE(std::fabs(w[n * K + k] - d[n * K + k]), scale * 0.5f * (1.0f + 1e-5f) + 1e-30f)
                << "n=" << n << " k=" << k << " K=" << K << " group=" << group;
        }
      for (int64_t k = 0; k < K; ++k) EXPECT_EQ(d[4 * K + k], 0.0f);
      if (K % 2 == 1) {
        for (int64_t n = 0; n < N; ++n) EXPECT_EQ(p.qweight[n * w4_row_bytes(K) + K / 2] >> 4, 0) << "pad nibble";
      }
    }
}

TEST(W4, ZeroIsExactlyRepresentable) {
  std::mt19937 rng(3);
  const int64_t N = 16, K = 300, group = 64;
  auto w = randn(N * K, rng);
  std::bernoulli_distribution half(0.5);
  for (auto& v : w)
    if (half(rng)) v = 0.0f;
  for (int64_t k = 0; k < K; ++k) w[K + k] = std::fabs(w[K + k]) + 0.1f * (w[K + k] != 0.0f);  // zeros + positives
  const auto d = dequantize(quantize(w, N, K, group));
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] == 0.0f) {
      ASSERT_EQ(d[i], 0.0f) << i;
    }
  }
}

TEST(W4, InvalidGroupThrows) {
  const std::vector<float> w(8, 1.0f), x(8, 1.0f);
  std::vector<float> y(8), s(8);
  std::vector<uint8_t> q(8), z(8);
  for (int64_t group : {0, 1, 3, 6, 48, -2, -64}) {
    EXPECT_THROW(quantize_w4_rtn(w.data(), 1, 8, group, q.data(), s.data(), z.data()), std::invalid_argument) << group;
    EXPECT_THROW(dequantize_w4(q.data(), s.data(), z.data(), 1, 8, group, y.data()), std::invalid_argument) << group;
    EXPECT_THROW(linear_w4_ref(x.data(), 1, 8, q.data(), s.data(), z.data(), 1, group, nullptr, y.data()),
                 std::invalid_argument) << group;
    EXPECT_THROW(linear_w4(x.data(), 1, 8, q.data(), s.data(), z.data(), 1, group, nullptr, y.data()),
                 std::invalid_argument) << group;
  }
  EXPECT_NO_THROW(quantize_w4_rtn(w.data(), 1, 8, 2, q.data(), s.data(), z.data()));
}

TEST(W4, ReferenceMatchesDenseMatmulOnDequantizedWeights) {
  std::mt19937 rng(4);
  for (int64_t M : {1, 3, 17})
    for (int64_t K : {1, 31, 128, 129})
      for (int64_t N : {1, 7, 17})
        for (int64_t group : {2, 32, 128}) {
          const auto x = randn(M * K, rng), bias = randn(N, rng);
          const Packed p = quantize(randn(N * K, rng), N, K, group);
          const auto w = dequantize(p);
          std::vector<float> y(M * N);
          for (const float* b : {static_cast<const float*>(nullptr), bias.data()}) {
            linear_w4_ref(x.data(), M, K, p.qweight.data(), p.scales.data(), p.zeros.data(), N, group, b, y.data());
            const auto want = dense_linear(x, w, M, K, N, b);
            const auto mag = magnitudes(x, w, M, K, N, b);
            for (int64_t i = 0; i < M * N; ++i)  // same operations in the same order: equal up to float rounding
              ASSERT_NEAR(y[i], want[i], 1e-6 * mag[i]) << "M=" << M << " K=" << K << " N=" << N << " group=" << group;
          }
        }
}

// The fast kernels sum in another order (per-group partial sums, z * sum x factored out or table-dequantized
// weights, 8 or 16 lanes): they must agree with the reference to 1e-5 of sum_k |x * w|. Covers every path (the
// AVX-512 GEMV for M <= 16 and G >= 32 where the CPU has it, and with it switched off the AVX2 GEMV for M <= 4
// and G >= 16; the panel GEMM otherwise), every GEMV tile (M = 1, 2, 3, 4; 8 and passes of 8 + 1, 8 + 4 + 4),
// K odd / below 16 or 32 / not a multiple of the group, groups from 2 to > K, N not a multiple of the tiles,
// zero weight rows, bias or not, 1 and 2 threads.
TEST(W4, FastMatchesReferenceOnOddShapes) {
  std::mt19937 rng(5);
  int cases = 0;
  for (int threads : {1, 2})
  for (bool avx512 : {true, false}) {
    joule::kernels::isa::set_w4_avx512(avx512);
    ThreadCount tc(threads);
    for (int64_t M : {1, 2, 3, 4, 5, 8, 9, 16, 17, 64})
      for (int64_t K : {2, 3, 31, 64, 127, 128, 129, 1000})
        for (int64_t N : {1, 3, 7, 17, 64})
          for (int64_t group : {2, 16, 32, 64, 128, 2048}) {
            const auto x = randn(M * K, rng), bias = randn(N, rng);
            auto wf = randn(N * K, rng, 0.1f);
            if (N > 2)
              for (int64_t k = 0; k < K; ++k) wf[K + k] = 0.0f;  // an all-zero weight row
            const Packed p = quantize(wf, N, K, group);
            const auto w = dequantize(p);
            const float* b = (cases % 2) ? bias.data() : nullptr;
            std::vector<float> ref(M * N), fast(M * N, NAN);
            linear_w4_ref(x.data(), M, K, p.qweight.data(), p.scales.data(), p.zeros.data(), N, group, b, ref.data());
            linear_w4(x.data(), M, K, p.qweight.data(), p.scales.data(), p.zeros.data(), N, group, b, fast.data());
            const auto mag = magnitudes(x, w, M, K, N, b);
            for (int64_t i = 0; i < M * N; ++i)
              ASSERT_NEAR(fast[i], ref[i], 1e-5 * mag[i]) << "threads=" << threads << " avx512=" << avx512 << " M="
                                                          << M << " K=" << K << " N=" << N << " group=" << group
                                                          << " i=" << i;
            ++cases;
          }
  }
  joule::kernels::isa::set_w4_avx512(true);
  EXPECT_EQ(cases, 2 * 2 * 10 * 8 * 5 * 6);
}

// Shapes big enough to be split across threads on both paths, and (K >= 2500) long enough for the GEMV kernel
// to cut K into several L1-sized blocks; results must not depend on the thread count.
TEST(W4, FastIsThreadCountInvariantOnLargerShapes) {
  std::mt19937 rng(6);
  for (auto [M, K, N] : {std::tuple<int64_t, int64_t, int64_t>{1, 1000, 301}, {4, 777, 129}, {8, 512, 90},
                         {9, 384, 45}, {128, 300, 40}, {40, 1536, 3}, {1, 9000, 9}, {2, 5000, 20}, {3, 2500, 7},
                         {4, 2500, 33}})
    for (int64_t group : {32, 128}) {
      const auto x = randn(M * K, rng), bias = randn(N, rng);
      const auto wf = randn(N * K, rng);
      const Packed p = quantize(wf, N, K, group);
      const auto w = dequantize(p);
      std::vector<float> ref(M * N), y1(M * N), y2(M * N);
      linear_w4_ref(x.data(), M, K, p.qweight.data(), p.scales.data(), p.zeros.data(), N, group, bias.data(),
                    ref.data());
      {
        ThreadCount tc(1);
        linear_w4(x.data(), M, K, p.qweight.data(), p.scales.data(), p.zeros.data(), N, group, bias.data(), y1.data());
      }
      {
        ThreadCount tc(2);
        linear_w4(x.data(), M, K, p.qweight.data(), p.scales.data(), p.zeros.data(), N, group, bias.data(), y2.data());
      }
      const auto mag = magnitudes(x, w, M, K, N, bias.data());
      for (int64_t i = 0; i < M * N; ++i) {
        ASSERT_EQ(y1[i], y2[i]) << "M=" << M << " K=" << K << " N=" << N << " i=" << i;
        ASSERT_NEAR(y1[i], ref[i], 1e-5 * mag[i]) << "M=" << M << " K=" << K << " N=" << N << " i=" << i;
      }
    }
}

TEST(W4, EmptyShapes) {
  std::vector<float> x(64, 1.0f), y(64, -1.0f), bias = {0.5f, 1.5f, 2.5f};
  Packed p(3, 0, 32);
  // M = 0 or N = 0: nothing is written.
  linear_w4(x.data(), 0, 8, p.qweight.data(), p.scales.data(), p.zeros.data(), 3, 32, nullptr, y.data());
  linear_w4(x.data(), 2, 8, p.qweight.data(), p.scales.data(), p.zeros.data(), 0, 32, nullptr, y.data());
  EXPECT_EQ(y, std::vector<float>(64, -1.0f));
  // K = 0: y is the bias (or zero), as in the reference.
  std::vector<float> ref(6);
  linear_w4(x.data(), 2, 0, p.qweight.data(), p.scales.data(), p.zeros.data(), 3, 32, bias.data(), y.data());
  linear_w4_ref(x.data(), 2, 0, p.qweight.data(), p.scales.data(), p.zeros.data(), 3, 32, bias.data(), ref.data());
  EXPECT_EQ(std::vector<float>(y.begin(), y.begin() + 6), ref);
  EXPECT_EQ(ref, (std::vector<float>{0.5f, 1.5f, 2.5f, 0.5f, 1.5f, 2.5f}));
  linear_w4(x.data(), 2, 0, p.qweight.data(), p.scales.data(), p.zeros.data(), 3, 32, nullptr, y.data());
  EXPECT_EQ(std::vector<float>(y.begin(), y.begin() + 6), std::vector<float>(6, 0.0f));
}

// ---- W4A8: the same weights against int8 activations ----------------------------------------------------------

namespace {

// x as linear_w4a8 sees it: each row quantized by quantize_rows_s8_ref, then dequantized, in double.
std::vector<double> dequantized_rows_s8(const std::vector<float>& x, int64_t M, int64_t K) {
  std::vector<int8_t> q(M * K);
  std::vector<float> s(M);
  quantize_rows_s8_ref(x.data(), M, K, q.data(), s.data());
  std::vector<double> out(M * K);
  for (int64_t i = 0; i < M * K; ++i) out[i] = double(s[i / K]) * q[i];
  return out;
}

}  // namespace

// One row by hand. x = (1, -2, 0.5, 4): scale 4/127, codes round(x * 31.75) = (32, -64, 16, 127) (31.75 and
// -63.5 round away from zero). Weights: scale 0.5, zero 8, codes (9, 7, 8, 15), i.e. w = (0.5, -0.5, 0, 3.5).
// sum q x = 288 - 448 + 128 + 1905 = 1873, sum x = 111, 1873 - 8 * 111 = 985; y = 4/127 * 0.5 * 985 + bias.
TEST(W4A8, ReferenceByHand) {
  const std::vector<float> x = {1.0f, -2.0f, 0.5f, 4.0f};
  const std::vector<uint8_t> codes = {9, 7, 8, 15};
  std::vector<uint8_t> qw(2), zeros = {8};
  pack_w4(codes.data(), 1, 4, qw.data());
  const std::vector<float> scales = {0.5f};
  const float bias = 0.25f;
  float y = NAN;
  linear_w4a8_ref(x.data(), 1, 4, qw.data(), scales.data(), zeros.data(), 1, 4, &bias, &y);
  EXPECT_EQ(y, (4.0f / 127.0f) * (0.5f * 985.0f) + bias);
  EXPECT_NEAR(y, 15.5f + bias, 0.05f);  // the float product x . w, up to x's 8-bit rounding
  float fast = NAN;
  linear_w4a8(x.data(), 1, 4, qw.data(), scales.data(), zeros.data(), 1, 4, &bias, &fast);
  EXPECT_EQ(fast, y);  // group 4: below the kernel's 8, so the reference runs
}

// The reference is the float product of the dequantized operands: x rounded per row to int8, W dequantized.
TEST(W4A8, ReferenceMatchesDenseMatmulOnDequantizedOperands) {
  std::mt19937 rng(41);
  for (int64_t M : {1, 3, 17})
    for (int64_t K : {1, 31, 128, 129, 300})
      for (int64_t N : {1, 7})
        for (int64_t group : {2, 32, 128, 256}) {
          const auto x = randn(M * K, rng), bias = randn(N, rng);
          const Packed p = quantize(randn(N * K, rng), N, K, group);
          const auto w = dequantize(p);
          const auto xd = dequantized_rows_s8(x, M, K);
          std::vector<float> y(M * N);
          linear_w4a8_ref(x.data(), M, K, p.qweight.data(), p.scales.data(), p.zeros.data(), N, group, bias.data(),
                          y.data());
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n) {
              double want = bias[n], mag = std::fabs(bias[n]);
              for (int64_t k = 0; k < K; ++k)
                want += xd[m * K + k] * w[n * K + k], mag += std::fabs(xd[m * K + k] * w[n * K + k]);
              ASSERT_NEAR(y[m * N + n], want, 2e-6 * mag + 1e-7)
                  << "M=" << M << " K=" << K << " N=" << N << " group=" << group;
            }
        }
}

// The fast kernels against the reference, on weights packed by the caller (as the op's cache does) or by the
// kernel: every tile (VNNI 1 x 4, 2 x 4, 4 x 2 panels; AVX2 1 x 4, 2 x 2, 4 x 1 half panels; the 1-row and 1-unit
// remainders), N not a multiple of 8 or 16, M past one 64-row block, K below one 8-k step, odd, not a multiple of 8
// or of the group, groups of more than 4 steps (the AVX2 int16 flush); zero weight rows; groups they take and one
// left to the reference (4: equal exactly then); 1 and 2 threads, which must agree bit for bit. On a VNNI CPU the
// AVX2 kernel runs too and must give the VNNI kernel's bits.
TEST(W4A8, FastMatchesReferenceOnOddShapes) {
  std::mt19937 rng(42);
  std::vector<bool> vnni_modes = {true};
  if (isa::cpu_features().avx512_vnni()) vnni_modes.push_back(false);
  int cases = 0;
  for (bool pack : {false, true})
  for (int64_t M : {1, 2, 3, 4, 5, 8, 17, 65, 130})
    for (int64_t K : {1, 3, 129, 1000, 4100})
      for (int64_t N : {1, 5, 17, 70})
        for (int64_t group : {4, 8, 32, 128, 256, 2048}) {
          if (M > 17 && K > 1000) continue;  // several K blocks: M = 65 with K = 1000 has them already
          const auto x = randn(M * K, rng), bias = randn(N, rng);
          auto wf = randn(N * K, rng, 0.1f);
          if (N > 2)
            for (int64_t k = 0; k < K; ++k) wf[K + k] = 0.0f;
          const Packed p = quantize(wf, N, K, group);
          const auto w = dequantize(p);
          const auto xd = dequantized_rows_s8(x, M, K);
          const float* b = (cases % 2) ? bias.data() : nullptr;
          const W4A8Packed pk = pack_w4a8(p.qweight.data(), p.scales.data(), p.zeros.data(), N, K, group);
          const W4A8Packed* pkp = pack ? &pk : nullptr;
          std::vector<float> ref(M * N), first;
          linear_w4a8_ref(x.data(), M, K, p.qweight.data(), p.scales.data(), p.zeros.data(), N, group, b, ref.data());
          for (bool vnni : vnni_modes) {
            isa::set_w4a8_vnni(vnni);
            std::vector<float> fast1(M * N, NAN), fast2(M * N, NAN);
            {
              ThreadCount tc(1);
              linear_w4a8(x.data(), M, K, p.qweight.data(), p.scales.data(), p.zeros.data(), N, group, b, fast1.data(),
                          pkp);
            }
            {
              ThreadCount tc(2);
              linear_w4a8(x.data(), M, K, p.qweight.data(), p.scales.data(), p.zeros.data(), N, group, b, fast2.data(),
                          pkp);
            }
            const bool exact = isa::w4a8_impl(group) == isa::W4A8Impl::kReference;
            isa::set_w4a8_vnni(true);
            if (first.empty())
              first = fast1;
            else
              for (int64_t i = 0; i < M * N; ++i)
                ASSERT_EQ(fast1[i], first[i])
                    << "AVX2 vs VNNI: M=" << M << " K=" << K << " N=" << N << " group=" << group;
            for (int64_t m = 0; m < M; ++m)
              for (int64_t n = 0; n < N; ++n) {
                double mag = b ? std::fabs(b[n]) : 0.0;
                for (int64_t k = 0; k < K; ++k) mag += std::fabs(xd[m * K + k] * w[n * K + k]);
                const int64_t i = m * N + n;
                ASSERT_EQ(fast1[i], fast2[i]) << "pack=" << pack << " M=" << M << " K=" << K << " N=" << N
                                              << " group=" << group;
                if (exact)
                  ASSERT_EQ(fast1[i], ref[i]) << "pack=" << pack << " M=" << M << " K=" << K << " N=" << N
                                              << " group=" << group;
                else
                  ASSERT_NEAR(fast1[i], ref[i], 1e-5 * mag + 1e-6) << "pack=" << pack << " M=" << M << " K=" << K
                                                                   << " N=" << N << " group=" << group << " i=" << i;
              }
          }
          ++cases;
        }
  EXPECT_EQ(cases, 2 * (9 * 5 - 2) * 4 * 6);
}

// The packed layout by hand: output column c of a panel, k = 8 t + b (b < 4) in the low nibble of byte 4c + b of
// step t, k = 8 t + 4 + b in its high nibble; past N and K zero; scales and scale x zero per panel and group.
TEST(W4A8, PackedLayoutByHand) {
  const int64_t N = 17, K = 12, group = 8;
  std::vector<uint8_t> codes(N * K);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) codes[n * K + k] = uint8_t((n + 3 * k) % 16);
  std::vector<uint8_t> qw(N * w4_row_bytes(K)), zeros(N * 2);
  pack_w4(codes.data(), N, K, qw.data());
  std::vector<float> scales(N * 2);
  for (int64_t i = 0; i < N * 2; ++i) scales[i] = 0.5f + float(i), zeros[i] = uint8_t(i % 16);
  const W4A8Packed pk = pack_w4a8(qw.data(), scales.data(), zeros.data(), N, K, group);
  ASSERT_EQ(pk.w.size(), size_t(2 * 2 * 64));  // 2 panels x 2 steps (K 12 -> 16) x 64 bytes
  auto code_at = [&](int64_t n, int64_t k) -> int { return n < N && k < K ? codes[n * K + k] : 0; };
  for (int64_t p = 0; p < 2; ++p)
    for (int64_t t = 0; t < 2; ++t)
      for (int64_t c = 0; c < 16; ++c)
        for (int64_t b = 0; b < 4; ++b) {
          const uint8_t byte = pk.w[(p * 2 + t) * 64 + 4 * c + b];
          ASSERT_EQ(byte & 15, code_at(16 * p + c, 8 * t + b)) << p << " " << t << " " << c << " " << b;
          ASSERT_EQ(byte >> 4, code_at(16 * p + c, 8 * t + 4 + b)) << p << " " << t << " " << c << " " << b;
        }
  ASSERT_EQ(pk.scale.size(), size_t(2 * 2 * 16));
  EXPECT_EQ(pk.scale[(1 * 2 + 1) * 16 + 0], scales[16 * 2 + 1]);  // column 16 = panel 1, column 0; group 1
  EXPECT_EQ(pk.sz[(1 * 2 + 1) * 16 + 0], scales[16 * 2 + 1] * float(zeros[16 * 2 + 1]));
  EXPECT_EQ(pk.scale[(1 * 2 + 0) * 16 + 1], 0.0f);  // column 17: past N
}

// A NaN in x is skipped by its row's scale and quantizes to 0; a row holding an Inf gets scale Inf and NaN
// outputs: the same in both paths (the contract of quantize_rows_s8), other rows unaffected.
TEST(W4A8, NonFiniteActivationsAreDefinedAndBothPathsAgree) {
  std::mt19937 rng(43);
  const int64_t M = 3, K = 256, N = 8, group = 128;
  auto x = randn(M * K, rng);
  x[5] = NAN;            // row 0: a NaN, skipped
  x[K + 9] = INFINITY;   // row 1: an Inf, NaN out
  const Packed p = quantize(randn(N * K, rng), N, K, group);
  std::vector<float> ref(M * N), fast(M * N);
  linear_w4a8_ref(x.data(), M, K, p.qweight.data(), p.scales.data(), p.zeros.data(), N, group, nullptr, ref.data());
  linear_w4a8(x.data(), M, K, p.qweight.data(), p.scales.data(), p.zeros.data(), N, group, nullptr, fast.data());
  for (int64_t n = 0; n < N; ++n) {
    EXPECT_TRUE(std::isfinite(ref[n])) << n;
    EXPECT_NEAR(fast[n], ref[n], 1e-4f * (1.0f + std::fabs(ref[n])));
    EXPECT_TRUE(std::isnan(ref[N + n]) && std::isnan(fast[N + n])) << n;
    EXPECT_NEAR(fast[2 * N + n], ref[2 * N + n], 1e-4f * (1.0f + std::fabs(ref[2 * N + n])));
  }
}

// W4A8 against the float-activation W4 on the same weights: the difference is x's 8-bit rounding, bounded by
// sum_k |w| * scale_x / 2 per output.
TEST(W4A8, DiffersFromFloatW4OnlyByActivationRounding) {
  std::mt19937 rng(44);
  const int64_t M = 8, K = 1024, N = 64, group = 128;
  const auto x = randn(M * K, rng);
  const Packed p = quantize(randn(N * K, rng), N, K, group);
  const auto w = dequantize(p);
  std::vector<float> yf(M * N), yq(M * N);
  linear_w4(x.data(), M, K, p.qweight.data(), p.scales.data(), p.zeros.data(), N, group, nullptr, yf.data());
  linear_w4a8(x.data(), M, K, p.qweight.data(), p.scales.data(), p.zeros.data(), N, group, nullptr, yq.data());
  double worst = 0.0;
  for (int64_t m = 0; m < M; ++m) {
    float mx = 0.0f;
    for (int64_t k = 0; k < K; ++k) mx = std::max(mx, std::fabs(x[m * K + k]));
    for (int64_t n = 0; n < N; ++n) {
      double bound = 0.0;
      for (int64_t k = 0; k < K; ++k) bound += std::fabs(w[n * K + k]) * mx / 127.0 / 2.0;
      const double d = std::fabs(double(yq[m * N + n]) - yf[m * N + n]);
      ASSERT_LE(d, bound * 1.001 + 1e-4) << m << " " << n;
      worst = std::max(worst, d / bound);
    }
  }
  EXPECT_GT(worst, 0.0);  // the paths differ: x really was rounded
}
