// W8A8 kernels: fast paths against their scalar references, bit for bit (quantization, gemm outputs and the
// int32 accumulators through detail::gemm_s8s8_s32), over odd shapes, zero rows, with and without bias, on 1 and
// 2 OpenMP threads; worst-case sums against int64; quantization error bounds; the whole op against a float
// matmul within the error the two quantizations allow.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/formats/formats.h"
#include "kernels/cpu/w8a8.h"

namespace k = joule::kernels;

namespace {

const int64_t kMs[] = {1, 2, 3, 5, 17, 64};
const int64_t kKs[] = {1, 3, 31, 32, 33, 384, 1000};
const int64_t kNs[] = {1, 3, 7, 17, 64, 129};
const int kThreads[] = {1, 2};

// Restores the OpenMP thread count a test changed.
struct ThreadsGuard {
  int saved = omp_get_max_threads();
  ~ThreadsGuard() { omp_set_num_threads(saved); }
};

// The GEMM kernels to check: AVX2 always, AVX-512 VNNI as well where the CPU has it (it serves M >= 16).
// Restores the default (VNNI when available) at scope exit.
struct GemmPaths {
  std::vector<bool> vnni{false};
  GemmPaths() {
    k::detail::use_vnni(true);
    if (k::detail::vnni_available()) vnni.push_back(true);
  }
  ~GemmPaths() { k::detail::use_vnni(true); }
};

std::vector<int8_t> random_q(std::mt19937& rng, int64_t rows, int64_t cols, int64_t zero_row = -1) {
  std::uniform_int_distribution<int> d(-k::kW8Max, k::kW8Max);
  std::vector<int8_t> q(size_t(rows * cols));
  for (auto& v : q) v = static_cast<int8_t>(d(rng));
  if (zero_row >= 0 && zero_row < rows) std::fill(q.begin() + zero_row * cols, q.begin() + (zero_row + 1) * cols, 0);
  return q;
}

std::vector<float> random_f(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Rows of normal values with magnitudes spread over several decades; row zero_row all zero.
std::vector<float> random_x(std::mt19937& rng, int64_t rows, int64_t cols, int64_t zero_row = -1) {
  std::normal_distribution<float> d;
  std::uniform_real_distribution<float> e(-3.0f, 3.0f);
  std::vector<float> x(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    float mag = std::pow(10.0f, e(rng));
    for (int64_t c = 0; c < cols; ++c) x[r * cols + c] = r == zero_row ? 0.0f : mag * d(rng);
  }
  return x;
}

std::vector<int64_t> s64_ref(const int8_t* qx, int64_t M, int64_t K, const int8_t* qw, int64_t N) {
  std::vector<int64_t> acc(size_t(M * N), 0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t kk = 0; kk < K; ++kk) acc[m * N + n] += int64_t(qx[m * K + kk]) * int64_t(qw[n * K + kk]);
  return acc;
}

// Bit-exact float comparison (also tells -0 from +0), reporting the first mismatch.
::testing::AssertionResult same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes " << a.size() << " vs " << b.size();
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0)
      return ::testing::AssertionFailure() << "index " << i << ": " << a[i] << " vs " << b[i];
  return ::testing::AssertionSuccess();
}

}  // namespace

TEST(W8A8, QuantizeMatchesReferenceBitExact) {
  ThreadsGuard guard;
  std::mt19937 rng(1);
  for (int t : kThreads) {
    omp_set_num_threads(t);
    for (int64_t rows : kMs)
      for (int64_t cols : kKs) {
        auto x = random_x(rng, rows, cols, rows > 1 ? rows / 2 : -1);
        std::vector<int8_t> q(x.size()), qr(x.size());
        std::vector<float> s(static_cast<size_t>(rows)), sr(static_cast<size_t>(rows));
        k::quantize_rows_s8(x.data(), rows, cols, q.data(), s.data());
        k::quantize_rows_s8_ref(x.data(), rows, cols, qr.data(), sr.data());
        ASSERT_EQ(q, qr) << "rows=" << rows << " cols=" << cols << " threads=" << t;
        ASSERT_TRUE(same_bits(s, sr)) << "rows=" << rows << " cols=" << cols << " threads=" << t;
      }
  }
  // Large enough for the threaded path.
  omp_set_num_threads(2);
  auto x = random_x(rng, 300, 1000);
  std::vector<int8_t> q(x.size()), qr(x.size());
  std::vector<float> s(300), sr(300);
  k::quantize_rows_s8(x.data(), 300, 1000, q.data(), s.data());
  k::quantize_rows_s8_ref(x.data(), 300, 1000, qr.data(), sr.data());
  EXPECT_EQ(q, qr);
  EXPECT_TRUE(same_bits(s, sr));
}

