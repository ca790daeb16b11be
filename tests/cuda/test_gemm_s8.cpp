// W8A8 on the GPU: fragment emulation (host, exact), then the s8 tensor-core GEMM (exact int32 accumulators,
// bit-identical f32 epilogue) and the per-token quantization kernel against host references (needs SM >= 80).
#include <cfloat>

#include "tests/cuda/cuda_test_util.h"

namespace joule::cuda::test {
namespace {

std::vector<int8_t> random_s8(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(-127, 127);
  std::vector<int8_t> v(n);
  for (auto& x : v) x = int8_t(d(rng));
  return v;
}

TEST(S8Host, EmulatedFragmentsAreExact) {
  for (int64_t K : {1, 7, 128, 200, 256})
    for (int64_t M : {1, 3, 17})
      for (int64_t N : {5, 16, 33}) {
        auto qx = random_s8(size_t(M * K), uint32_t(M + K)), qw = random_s8(size_t(N * K), uint32_t(N * 7 + K));
        std::vector<int32_t> got(size_t(M * N)), want(got.size());
        ASSERT_TRUE(ref::emulate_gemm_s8(qx.data(), qw.data(), M, N, K, got.data()));
        ref::gemm_s8_s32(qx.data(), qw.data(), M, N, K, want.data());
        EXPECT_EQ(got, want) << "M=" << M << " N=" << N << " K=" << K;
      }
}

TEST(S8Host, InvalidShapesReturnErrorsBeforeTheDevice) {
  int8_t q[64] = {};
  float s[64] = {}, y[64];
  int32_t acc[64];
  EXPECT_EQ(launch_gemm_s8s8(q, s, q, s, nullptr, DType::kF16, y, 1, 1, 0, nullptr), Status::kInvalidShape);
  EXPECT_EQ(launch_gemm_s8s8(q, s, q, s, nullptr, DType::kF16, y, 1, 1, kS8MaxK + 1, nullptr), Status::kInvalidShape);
  EXPECT_EQ(launch_gemm_s8s8(q, nullptr, q, s, nullptr, DType::kF32, y, 1, 1, 16, nullptr), Status::kInvalidShape);
  EXPECT_EQ(launch_gemm_s8s8_s32(q, q, acc, 2, -1, 16, nullptr), Status::kInvalidShape);
  EXPECT_EQ(launch_gemm_s8s8_s32(q, q, nullptr, 2, 2, 16, nullptr), Status::kInvalidShape);
  EXPECT_EQ(launch_quantize_rows_s8(DType::kF32, nullptr, nullptr, nullptr, q, s, 1, 4, nullptr), Status::kInvalidShape);
  EXPECT_EQ(launch_gemm_s8s8_s32(q, q, acc, 0, 2, 16, nullptr), Status::kOk);
}

// ---- on the GPU -----------------------------------------------------------------------------------------------

float epilogue(int32_t acc, float xs, float ws, const float* bias, int64_t n) {
  const float s = xs * ws, a = float(acc);
  return bias ? std::fma(a, s, bias[n]) : a * s;
}

void check_gpu_s8(int64_t M, int64_t N, int64_t K) {
  SCOPED_TRACE(testing::Message() << "M=" << M << " N=" << N << " K=" << K);
  auto qx = random_s8(size_t(M * K), uint32_t(M * 5 + K)), qw = random_s8(size_t(N * K), uint32_t(N + 3 * K));
  auto xs = random_floats(size_t(M), 11, 1e-3f, 1e-1f), ws = random_floats(size_t(N), 12, 1e-3f, 1e-1f);
  auto bias = random_floats(size_t(N), 13);
  std::vector<int32_t> want(size_t(M * N));
  ref::gemm_s8_s32(qx.data(), qw.data(), M, N, K, want.data());

  DeviceBuffer<int8_t> dx(qx), dw(qw);
  DeviceBuffer<float> dxs(xs), dws(ws), db(bias), dyf(size_t(M * N));
  DeviceBuffer<int32_t> dacc(size_t(M * N));
  DeviceBuffer<uint16_t> dyh(size_t(M * N));
  ASSERT_EQ(launch_gemm_s8s8_s32(dx.get(), dw.get(), dacc.get(), M, N, K, nullptr), Status::kOk);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ASSERT_EQ(dacc.to_host(), want) << "integer accumulation is exact";

  for (bool with_bias : {false, true}) {
    const float* b = with_bias ? bias.data() : nullptr;
    ASSERT_EQ(launch_gemm_s8s8(dx.get(), dxs.get(), dw.get(), dws.get(), with_bias ? db.get() : nullptr, DType::kF32,
                               dyf.get(), M, N, K, nullptr),
              Status::kOk);
    auto yf = dyf.to_host();
    for (int64_t i = 0; i < M * N; ++i)
      ASSERT_EQ(yf[size_t(i)], epilogue(want[size_t(i)], xs[size_t(i / N)], ws[size_t(i % N)], b, i % N))
          << "f32 epilogue is bit-identical, i=" << i;
    for (DType dt : {DType::kF16, DType::kBF16}) {
      ASSERT_EQ(launch_gemm_s8s8(dx.get(), dxs.get(), dw.get(), dws.get(), with_bias ? db.get() : nullptr, dt,
                                 dyh.get(), M, N, K, nullptr),
                Status::kOk);
      auto yh = dyh.to_host();
      for (int64_t i = 0; i < M * N; ++i)
        ASSERT_EQ(yh[size_t(i)], ref::from_float(dt, yf[size_t(i)])) << dtype_name(dt) << " i=" << i;
    }
  }
}

TEST(S8Gpu, ExactAccumulatorsAndEpilogue) {
  JOULE_SKIP_WITHOUT_SM80();
  for (int64_t M : test_ms()) {
    check_gpu_s8(M, 64, 256);  // K multiple of the 128-wide block: vector loads
    check_gpu_s8(M, 33, 200);  // N and K off the tiles: guarded loads, masked stores
  }
  check_gpu_s8(5, 7, 1);
}

// Host model of the quantization kernel (same formulas as kernels::quantize_rows_s8, plus smoothing and a
// static scale).
void quantize_host(const std::vector<float>& x, const float* smooth, const float* static_scale, int64_t M, int64_t K,
                   std::vector<int8_t>* q, std::vector<float>* s) {
  q->resize(size_t(M * K));
  s->resize(size_t(M));
  auto one = [](float v) { return int8_t(int(std::min(std::max(std::round(v), -127.0f), 127.0f))); };
  for (int64_t m = 0; m < M; ++m) {
    auto v = [&](int64_t k) { return smooth ? x[size_t(m * K + k)] * smooth[k] : x[size_t(m * K + k)]; };
    if (static_scale) {
      const float inv = 1.0f / *static_scale;
      for (int64_t k = 0; k < K; ++k) (*q)[size_t(m * K + k)] = one(v(k) * inv);
      (*s)[size_t(m)] = *static_scale;
      continue;
    }
    float amax = 0;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(v(k)));
    const bool ok = amax >= 127.0f / FLT_MAX;
    const float inv = ok ? 127.0f / amax : 0.0f;
    for (int64_t k = 0; k < K; ++k) (*q)[size_t(m * K + k)] = one(v(k) * inv);
    (*s)[size_t(m)] = ok ? amax / 127.0f : 1.0f;
  }
}

TEST(S8Gpu, QuantizeRowsMatchesHost) {
  JOULE_SKIP_WITHOUT_SM80();
  const int64_t M = 19, K = 1000;
  auto x = random_floats(size_t(M * K), 21, -3.0f, 3.0f);
  std::fill(x.begin(), x.begin() + K, 0.0f);  // an all-zero row gets scale 1
  auto smooth = random_floats(size_t(K), 22, 0.5f, 2.0f);
  const float stat = 0.02f;
  DeviceBuffer<float> dx(x), dsm(smooth), dstat(std::vector<float>{stat}), ds{size_t(M)};
  DeviceBuffer<int8_t> dq(size_t(M * K));
  for (int variant = 0; variant < 3; ++variant) {
    const float* sm = variant >= 1 ? smooth.data() : nullptr;
    const float* st = variant == 2 ? &stat : nullptr;
    std::vector<int8_t> q;
    std::vector<float> s;
    quantize_host(x, sm, st, M, K, &q, &s);
    ASSERT_EQ(launch_quantize_rows_s8(DType::kF32, dx.get(), sm ? dsm.get() : nullptr, st ? dstat.get() : nullptr,
                                      dq.get(), ds.get(), M, K, nullptr),
              Status::kOk);
    EXPECT_EQ(dq.to_host(), q) << "variant " << variant;
    EXPECT_EQ(ds.to_host(), s) << "variant " << variant;
  }
  // 16-bit inputs quantize their exact float values.
  for (DType dt : {DType::kF16, DType::kBF16}) {
    auto xb = to_bits(dt, x);
    std::vector<int8_t> q;
    std::vector<float> s;
    quantize_host(from_bits(dt, xb), nullptr, nullptr, M, K, &q, &s);
    DeviceBuffer<uint16_t> dxb(xb);
    ASSERT_EQ(launch_quantize_rows_s8(dt, dxb.get(), nullptr, nullptr, dq.get(), ds.get(), M, K, nullptr), Status::kOk);
    EXPECT_EQ(dq.to_host(), q) << dtype_name(dt);
    EXPECT_EQ(ds.to_host(), s) << dtype_name(dt);
  }
}

}  // namespace
}  // namespace joule::cuda::test
