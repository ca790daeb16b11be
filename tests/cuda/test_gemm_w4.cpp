// W4A16: fragment emulation on the host (all group sizes, odd K), then the GPU kernel against a GEMM on the
// dequantized weights rounded to the math dtype (needs SM >= 80).
#include "tests/cuda/cuda_test_util.h"

namespace joule::cuda::test {
namespace {

struct W4 {
  std::vector<uint8_t> qweight, zeros;
  std::vector<float> scales;
};

// Random W4 tensors in the kernels/formats/formats.h layout (pad nibble of odd K is 0).
W4 random_w4(int64_t N, int64_t K, int64_t group, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t rb = (K + 1) / 2, ng = (K + group - 1) / group;
  W4 w;
  w.qweight.assign(size_t(N * rb), 0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) w.qweight[size_t(n * rb + k / 2)] |= uint8_t((rng() & 15) << (4 * (k & 1)));
  w.zeros.resize(size_t(N * ng));
  for (auto& z : w.zeros) z = uint8_t(rng() & 15);
  w.scales = random_floats(size_t(N * ng), seed + 1, 0.001f, 0.05f);
  return w;
}

const int64_t kGroups[] = {2, 4, 8, 16, 32, 64, 128};

TEST(W4Host, EmulatedFragmentsMatchDequantizedGemm) {
  for (DType dt : {DType::kF16, DType::kBF16})
    for (int64_t group : kGroups)
      for (int64_t K : {1, 7, 64, 101, 256})
        for (int64_t M : {1, 9}) {
          const int64_t N = 19;
          auto w = random_w4(N, K, group, uint32_t(K + group));
          auto x = to_bits(dt, random_floats(size_t(M * K), uint32_t(M + K)));
          std::vector<float> wd(size_t(N * K)), y(size_t(M * N)), want(y.size()), abs_sum(y.size());
          ref::dequantize_w4_rounded(dt, w.qweight.data(), w.scales.data(), w.zeros.data(), N, K, group, wd.data());
          ASSERT_TRUE(ref::emulate_gemm_w4(dt, x.data(), w.qweight.data(), w.scales.data(), w.zeros.data(), M, N, K,
                                           group, y.data()));
          ref::gemm(from_bits(dt, x).data(), wd.data(), nullptr, M, N, K, want.data(), abs_sum.data());
          EXPECT_LE(worst_error(y, want, abs_sum, 0, 1e-6), 1.0)
              << dtype_name(dt) << " G=" << group << " M=" << M << " K=" << K;
        }
}

TEST(W4Host, InvalidShapesReturnErrorsBeforeTheDevice) {
  uint16_t x[64] = {};
  uint8_t q[64] = {};
  float s[64] = {};
  auto run = [&](int64_t M, int64_t N, int64_t K, int64_t G) {
    return launch_gemm_w4(DType::kF16, x, q, s, q, nullptr, x, M, N, K, G, nullptr);
  };
  EXPECT_EQ(run(1, 1, 16, 3), Status::kInvalidShape);   // group not a power of two
  EXPECT_EQ(run(1, 1, 16, 1), Status::kInvalidShape);   // group < 2
  EXPECT_EQ(run(1, 1, 0, 32), Status::kInvalidShape);   // K = 0
  EXPECT_EQ(run(1, -2, 16, 32), Status::kInvalidShape);
  EXPECT_EQ(launch_gemm_w4(DType::kF32, x, q, s, q, nullptr, x, 1, 1, 16, 32, nullptr), Status::kInvalidShape);
  EXPECT_EQ(launch_gemm_w4(DType::kF16, x, nullptr, s, q, nullptr, x, 1, 1, 16, 32, nullptr), Status::kInvalidShape);
  EXPECT_EQ(run(3, 0, 16, 32), Status::kOk);
}

// ---- on the GPU -----------------------------------------------------------------------------------------------

void check_gpu_w4(DType dt, int64_t M, int64_t N, int64_t K, int64_t group, bool with_bias) {
  SCOPED_TRACE(testing::Message() << dtype_name(dt) << " M=" << M << " N=" << N << " K=" << K << " G=" << group);
  auto w = random_w4(N, K, group, uint32_t(N + K + group));
  auto x = to_bits(dt, random_floats(size_t(M * K), uint32_t(M * 3 + K)));
  auto bias = random_floats(size_t(N), 9);
  std::vector<float> wd(size_t(N * K)), want(size_t(M * N)), abs_sum(want.size());
  ref::dequantize_w4_rounded(dt, w.qweight.data(), w.scales.data(), w.zeros.data(), N, K, group, wd.data());
  ref::gemm(from_bits(dt, x).data(), wd.data(), with_bias ? bias.data() : nullptr, M, N, K, want.data(),
            abs_sum.data());

  DeviceBuffer<uint16_t> dx(x), dy(size_t(M * N));
  DeviceBuffer<uint8_t> dq(w.qweight), dz(w.zeros);
  DeviceBuffer<float> ds(w.scales), db(bias);
  ASSERT_EQ(launch_gemm_w4(dt, dx.get(), dq.get(), ds.get(), dz.get(), with_bias ? db.get() : nullptr, dy.get(), M, N,
                           K, group, nullptr),
            Status::kOk);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_LE(worst_error(from_bits(dt, dy.to_host()), want, abs_sum, unit_roundoff(dt), 1e-4), 1.0);
}

TEST(W4Gpu, MatchesGemmOnDequantizedWeights) {
  JOULE_SKIP_WITHOUT_SM80();
  for (DType dt : {DType::kF16, DType::kBF16})
    for (int64_t M : test_ms()) {
      check_gpu_w4(dt, M, 64, 512, 128, M % 2 == 0);  // K multiple of 64: vector loads
      check_gpu_w4(dt, M, 37, 101, 32, true);         // odd K, short last group, N off the tile
    }
}

TEST(W4Gpu, AllGroupSizes) {
  JOULE_SKIP_WITHOUT_SM80();
  for (int64_t group : kGroups)
    for (int64_t M : {1, 17, 64}) {
      check_gpu_w4(DType::kF16, M, 48, 256, group, false);
      check_gpu_w4(DType::kBF16, M, 21, 200, group, true);
    }
}

}  // namespace
}  // namespace joule::cuda::test