TEST(W8A8, QuantizeRoundsHalfAwayFromZero) {
  // max|x| = 127 makes the multiplier exactly 1, so the .5 cases are exact ties. 40 values: vector body + tail.
  std::vector<float> x = {127.0f, 0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 126.5f, -126.5f, 0.49999997f, -0.49999997f,
                          3.4999998f, 0.0f, -0.0f, 64.5f, -64.5f};
  std::vector<int> want = {127, 1, -1, 2, -2, 3, -3, 127, -127, 0, 0, 3, 0, 0, 65, -65};
  while (x.size() < 40) {
    x.push_back(x[x.size() % 16]);
    want.push_back(want[want.size() % 16]);
  }
  for (auto* f : {&k::quantize_rows_s8, &k::quantize_rows_s8_ref}) {
    std::vector<int8_t> q(x.size());
    float s = 0;
    f(x.data(), 1, int64_t(x.size()), q.data(), &s, {});
    EXPECT_EQ(s, 1.0f);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(q[i], want[i]) << "x=" << x[i] << " at " << i;
  }
  // Every tie n + 0.5 (n < 127) and its 4 neighbouring floats on each side, both signs, against std::round.
  std::vector<float> v = {127.0f};
  for (int n = 0; n < 127; ++n) {
    float t = n + 0.5f, lo = t, hi = t;
    for (int i = 0; i < 4; ++i) {
      lo = std::nextafter(lo, 0.0f);
      hi = std::nextafter(hi, 200.0f);
      v.insert(v.end(), {lo, hi, -lo, -hi});
    }
    v.insert(v.end(), {t, -t});
  }
  std::vector<int8_t> q(v.size()), qr(v.size());
  float s = 0, sr = 0;
  k::quantize_rows_s8(v.data(), 1, int64_t(v.size()), q.data(), &s);
  k::quantize_rows_s8_ref(v.data(), 1, int64_t(v.size()), qr.data(), &sr);
  ASSERT_EQ(s, 1.0f);
  for (size_t i = 0; i < v.size(); ++i) {
    ASSERT_EQ(q[i], static_cast<int8_t>(std::round(v[i]))) << "x=" << v[i];
    ASSERT_EQ(qr[i], q[i]) << "x=" << v[i];
  }
}

TEST(W8A8, QuantizeTinyRowsAsZeroRows) {
  // Maxima too small for 127 / max to be finite (below ~3.7e-37: subnormals, FLT_MIN) give scale 1 and zeros, like
  // an all-zero row; a max of 1e-36 still gets its own scale. 40 columns: vector body and tail.
  const float tiny = std::numeric_limits<float>::min(), small = 1e-36f;
  std::vector<float> x(3 * 40, 0.0f);
  for (int c = 0; c < 40; ++c) {
    x[c] = float(c % 3 - 1) * tiny * float(c % 8);  // |x| <= 7 FLT_MIN
    x[40 + c] = c == 37 ? -small : 0.0f;
    x[80 + c] = c == 5 ? small : 0.0f;
  }
  for (auto* f : {&k::quantize_rows_s8, &k::quantize_rows_s8_ref}) {
    std::vector<int8_t> q(x.size(), 99);
    std::vector<float> s(3);
    f(x.data(), 3, 40, q.data(), s.data(), {});
    EXPECT_EQ(s[0], 1.0f);
    for (int c = 0; c < 40; ++c) EXPECT_EQ(q[c], 0) << c;
    EXPECT_EQ(s[1], small / 127.0f);
    EXPECT_EQ(q[40 + 37], -127);
    EXPECT_EQ(q[80 + 5], 127);
  }
}

