// SP24 on the CPU: compressor/decompressor round trip on nm_mask-pruned matrices, rejected inputs, and the fast
// linear against the scalar reference (bit-identical: same summation order) over odd shapes and thread counts.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/cpu/nm.h"
#include "kernels/cpu/sp24.h"

namespace joule::kernels {
namespace {

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// A dense [N, K] matrix pruned to 2:4 by nm_mask (what the prune pass produces), with some rows all zero and
// some chunks holding a single non-zero (the padded metadata cases).
std::vector<float> pruned_24(int64_t N, int64_t K, uint32_t seed) {
  auto w = random_floats(size_t(N * K), seed);
  std::vector<uint8_t> keep(w.size());
  nm_mask(w.data(), N, K, 2, 4, keep.data());
  for (size_t i = 0; i < w.size(); ++i)
    if (!keep[i] || i % 7 == 3) w[i] = 0.0f;
  for (int64_t n = 1; n < N; n += 5)
    for (int64_t k = 0; k < K; ++k) w[size_t(n * K + k)] = 0.0f;
  return w;
}

struct Packed {
  std::vector<float> values;
  std::vector<uint16_t> meta;
};

Packed pack(const std::vector<float>& w, int64_t N, int64_t K) {
  Packed p{std::vector<float>(size_t(N * K / 2)), std::vector<uint16_t>(size_t(N * K / 16))};
  compress_sp24(w.data(), N, K, p.values.data(), p.meta.data());
  return p;
}

TEST(Sp24Cpu, RoundTripOfNmMaskPrunedMatrix) {
  for (int64_t K : {16, 48, 400})
    for (int64_t N : {1, 7, 33}) {
      auto w = pruned_24(N, K, uint32_t(N * 31 + K));
      Packed p = pack(w, N, K);
      for (uint16_t word : p.meta)
        for (int c = 0; c < 4; ++c) EXPECT_LT(word >> (4 * c) & 3, word >> (4 * c + 2) & 3) << "idx0 < idx1";
      std::vector<float> back(w.size(), 1.0f);
      decompress_sp24(p.values.data(), p.meta.data(), N, K, back.data());
      EXPECT_EQ(back, w) << "N=" << N << " K=" << K;
    }
}

TEST(Sp24Cpu, KnownChunkCodesMatchTheGpuFormat) {
  // The same chunks as the CUDA test Sp24Host.KnownChunkCodes: {a,0,b,0} -> (0,2); {0,0,0,c} -> (0,3);
  // {0,0,0,-0} -> (0,1); {0,d,e,0} -> (1,2).
  const std::vector<float> w = {1, 0, 2, 0, 0, 0, 0, 3, 0, 0, 0, -0.0f, 0, -1, 0.5f, 0};
  Packed p = pack(w, 1, 16);
  EXPECT_EQ(p.meta[0], uint16_t(0x8 | 0xc << 4 | 0x4 << 8 | 0x9 << 12));
  EXPECT_EQ(p.values, (std::vector<float>{1, 2, 0, 3, 0, 0, -1, 0.5f}));
}

TEST(Sp24Cpu, RejectsDenseChunksBadKAndBadMetadata) {
  std::vector<float> w(32, 0.0f), values(16);
  std::vector<uint16_t> meta(2);
  w[20] = w[21] = w[23] = 1.0f;  // row 1, chunk 1: three non-zeros
  EXPECT_THROW(compress_sp24(w.data(), 2, 16, values.data(), meta.data()), std::invalid_argument);
  EXPECT_THROW(compress_sp24(w.data(), 1, 12, values.data(), meta.data()), std::invalid_argument);
  EXPECT_THROW(linear_sp24(w.data(), 1, 8, values.data(), meta.data(), 1, nullptr, w.data()), std::invalid_argument);
  meta = {0x4444, 0x4445};  // chunk 0 of row 1: idx0 = idx1 = 1
  EXPECT_THROW(decompress_sp24(values.data(), meta.data(), 2, 16, w.data()), std::invalid_argument);
}

TEST(Sp24Cpu, FastLinearMatchesReferenceOnOddShapes) {
  const int threads = omp_get_max_threads();
  for (int64_t K : {16, 48, 400})
    for (int64_t M : {1, 3, 17})
      for (int64_t N : {1, 5, 67})
        for (bool with_bias : {false, true}) {
          auto w = pruned_24(N, K, uint32_t(K + N));
          Packed p = pack(w, N, K);
          auto x = random_floats(size_t(M * K), uint32_t(M * 7 + K));
          auto bias = random_floats(size_t(N), 3);
          const float* b = with_bias ? bias.data() : nullptr;
          std::vector<float> want(size_t(M * N)), got(want.size(), NAN), dense(want.size());
          linear_sp24_ref(x.data(), M, K, p.values.data(), p.meta.data(), N, b, want.data());
          for (int t : {1, threads}) {
            omp_set_num_threads(t);
            linear_sp24(x.data(), M, K, p.values.data(), p.meta.data(), N, b, got.data());
            EXPECT_EQ(got, want) << "M=" << M << " N=" << N << " K=" << K << " threads=" << t;
          }
          omp_set_num_threads(threads);
          // And the layer it replaces: a dense matmul on the decompressed weights, up to summation order.
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n) {
              double s = b ? b[n] : 0.0, mag = b ? std::fabs(b[n]) : 0.0;
              for (int64_t k = 0; k < K; ++k) {
                s += double(x[size_t(m * K + k)]) * w[size_t(n * K + k)];
                mag += std::fabs(double(x[size_t(m * K + k)]) * w[size_t(n * K + k)]);
              }
              EXPECT_NEAR(want[size_t(m * N + n)], s, 1e-6 * mag + 1e-7);
            }
        }
}

TEST(Sp24Cpu, ZeroRowsGiveTheBiasAndEmptyShapesAreFine) {
  const int64_t N = 3, K = 32, M = 2;
  std::vector<float> w(size_t(N * K), 0.0f), x = random_floats(size_t(M * K), 9), bias = {1.5f, -2, 0};
  Packed p = pack(w, N, K);
  std::vector<float> y(size_t(M * N));
  linear_sp24(x.data(), M, K, p.values.data(), p.meta.data(), N, bias.data(), y.data());
  EXPECT_EQ(y, (std::vector<float>{1.5f, -2, 0, 1.5f, -2, 0}));
  linear_sp24(nullptr, 0, K, p.values.data(), p.meta.data(), N, nullptr, nullptr);
  linear_sp24(x.data(), M, K, nullptr, nullptr, 0, nullptr, nullptr);
}

}  // namespace
}  // namespace joule::kernels
