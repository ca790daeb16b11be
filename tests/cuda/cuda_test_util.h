// Helpers of the CUDA kernel tests: GPU gating, device buffers, seeded random data, tolerances.
#pragma once
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "cuda/device.h"
#include "cuda/kernels.h"
#include "cuda/reference.h"

namespace joule::cuda::test {

// True when device 0 exists and has SM >= 80; otherwise `why` says what is missing.
inline bool gpu_ready(std::string* why) {
  int sm = 0;
  const Status s = device_sm(0, &sm);
  if (s != Status::kOk) {
    *why = status_string(s);
    return false;
  }
  if (sm < 80) {
    *why = "compute capability " + std::to_string(sm / 10) + "." + std::to_string(sm % 10) + " is below 8.0";
    return false;
  }
  return true;
}

#define JOULE_SKIP_WITHOUT_SM80()                                                         \
  do {                                                                                    \
    std::string why_;                                                                     \
    if (!::joule::cuda::test::gpu_ready(&why_))                                           \
      GTEST_SKIP() << "needs a CUDA GPU with SM >= 80 (Ampere or newer): " << why_;       \
  } while (0)

// A device copy of a host vector (or uninitialised storage), freed on scope exit.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&p_), std::max<size_t>(n, 1) * sizeof(T)), cudaSuccess);
  }
  explicit DeviceBuffer(const std::vector<T>& h) : DeviceBuffer(h.size()) {
    EXPECT_EQ(cudaMemcpy(p_, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceBuffer() { cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return p_; }
  std::vector<T> to_host() const {
    std::vector<T> h(n_);
    EXPECT_EQ(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }

 private:
  T* p_ = nullptr;
  size_t n_;
};

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// 16-bit patterns of v in dtype, and their exact float values back.
inline std::vector<uint16_t> to_bits(DType dt, const std::vector<float>& v) {
  std::vector<uint16_t> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) b[i] = ref::from_float(dt, v[i]);
  return b;
}
inline std::vector<float> from_bits(DType dt, const std::vector<uint16_t>& b) {
  std::vector<float> v(b.size());
  for (size_t i = 0; i < b.size(); ++i) v[i] = ref::to_float(dt, b[i]);
  return v;
}

inline const char* dtype_name(DType dt) { return dt == DType::kF16 ? "f16" : (dt == DType::kBF16 ? "bf16" : "f32"); }

// Relative precision of a value rounded to dt.
inline double unit_roundoff(DType dt) { return dt == DType::kF16 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8); }

// Largest |got - want| / (round * |want| + acc_tol * abs_sum + 1e-6): <= 1 passes. round: output rounding;
// acc_tol: f32 accumulation error relative to sum |x * w|.
inline double worst_error(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& abs_sum,
                          double round, double acc_tol) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double bound = round * std::fabs(want[i]) + acc_tol * abs_sum[i] + 1e-6;
    worst = std::max(worst, std::fabs(double(got[i]) - double(want[i])) / bound);
    if (!std::isfinite(got[i])) return INFINITY;
  }
  return worst;
}

// The M values of issue 6: decode sizes, tile edges and one large M.
inline const std::vector<int64_t>& test_ms() {
  static const std::vector<int64_t> ms = {1, 3, 16, 17, 64, 255, 2048};
  return ms;
}

}  // namespace joule::cuda::test