TEST(W8A8, QuantizeRoundTripErrorBound) {
  std::mt19937 rng(2);
  const int64_t rows = 33, cols = 515;
  auto x = random_x(rng, rows, cols, 4);
  std::vector<int8_t> q(x.size());
  std::vector<float> s(rows);
  k::quantize_rows_s8(x.data(), rows, cols, q.data(), s.data());
  for (int64_t r = 0; r < rows; ++r) {
    float amax = 0;
    int qmax = 0;
    for (int64_t c = 0; c < cols; ++c) {
      amax = std::max(amax, std::fabs(x[r * cols + c]));
      qmax = std::max(qmax, std::abs(int(q[r * cols + c])));
    }
    if (r == 4) {
      EXPECT_EQ(s[r], 1.0f) << "zero row gets scale 1";
      EXPECT_EQ(qmax, 0);
      continue;
    }
    EXPECT_EQ(s[r], amax / 127.0f);
    EXPECT_EQ(qmax, 127) << "the largest |x| maps to +-127";
    // |x - s q| <= s / 2, plus the float rounding of the multiplier 127 / amax (a few ulps of 127).
    for (int64_t c = 0; c < cols; ++c) {
      double err = std::fabs(double(x[r * cols + c]) - double(s[r]) * q[r * cols + c]);
      ASSERT_LE(err, double(s[r]) * (0.5 + 1e-4)) << "row " << r << " col " << c;
    }
  }
}

TEST(W8A8, GemmMatchesReferenceBitExact) {
  ThreadsGuard guard;
  std::mt19937 rng(3);
  GemmPaths paths;
  for (bool vnni : paths.vnni) {
    k::detail::use_vnni(vnni);
    for (int t : kThreads) {
      omp_set_num_threads(t);
      for (int64_t M : kMs)
        for (int64_t K : kKs)
          for (int64_t N : kNs) {
            auto qx = random_q(rng, M, K, M > 2 ? 1 : -1);
            auto qw = random_q(rng, N, K, N > 2 ? N - 2 : -1);
            auto xs = random_f(rng, size_t(M), 1e-3f, 1.0f), ws = random_f(rng, size_t(N), 1e-3f, 1.0f);
            auto bias = random_f(rng, size_t(N), -2.0f, 2.0f);
            for (const float* b : {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data())}) {
              std::vector<float> y(size_t(M * N), NAN), yr(size_t(M * N), NAN);
              k::gemm_s8s8(qx.data(), xs.data(), M, K, qw.data(), ws.data(), N, b, y.data());
              k::gemm_s8s8_ref(qx.data(), xs.data(), M, K, qw.data(), ws.data(), N, b, yr.data());
              ASSERT_TRUE(same_bits(y, yr))
                  << "M=" << M << " K=" << K << " N=" << N << " bias=" << (b != nullptr) << " threads=" << t;
            }
            std::vector<int32_t> acc(size_t(M * N));
            k::detail::gemm_s8s8_s32(qx.data(), M, K, qw.data(), N, acc.data());
            auto want = s64_ref(qx.data(), M, K, qw.data(), N);
            for (size_t i = 0; i < acc.size(); ++i)
              ASSERT_EQ(acc[i], want[i]) << "M=" << M << " K=" << K << " N=" << N << " threads=" << t << " at " << i;
          }
    }
  }
}

TEST(W8A8, LinearMatchesReferenceBitExact) {
  // linear_w8a8 quantizes straight into the GEMM's int16 layout: same q, same scales, same outputs as the reference.
  ThreadsGuard guard;
  std::mt19937 rng(7);
  GemmPaths paths;
  for (bool vnni : paths.vnni) {
    k::detail::use_vnni(vnni);
    for (int t : kThreads) {
      omp_set_num_threads(t);
      for (int64_t M : kMs)
        for (int64_t K : kKs)
          for (int64_t N : {int64_t(1), int64_t(7), int64_t(129)}) {
            auto x = random_x(rng, M, K, M > 2 ? 2 : -1);
            auto qw = random_q(rng, N, K, N > 2 ? 1 : -1);
            auto ws = random_f(rng, size_t(N), 1e-3f, 1.0f), bias = random_f(rng, size_t(N), -2.0f, 2.0f);
            for (const float* b : {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data())}) {
              std::vector<float> y(size_t(M * N), NAN), yr(size_t(M * N), NAN);
              k::linear_w8a8(x.data(), M, K, qw.data(), ws.data(), N, b, y.data());
              k::linear_w8a8_ref(x.data(), M, K, qw.data(), ws.data(), N, b, yr.data());
              ASSERT_TRUE(same_bits(y, yr))
                  << "M=" << M << " K=" << K << " N=" << N << " bias=" << (b != nullptr) << " threads=" << t;
            }
          }
    }
  }
}

