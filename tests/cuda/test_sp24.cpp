// 2:4 sparse GEMM: compressor round trip and fragment emulation on the host (run everywhere), then the mma.sp
// kernel against a dense GEMM on the decompressed weights (needs SM >= 80), also fed the CPU float format.
#include <algorithm>

#include "kernels/formats/sp24_codec.h"
#include "tests/cuda/cuda_test_util.h"

namespace joule::cuda::test {
namespace {

// W [N, K] in dt bits, 2:4 along K: each chunk keeps 0, 1 or 2 (mostly 2) non-zeros at random positions.
std::vector<uint16_t> random_sparse(DType dt, int64_t N, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> val(0.05f, 1.0f);
  std::vector<uint16_t> w(size_t(N * K), 0);
  for (int64_t c = 0; c < N * K / 4; ++c) {
    int pos[4] = {0, 1, 2, 3};
    std::shuffle(pos, pos + 4, rng);
    const int keep = std::min<int>(2, int(rng() % 5));  // 0, 1, or (3 times in 5) 2
    for (int j = 0; j < keep; ++j) w[size_t(4 * c + pos[j])] = ref::from_float(dt, (rng() & 1 ? -1 : 1) * val(rng));
  }
  return w;
}

TEST(Sp24Host, CompressDecompressRoundTrip) {
  for (DType dt : {DType::kF16, DType::kBF16}) {
    const int64_t N = 37, K = 80;
    auto w = random_sparse(dt, N, K, 1);
    std::vector<uint16_t> values(size_t(N * K / 2)), meta(size_t(N * K / 16)), back(w.size());
    ASSERT_EQ(compress_sp24_ref(w.data(), N, K, values.data(), meta.data()), Status::kOk);
    for (uint16_t m : meta)
      for (int c = 0; c < 4; ++c) {
        const int code = (m >> (4 * c)) & 15;
        EXPECT_LT(code & 3, code >> 2) << "idx0 < idx1 in every chunk (ordered metadata)";
      }
    ASSERT_EQ(decompress_sp24_ref(values.data(), meta.data(), N, K, back.data()), Status::kOk);
    EXPECT_EQ(back, w) << dtype_name(dt);
  }
}

TEST(Sp24Host, KnownChunkCodes) {
  // Chunks: {a,0,b,0} -> (0,2); {0,0,0,c} -> (0,3) with a zero at 0; {0,0,0,0} -> (0,1); {0,d,e,0} -> (1,2).
  const uint16_t a = 0x3c00, b = 0x4000, c = 0x4200, d = 0xbc00, e = 0x3800;  // fp16 1, 2, 3, -1, 0.5
  std::vector<uint16_t> w = {a, 0, b, 0, 0, 0, 0, c, 0, 0, 0, 0x8000 /* -0 */, 0, d, e, 0};
  std::vector<uint16_t> values(8), meta(1);
  ASSERT_EQ(compress_sp24_ref(w.data(), 1, 16, values.data(), meta.data()), Status::kOk);
  EXPECT_EQ(meta[0], uint16_t(0x8 | 0xc << 4 | 0x4 << 8 | 0x9 << 12));
  EXPECT_EQ(values, (std::vector<uint16_t>{a, b, 0, c, 0, 0, d, e}));
}

TEST(Sp24Host, RejectsDenseChunksAndBadK) {
  std::vector<uint16_t> w(16, 0x3c00), values(8), meta(1);
  EXPECT_EQ(compress_sp24_ref(w.data(), 1, 16, values.data(), meta.data()), Status::kInvalidValue);
  EXPECT_EQ(compress_sp24_ref(w.data(), 1, 12, values.data(), meta.data()), Status::kInvalidShape);
  EXPECT_EQ(launch_compress_sp24(w.data(), 1, 12, values.data(), meta.data(), nullptr, nullptr),
            Status::kInvalidShape);
}

// The kernel's fragment assembly (cuda/fragments.h) fed through the PTX mma.sp register semantics equals a plain
// GEMM on the decompressed weights: checks the chunk permutation and the metadata words without a GPU.
TEST(Sp24Host, EmulatedFragmentsMatchDenseGemm) {
  for (DType dt : {DType::kF16, DType::kBF16})
    for (int64_t K : {16, 48, 64, 80, 192})
      for (int64_t M : {1, 3, 17})
        for (int64_t N : {16, 37}) {
          auto w = random_sparse(dt, N, K, uint32_t(K * 131 + N));
          auto x = to_bits(dt, random_floats(size_t(M * K), uint32_t(M + K)));
          std::vector<uint16_t> values(size_t(N * K / 2)), meta(size_t(N * K / 16));
          ASSERT_EQ(compress_sp24_ref(w.data(), N, K, values.data(), meta.data()), Status::kOk);
          std::vector<float> y(size_t(M * N)), want(y.size()), abs_sum(y.size());
          ASSERT_TRUE(ref::emulate_gemm_sp24(dt, x.data(), values.data(), meta.data(), M, N, K, y.data()));
          ref::gemm(from_bits(dt, x).data(), from_bits(dt, w).data(), nullptr, M, N, K, want.data(), abs_sum.data());
          EXPECT_LE(worst_error(y, want, abs_sum, 0, 1e-6), 1.0)
              << dtype_name(dt) << " M=" << M << " N=" << N << " K=" << K;
        }
}

TEST(Sp24Host, InvalidShapesReturnErrorsBeforeTheDevice) {
  uint16_t buf[64] = {};
  float y[64];
  auto run = [&](DType dt, int64_t M, int64_t N, int64_t K, const void* x = nullptr) {
    return launch_gemm_sp24(dt, x ? x : buf, buf, buf, nullptr, y, M, N, K, nullptr);
  };
  EXPECT_EQ(run(DType::kF16, 1, 1, 8), Status::kInvalidShape);    // K % 16
  EXPECT_EQ(run(DType::kF16, 1, 1, 0), Status::kInvalidShape);    // K = 0
  EXPECT_EQ(run(DType::kF16, -1, 1, 16), Status::kInvalidShape);  // negative M
  EXPECT_EQ(run(DType::kF32, 1, 1, 16), Status::kInvalidShape);   // f32 is not a tensor-core input here
  EXPECT_EQ(launch_gemm_sp24(DType::kF16, nullptr, buf, buf, nullptr, y, 1, 1, 16, nullptr), Status::kInvalidShape);
  EXPECT_EQ(run(DType::kBF16, 0, 5, 16), Status::kOk);  // empty: nothing to do, no device needed
}

// The CPU storage of a packed model (kernels/cpu/sp24.h: float values, the same metadata) as joule::linear_sp24's CUDA
// implementation feeds it to the kernel: values rounded to dt, metadata as it is. W is exact in dt, so the rounded
// values and the metadata must equal what the GPU-side compressor writes for W's 16-bit patterns.
struct CpuPacked {
  std::vector<uint16_t> w_bits, values_bits, meta;
};

CpuPacked pack_on_cpu(DType dt, int64_t N, int64_t K, uint32_t seed) {
  CpuPacked p{random_sparse(dt, N, K, seed), {}, std::vector<uint16_t>(size_t(N * K / 16))};
  const std::vector<float> w = from_bits(dt, p.w_bits);
  std::vector<float> values(size_t(N * K / 2));
  EXPECT_EQ(kernels::sp24_compress_rows(w.data(), N, K, values.data(), p.meta.data(), [](float v) { return v != 0; }),
            0);
  p.values_bits = to_bits(dt, values);
  return p;
}

TEST(Sp24Host, CpuFormatIsTheGpuFormat) {
  for (DType dt : {DType::kF16, DType::kBF16}) {
    const int64_t N = 37, K = 80, M = 17;
    CpuPacked p = pack_on_cpu(dt, N, K, 3);
    std::vector<uint16_t> values(size_t(N * K / 2)), meta(size_t(N * K / 16));
    ASSERT_EQ(compress_sp24_ref(p.w_bits.data(), N, K, values.data(), meta.data()), Status::kOk);
    EXPECT_EQ(p.values_bits, values) << dtype_name(dt);
    EXPECT_EQ(p.meta, meta) << dtype_name(dt);
    auto x = to_bits(dt, random_floats(size_t(M * K), 4));
    std::vector<float> y(size_t(M * N)), want(y.size()), abs_sum(y.size());
    ASSERT_TRUE(ref::emulate_gemm_sp24(dt, x.data(), p.values_bits.data(), p.meta.data(), M, N, K, y.data()));
    ref::gemm(from_bits(dt, x).data(), from_bits(dt, p.w_bits).data(), nullptr, M, N, K, want.data(), abs_sum.data());
    EXPECT_LE(worst_error(y, want, abs_sum, 0, 1e-6), 1.0) << dtype_name(dt);
  }
}

// ---- on the GPU -----------------------------------------------------------------------------------------------

void check_gpu_sp24(DType dt, int64_t M, int64_t N, int64_t K, bool with_bias) {
  SCOPED_TRACE(testing::Message() << dtype_name(dt) << " M=" << M << " N=" << N << " K=" << K << " bias=" << with_bias);
  auto w = random_sparse(dt, N, K, uint32_t(7 * N + K));
  auto x = to_bits(dt, random_floats(size_t(M * K), uint32_t(M * 3 + K)));
  auto bias = random_floats(size_t(N), 5);
  std::vector<uint16_t> values(size_t(N * K / 2)), meta(size_t(N * K / 16));
  ASSERT_EQ(compress_sp24_ref(w.data(), N, K, values.data(), meta.data()), Status::kOk);

  DeviceBuffer<uint16_t> dw(w), dx(x), dv(values.size()), dm(meta.size()), dy(size_t(M * N));
  DeviceBuffer<float> db(bias);
  DeviceBuffer<int> dviol(std::vector<int>{0});
  ASSERT_EQ(launch_compress_sp24(dw.get(), N, K, dv.get(), dm.get(), dviol.get(), nullptr), Status::kOk);
  EXPECT_EQ(dv.to_host(), values) << "device compressor == host compressor";
  EXPECT_EQ(dm.to_host(), meta);
  EXPECT_EQ(dviol.to_host()[0], 0);

  ASSERT_EQ(launch_gemm_sp24(dt, dx.get(), dv.get(), dm.get(), with_bias ? db.get() : nullptr, dy.get(), M, N, K,
                             nullptr),
            Status::kOk);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> want(size_t(M * N)), abs_sum(want.size());
  ref::gemm(from_bits(dt, x).data(), from_bits(dt, w).data(), with_bias ? bias.data() : nullptr, M, N, K, want.data(),
            abs_sum.data());
  EXPECT_LE(worst_error(from_bits(dt, dy.to_host()), want, abs_sum, unit_roundoff(dt), 1e-4), 1.0);
}

TEST(Sp24Gpu, MatchesDenseGemmOnDecompressedWeights) {
  JOULE_SKIP_WITHOUT_SM80();
  for (DType dt : {DType::kF16, DType::kBF16})
    for (int64_t M : test_ms()) {
      check_gpu_sp24(dt, M, 96, 256, M % 2 == 1);  // K multiple of the 64-wide block: vector loads
      check_gpu_sp24(dt, M, 37, 80, true);          // K and N off the tiles: guarded loads, masked stores
    }
}

TEST(Sp24Gpu, RunsTheCpuPackedFormat) {
  JOULE_SKIP_WITHOUT_SM80();
  for (DType dt : {DType::kF16, DType::kBF16})
    for (int64_t M : {1, 17, 255}) {
      const int64_t N = 96, K = 400;
      CpuPacked p = pack_on_cpu(dt, N, K, uint32_t(M));
      auto x = to_bits(dt, random_floats(size_t(M * K), uint32_t(M + 1)));
      DeviceBuffer<uint16_t> dx(x), dv(p.values_bits), dm(p.meta), dy(size_t(M * N));
      ASSERT_EQ(launch_gemm_sp24(dt, dx.get(), dv.get(), dm.get(), nullptr, dy.get(), M, N, K, nullptr), Status::kOk);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      std::vector<float> want(size_t(M * N)), abs_sum(want.size());
      ref::gemm(from_bits(dt, x).data(), from_bits(dt, p.w_bits).data(), nullptr, M, N, K, want.data(), abs_sum.data());
      EXPECT_LE(worst_error(from_bits(dt, dy.to_host()), want, abs_sum, unit_roundoff(dt), 1e-4), 1.0)
          << dtype_name(dt) << " M=" << M;
    }
}

TEST(Sp24Gpu, DeviceCompressorCountsViolations) {
  JOULE_SKIP_WITHOUT_SM80();
  std::vector<uint16_t> w(32, 0x3c00);  // two dense 16-wide rows: every chunk has 4 non-zeros
  DeviceBuffer<uint16_t> dw(w), dv(16), dm(2);
  DeviceBuffer<int> dviol(std::vector<int>{0});
  ASSERT_EQ(launch_compress_sp24(dw.get(), 2, 16, dv.get(), dm.get(), dviol.get(), nullptr), Status::kOk);
  EXPECT_EQ(dviol.to_host()[0], 8);
}

}  // namespace
}  // namespace joule::cuda::test