TEST(W8A8, GemmLargeShapesUseSeveralTiles) {
  // Shapes past the L2 column tile (N * K > 384 KiB) and the MiniLM/GEMV shapes, fast vs reference.
  ThreadsGuard guard;
  std::mt19937 rng(4);
  struct Shape { int64_t M, K, N; };
  GemmPaths paths;
  for (bool vnni : paths.vnni) {
    k::detail::use_vnni(vnni);
    for (int t : kThreads) {
      omp_set_num_threads(t);
      for (Shape s : {Shape{9, 1000, 1001}, Shape{1, 4096, 515}, Shape{2, 4100, 131}, Shape{128, 384, 1536},
                      Shape{130, 1536, 77}})
      {
        auto qx = random_q(rng, s.M, s.K), qw = random_q(rng, s.N, s.K, 5);
        auto xs = random_f(rng, size_t(s.M), 1e-3f, 1.0f), ws = random_f(rng, size_t(s.N), 1e-3f, 1.0f);
        auto bias = random_f(rng, size_t(s.N), -2.0f, 2.0f);
        std::vector<float> y(size_t(s.M * s.N)), yr(y.size());
        k::gemm_s8s8(qx.data(), xs.data(), s.M, s.K, qw.data(), ws.data(), s.N, bias.data(), y.data());
        k::gemm_s8s8_ref(qx.data(), xs.data(), s.M, s.K, qw.data(), ws.data(), s.N, bias.data(), yr.data());
        ASSERT_TRUE(same_bits(y, yr)) << "M=" << s.M << " K=" << s.K << " N=" << s.N << " threads=" << t;
      }
    }
  }
}

TEST(W8A8, WorstCaseSumsAreExactInt32) {
  // Every product at +-127^2: constant signs reach K * 16129 (near 2^31 at kW8A8MaxK); random signs test the
  // blocked order against an int64 reference. A saturating int16 pair sum or an int32 overflow would show.
  ThreadsGuard guard;
  std::mt19937 rng(5);
  std::bernoulli_distribution coin;
  GemmPaths paths;
  for (bool vnni : paths.vnni) {
    k::detail::use_vnni(vnni);
    for (int t : kThreads) {
      omp_set_num_threads(t);
      for (int64_t K : {int64_t(4096), int64_t(4099), k::kW8A8MaxK}) {
        const int64_t M = vnni ? 16 : K > 5000 ? 2 : 7, N = K > 5000 ? 3 : 19;
        std::vector<int8_t> qx(size_t(M * K)), qw(size_t(N * K));
        for (int64_t m = 0; m < M; ++m)
          for (int64_t kk = 0; kk < K; ++kk) qx[m * K + kk] = m == 0 ? 127 : m == 1 ? -127 : (coin(rng) ? 127 : -127);
        for (int64_t n = 0; n < N; ++n)
          for (int64_t kk = 0; kk < K; ++kk) qw[n * K + kk] = n == 0 ? 127 : n == 1 ? -127 : (coin(rng) ? 127 : -127);
        std::vector<int32_t> acc(size_t(M * N));
        k::detail::gemm_s8s8_s32(qx.data(), M, K, qw.data(), N, acc.data());
        auto want = s64_ref(qx.data(), M, K, qw.data(), N);
        EXPECT_EQ(want[0], K * 16129);
        EXPECT_EQ(want[1], -K * 16129);
        for (size_t i = 0; i < acc.size(); ++i) ASSERT_EQ(acc[i], want[i]) << "K=" << K << " at " << i;
        std::vector<float> ones(size_t(std::max(M, N)), 1.0f), y(size_t(M * N)), yr(y.size());
        k::gemm_s8s8(qx.data(), ones.data(), M, K, qw.data(), ones.data(), N, nullptr, y.data());
        k::gemm_s8s8_ref(qx.data(), ones.data(), M, K, qw.data(), ones.data(), N, nullptr, yr.data());
        EXPECT_TRUE(same_bits(y, yr)) << "K=" << K;
        for (size_t i = 0; i < y.size(); ++i) EXPECT_EQ(y[i], static_cast<float>(want[i]));
      }
    }
  }
}

TEST(W8A8, GemmPastInt32RangeFallsBackToInt64) {
  const int64_t K = k::kW8A8MaxK + 1, M = 1, N = 2;
  std::vector<int8_t> qx(size_t(K), 127), qw(size_t(N * K), 127);
  std::vector<float> ones(2, 1.0f), y(2), yr(2);
  k::gemm_s8s8(qx.data(), ones.data(), M, K, qw.data(), ones.data(), N, nullptr, y.data());
  k::gemm_s8s8_ref(qx.data(), ones.data(), M, K, qw.data(), ones.data(), N, nullptr, yr.data());
  EXPECT_TRUE(same_bits(y, yr));
  EXPECT_EQ(y[0], static_cast<float>(K * 16129));
}

TEST(W8A8, LinearMatchesFloatMatmulWithinQuantizationError) {
  // x = xs qx + ex, w = ws qw + ew with |ex| <= xs/2, |ew| <= ws/2, so per output
  //   |x.w - (xs qx).(ws qw)| <= xs/2 * sum|w| + ws/2 * sum|xs qx|   (plus float rounding, tiny next to it).
  ThreadsGuard guard;
  std::mt19937 rng(6);
  std::normal_distribution<float> d;
  for (int t : kThreads) {
    omp_set_num_threads(t);
    for (auto [M, K, N] : {std::tuple<int64_t, int64_t, int64_t>{1, 384, 64}, {5, 1000, 129}, {64, 384, 96},
                           {17, 33, 7}}) {
      auto x = random_x(rng, M, K, M > 1 ? 1 : -1);
      std::vector<float> w(size_t(N * K));
      for (auto& v : w) v = 0.05f * d(rng);
      auto bias = random_f(rng, size_t(N), -1.0f, 1.0f);
      std::vector<int8_t> qw(w.size());
      std::vector<float> ws(static_cast<size_t>(N));
      k::quantize_rows_s8(w.data(), N, K, qw.data(), ws.data());
      std::vector<int8_t> qx(x.size());
      std::vector<float> xs(static_cast<size_t>(M));
      k::quantize_rows_s8_ref(x.data(), M, K, qx.data(), xs.data());

      std::vector<float> y(size_t(M * N)), yr(y.size());
      k::linear_w8a8(x.data(), M, K, qw.data(), ws.data(), N, bias.data(), y.data());
      k::linear_w8a8_ref(x.data(), M, K, qw.data(), ws.data(), N, bias.data(), yr.data());
      ASSERT_TRUE(same_bits(y, yr)) << "M=" << M << " K=" << K << " N=" << N;

      double num = 0, den = 0;
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          double exact = bias[n], wabs = 0, xabs = 0;
          for (int64_t kk = 0; kk < K; ++kk) {
            exact += double(x[m * K + kk]) * w[n * K + kk];
            wabs += std::fabs(w[n * K + kk]);
            xabs += std::fabs(double(xs[m]) * qx[m * K + kk]);
          }
          double bound = xs[m] / 2.0 * wabs + ws[n] / 2.0 * xabs;
          double err = std::fabs(y[m * N + n] - exact);
          ASSERT_LE(err, 1.001 * bound + 1e-5 * (std::fabs(exact) + 1.0))
              << "M=" << M << " K=" << K << " N=" << N << " at " << m << "," << n;
          num += (y[m * N + n] - exact) * (y[m * N + n] - exact);
          den += (exact - bias[n]) * (exact - bias[n]);
        }
      EXPECT_LT(std::sqrt(num / den), 0.02) << "relative error, M=" << M << " K=" << K << " N=" << N;
    }
  }
}

TEST(W8A8, EmptyShapesAreNoOps) {
  std::vector<float> y(4, 7.0f);
  k::gemm_s8s8(nullptr, nullptr, 0, 16, nullptr, nullptr, 4, nullptr, y.data());
  k::linear_w8a8(nullptr, 2, 16, nullptr, nullptr, 0, nullptr, y.data());
  EXPECT_EQ(y, std::vector<float>(4, 7.0f));
}

TEST(W8A8, StaticScaleAndSmoothingMatchReferenceBitExact) {
  // The op's calibrated options: a static per-tensor scale (rows beyond it clamp) and SmoothQuant's per-channel
  // factor, alone and together, fast path against the reference on odd shapes and both thread counts.
  ThreadsGuard guard;
  std::mt19937 rng(11);
  GemmPaths paths;
  for (bool vnni : paths.vnni) {
    k::detail::use_vnni(vnni);
    for (int t : kThreads) {
      omp_set_num_threads(t);
      for (int64_t M : {int64_t(1), int64_t(5), int64_t(17), int64_t(40)})
        for (int64_t K : {int64_t(3), int64_t(33), int64_t(384)})
          for (int mode = 1; mode < 4; ++mode) {
            const int64_t N = 7;
            auto x = random_x(rng, M, K, M > 2 ? 2 : -1);
            auto qw = random_q(rng, N, K);
            auto ws = random_f(rng, size_t(N), 1e-3f, 1.0f), smooth = random_f(rng, size_t(K), 0.1f, 10.0f);
            k::ActQuant aq;
            if (mode & 1) aq.smooth_inv = smooth.data();
            if (mode & 2) aq.static_scale = 0.05f;  // most rows of random_x overflow it and clamp
            std::vector<int8_t> q(size_t(M * K)), qr(size_t(M * K));
            std::vector<float> s(static_cast<size_t>(M)), sr(static_cast<size_t>(M));
            std::vector<float> y(size_t(M * N)), yr(size_t(M * N));
            k::quantize_rows_s8(x.data(), M, K, q.data(), s.data(), aq);
            k::quantize_rows_s8_ref(x.data(), M, K, qr.data(), sr.data(), aq);
            ASSERT_EQ(q, qr) << "M=" << M << " K=" << K << " mode=" << mode;
            ASSERT_TRUE(same_bits(s, sr));
            k::linear_w8a8(x.data(), M, K, qw.data(), ws.data(), N, nullptr, y.data(), aq);
            k::linear_w8a8_ref(x.data(), M, K, qw.data(), ws.data(), N, nullptr, yr.data(), aq);
            ASSERT_TRUE(same_bits(y, yr)) << "M=" << M << " K=" << K << " mode=" << mode << " threads=" << t;
          }
    }
  }
}

TEST(W8A8, StaticScaleQuantizesAndClampsByHand) {
  // Scale 0.5: x / 0.5 rounded half away from zero (63.4 -> 126.8 -> 127), clamped to +-127; smoothing by 2
  // doubles x first.
  std::vector<float> x = {0.25f, -0.25f, 1.0f, 63.4f, 63.5f, -70.0f, 1e30f, -1e30f, 0.0f};
  std::vector<int> want = {1, -1, 2, 127, 127, -127, 127, -127, 0};
  std::vector<int> want_smooth = {1, -1, 4, 127, 127, -127, 127, -127, 0};
  while (x.size() < 41) {  // vector body and tail
    x.push_back(x[x.size() % 9]);
    want.push_back(want[want.size() % 9]);
    want_smooth.push_back(want_smooth[want_smooth.size() % 9]);
  }
  std::vector<float> two(x.size(), 2.0f);
  for (auto* f : {&k::quantize_rows_s8, &k::quantize_rows_s8_ref}) {
    std::vector<int8_t> q(x.size());
    float s = 0;
    f(x.data(), 1, int64_t(x.size()), q.data(), &s, k::ActQuant{nullptr, 0.5f});
    EXPECT_EQ(s, 0.5f);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(q[i], want[i]) << "x=" << x[i] << " at " << i;
    f(x.data(), 1, int64_t(x.size()), q.data(), &s, k::ActQuant{two.data(), 0.5f});
    for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(q[i], want_smooth[i]) << "smoothed x=" << x[i] << " at " << i;
  }
}

TEST(W8A8, PrepackedWeightsMatchReferenceBitExact) {
  // pack_w8a8 once, then every GEMM entry point with the packed weights: the VNNI path then serves every M (one
  // row up), reading the packed tiles in place of its per-call packing; outputs and int32 sums stay the reference's.
  k::detail::use_vnni(true);
  if (!k::detail::vnni_available()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU: pack_w8a8 returns nothing to test";
  ThreadsGuard guard;
  std::mt19937 rng(11);
  struct Shape { int64_t M, K, N; };
  std::vector<Shape> shapes;
  for (int64_t M : kMs)
    for (int64_t K : kKs)
      for (int64_t N : kNs) shapes.push_back({M, K, N});
  for (Shape s : {Shape{1, 4096, 515}, Shape{8, 1536, 384}, Shape{128, 384, 1536}, Shape{130, 1536, 77}})
    shapes.push_back(s);
  for (int t : kThreads) {
    omp_set_num_threads(t);
    for (Shape s : shapes) {
      auto qw = random_q(rng, s.N, s.K, s.N > 2 ? 1 : -1);
      const k::W8A8Packed packed = k::pack_w8a8(qw.data(), s.N, s.K);
      ASSERT_EQ(packed.N, s.N);
      ASSERT_EQ(packed.colsum.size(), size_t((s.N + 15) / 16 * 16));
      auto x = random_x(rng, s.M, s.K, s.M > 2 ? 2 : -1);
      auto qx = random_q(rng, s.M, s.K);
      auto xs = random_f(rng, size_t(s.M), 1e-3f, 1.0f), ws = random_f(rng, size_t(s.N), 1e-3f, 1.0f);
      auto bias = random_f(rng, size_t(s.N), -2.0f, 2.0f);
      const std::string at = "M=" + std::to_string(s.M) + " K=" + std::to_string(s.K) + " N=" + std::to_string(s.N) +
                             " threads=" + std::to_string(t);
      std::vector<float> y(size_t(s.M * s.N), NAN), yr(y.size(), NAN);
      k::linear_w8a8(x.data(), s.M, s.K, qw.data(), ws.data(), s.N, bias.data(), y.data(), {}, &packed);
      k::linear_w8a8_ref(x.data(), s.M, s.K, qw.data(), ws.data(), s.N, bias.data(), yr.data());
      ASSERT_TRUE(same_bits(y, yr)) << "linear " << at;
      k::gemm_s8s8(qx.data(), xs.data(), s.M, s.K, qw.data(), ws.data(), s.N, nullptr, y.data(), &packed);
      k::gemm_s8s8_ref(qx.data(), xs.data(), s.M, s.K, qw.data(), ws.data(), s.N, nullptr, yr.data());
      ASSERT_TRUE(same_bits(y, yr)) << "gemm " << at;
      std::vector<int32_t> acc(size_t(s.M * s.N));
      k::detail::gemm_s8s8_s32(qx.data(), s.M, s.K, qw.data(), s.N, acc.data(), &packed);
      auto want = s64_ref(qx.data(), s.M, s.K, qw.data(), s.N);
      for (size_t i = 0; i < acc.size(); ++i) ASSERT_EQ(acc[i], want[i]) << "s32 " << at << " at " << i;
    }
  }
  // Packed weights of another shape are not used (the call packs per tile as before), and with VNNI switched off
  // they are ignored: the AVX2 path runs, still exact.
  auto qw = random_q(rng, 64, 384);
  const k::W8A8Packed packed = k::pack_w8a8(qw.data(), 64, 384);
  auto qx = random_q(rng, 32, 384);
  auto xs = random_f(rng, 32, 1e-3f, 1.0f), ws = random_f(rng, 64, 1e-3f, 1.0f);
  std::vector<float> y(32 * 64), yr(y.size());
  k::gemm_s8s8_ref(qx.data(), xs.data(), 32, 384, qw.data(), ws.data(), 64, nullptr, yr.data());
  k::detail::use_vnni(false);
  k::gemm_s8s8(qx.data(), xs.data(), 32, 384, qw.data(), ws.data(), 64, nullptr, y.data(), &packed);
  k::detail::use_vnni(true);
  EXPECT_TRUE(same_bits(y, yr));
  auto qw2 = random_q(rng, 48, 384);
  k::gemm_s8s8_ref(qx.data(), xs.data(), 32, 384, qw2.data(), ws.data(), 48, nullptr, yr.data());
  y.assign(32 * 48, NAN);
  yr.resize(y.size());
  k::gemm_s8s8(qx.data(), xs.data(), 32, 384, qw2.data(), ws.data(), 48, nullptr, y.data(), &packed);
  EXPECT_TRUE(same_bits(y, yr));
}

TEST(W8A8, NonFiniteActivationsAreDefinedAndEveryPathAgrees) {
  // NaN and +-Inf in x (issue 14: the reference's float->int conversion was undefined for them and the fast path
  // disagreed). By hand: a NaN is skipped by the row max and quantizes to 0; a row holding an Inf gets scale Inf
  // and all-zero q; with a static scale, +-Inf clamps to +-127 and NaN gives 0.
  ThreadsGuard guard;
  const int64_t K = 40;  // 32 SIMD lanes + a scalar tail of 8: both code paths see each special value
  std::vector<float> x(size_t(4 * K), 0.5f);
  for (int64_t c : {3, 35}) x[c] = NAN;  // row 0: NaNs among 0.5s, in the SIMD part and the tail
  x[0] = 2.0f;
  x[K + 5] = INFINITY;                    // row 1: +Inf
  x[2 * K + 37] = -INFINITY;              // row 2: -Inf in the tail
  x[3 * K + 1] = NAN;                     // row 3: NaN and -Inf
  x[3 * K + 2] = -INFINITY;
  for (const float static_scale : {0.0f, 0.01f}) {
    k::ActQuant aq;
    aq.static_scale = static_scale;
    std::vector<int8_t> q(x.size()), qr(x.size());
    std::vector<float> sc(4), scr(4);
    k::quantize_rows_s8(x.data(), 4, K, q.data(), sc.data(), aq);
    k::quantize_rows_s8_ref(x.data(), 4, K, qr.data(), scr.data(), aq);
    EXPECT_EQ(q, qr) << "static_scale=" << static_scale;
    EXPECT_TRUE(same_bits(sc, scr)) << "static_scale=" << static_scale;
    EXPECT_EQ(q[3], 0);
    EXPECT_EQ(q[35], 0);
    if (static_scale == 0) {
      EXPECT_FLOAT_EQ(sc[0], 2.0f / 127);  // the NaNs did not make the scale NaN
      EXPECT_EQ(q[0], 127);
      EXPECT_TRUE(std::isinf(sc[1]) && std::isinf(sc[2]) && std::isinf(sc[3]));
      for (int64_t i = K; i < 4 * K; ++i) ASSERT_EQ(q[i], 0) << i;
    } else {
      EXPECT_EQ(q[K + 5], 127);
      EXPECT_EQ(q[2 * K + 37], -127);
      EXPECT_EQ(q[3 * K + 1], 0);
      EXPECT_EQ(q[3 * K + 2], -127);
    }
    // The whole op, every GEMM path: NaN where the reference has NaN, the same bits elsewhere.
    std::mt19937 rng(5);
    for (int64_t M : {int64_t(4), int64_t(20)}) {
      std::vector<float> xm(size_t(M * K));
      for (int64_t i = 0; i < M * K; ++i) xm[i] = x[i % (4 * K)];
      auto qw = random_q(rng, 17, K);
      auto ws = random_f(rng, 17, 1e-3f, 1.0f);
      const k::W8A8Packed packed = k::pack_w8a8(qw.data(), 17, K);
      std::vector<float> yr(size_t(M * 17));
      k::linear_w8a8_ref(xm.data(), M, K, qw.data(), ws.data(), 17, nullptr, yr.data(), aq);
      GemmPaths paths;
      for (bool vnni : paths.vnni)
        for (const k::W8A8Packed* p : {static_cast<const k::W8A8Packed*>(nullptr), &packed}) {
          k::detail::use_vnni(vnni);
          std::vector<float> y(yr.size());
          k::linear_w8a8(xm.data(), M, K, qw.data(), ws.data(), 17, nullptr, y.data(), aq, p);
          for (size_t i = 0; i < y.size(); ++i)
            ASSERT_TRUE(std::isnan(yr[i]) ? std::isnan(y[i]) : std::memcmp(&y[i], &yr[i], 4) == 0)
                << "M=" << M << " vnni=" << vnni << " packed=" << (p != nullptr) << " at " << i << ": " << y[i]
                << " vs " << yr[i];
        }
    }
  }
}
