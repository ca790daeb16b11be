// CUDA GEMM benchmark (issue 6): Joule's 2:4 sparse, W8A8 and W4A16 kernels against cuBLAS fp16 dense
// (cublasGemmEx) and cuBLASLt int8 (s8 x s8 -> s32), in the same run, on LLM shapes; when built with cuSPARSELt
// (JOULE_HAVE_CUSPARSELT, found optionally by CMake) also against cuSPARSELt's 2:4 fp16 GEMM on the same weights.
//
// Every timing: 3 warm-up launches, then `reps` launches each timed with CUDA events after the L2 is flushed
// (a 256 MiB memset, not timed), median reported. y = x * W^T with x [M, K], W [N, K]. The INT8 baseline
// returns raw int32 (no scaling epilogue), so it slightly favours cuBLASLt. Writes a markdown table (GPU name,
// driver, CUDA version) to the path given by --out (default bench/results/cuda_<gpu>.md) and a CSV beside it.
// cuSPARSELt: sparse A = W (2:4 along K, pruned with PRUNE_SPMMA_STRIP, which keeps Joule's 2:4 weights as they
// are, then compressed), dense B = x, fp16 in/out, CUSPARSE_COMPUTE_32F, M padded to a multiple of 16 (as
// PyTorch's semi-structured tensors do); cusparseLtMatmulSearch runs once per shape before timing. A failing
// cuSPARSELt call prints a line and its cell reads "error"; the other columns are still measured.
//
//   joule_cuda_bench [--out FILE] [--full] [--reps N]
//     default shapes (K, N): (4096, 4096), (4096, 14336), (14336, 4096), (8192, 8192); --full: all 9 pairs of
//     {4096, 8192, 14336}. M in {1, 4, 16, 64, 256, 2048, 8192}.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#ifdef JOULE_HAVE_CUSPARSELT
#include <cusparseLt.h>
#endif

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cuda/kernels.h"

namespace {

using joule::cuda::DType;
using joule::cuda::Status;

#define CHECK_CUDA(x)                                                                            \
  do {                                                                                           \
    cudaError_t e_ = (x);                                                                        \
    if (e_ != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "joule_cuda_bench: %s failed: %s\n", #x, cudaGetErrorString(e_));     \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)
#define CHECK_OK(x)                                                                              \
  do {                                                                                           \
    auto s_ = (x);                                                                               \
    if (s_ != Status::kOk) {                                                                     \
      std::fprintf(stderr, "joule_cuda_bench: %s failed: %s\n", #x, joule::cuda::status_string(s_)); \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)
#define CHECK_BLAS(x)                                                                            \
  do {                                                                                           \
    int s_ = int(x);                                                                             \
    if (s_ != 0) {                                                                               \
      std::fprintf(stderr, "joule_cuda_bench: %s failed: status %d\n", #x, s_);                  \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)

void* dalloc(size_t bytes) {
  void* p = nullptr;
  CHECK_CUDA(cudaMalloc(&p, std::max<size_t>(bytes, 16)));
  return p;
}

// Fills a device buffer with random bytes (any bit pattern is fine for int8/W4; 16-bit floats get small values).
void fill_random_bytes(void* p, size_t bytes, uint32_t seed) {
  std::vector<uint8_t> h(bytes);
  std::mt19937 rng(seed);
  for (auto& b : h) b = uint8_t(rng());
  CHECK_CUDA(cudaMemcpy(p, h.data(), bytes, cudaMemcpyHostToDevice));
}
void fill_f16(void* p, size_t n, uint32_t seed, bool sparse24) {
  std::vector<uint16_t> h(n);
  std::mt19937 rng(seed);
  for (size_t i = 0; i < n; ++i) {
    const bool zero = sparse24 && (i % 4 == 1 || i % 4 == 3);
    h[i] = zero ? 0 : uint16_t(0x2c00 + (rng() & 0x3ff) + ((rng() & 1) << 15));  // |v| in [1/16, 1/8)
  }
  CHECK_CUDA(cudaMemcpy(p, h.data(), n * 2, cudaMemcpyHostToDevice));
}
void fill_f32(float* p, size_t n, float v) {
  std::vector<float> h(n, v);
  CHECK_CUDA(cudaMemcpy(p, h.data(), n * 4, cudaMemcpyHostToDevice));
}

struct Timer {
  void* flush = dalloc(256u << 20);
  cudaEvent_t a, b;
  int reps;
  explicit Timer(int r) : reps(r) {
    CHECK_CUDA(cudaEventCreate(&a));
    CHECK_CUDA(cudaEventCreate(&b));
  }
  // Median milliseconds of fn() over reps, after 3 warm-up calls; the L2 is flushed before each timed call.
  double median_ms(const std::function<void()>& fn) {
    for (int i = 0; i < 3; ++i) fn();
    CHECK_CUDA(cudaDeviceSynchronize());
    std::vector<float> t;
    for (int i = 0; i < reps; ++i) {
      CHECK_CUDA(cudaMemsetAsync(flush, i, 256u << 20));
      CHECK_CUDA(cudaEventRecord(a));
      fn();
      CHECK_CUDA(cudaEventRecord(b));
      CHECK_CUDA(cudaEventSynchronize(b));
      float ms = 0;
      CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
      t.push_back(ms);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }
};

// cuBLASLt s8 x s8 -> s32, "TN": C[N, M] (column-major) = W^T-view x X, i.e. y[M, N] row-major.
struct LtInt8 {
  cublasLtHandle_t lt;
  cublasLtMatmulDesc_t op;
  cublasLtMatrixLayout_t la, lb, lc;
  cublasLtMatmulAlgo_t algo;
  void* ws;
  size_t ws_bytes = 32u << 20;
  bool ok = false;
  LtInt8(cublasLtHandle_t h, int64_t M, int64_t N, int64_t K) : lt(h) {
    ws = dalloc(ws_bytes);
    CHECK_BLAS(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32I, CUDA_R_32I));
    cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
    CHECK_BLAS(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t)));
    CHECK_BLAS(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof(n)));
    CHECK_BLAS(cublasLtMatrixLayoutCreate(&la, CUDA_R_8I, K, N, K));
    CHECK_BLAS(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8I, K, M, K));
    CHECK_BLAS(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32I, N, M, N));
    cublasLtMatmulPreference_t pref;
    CHECK_BLAS(cublasLtMatmulPreferenceCreate(&pref));
    CHECK_BLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                                    sizeof(ws_bytes)));
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    ok = cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 1, &res, &found) == CUBLAS_STATUS_SUCCESS &&
         found > 0;
    if (ok) algo = res.algo;
    cublasLtMatmulPreferenceDestroy(pref);
  }
  void run(const int8_t* w, const int8_t* x, int32_t* y) {
    const int32_t alpha = 1, beta = 0;
    CHECK_BLAS(cublasLtMatmul(lt, op, &alpha, w, la, x, lb, &beta, y, lc, y, lc, &algo, ws, ws_bytes, 0));
  }
  ~LtInt8() {
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(op);
    cudaFree(ws);
  }
};

constexpr double kNotAvailable = -1.0, kError = -2.0;  // cell values for a baseline that did not run

#ifdef JOULE_HAVE_CUSPARSELT
#define CHECK_SPLT(x)                                                                                   \
  do {                                                                                                  \
    cusparseStatus_t s_ = (x);                                                                          \
    if (s_ != CUSPARSE_STATUS_SUCCESS) {                                                                \
      std::fprintf(stderr, "joule_cuda_bench: cuSPARSELt: %s failed: %s (%s)\n", #x,                    \
                   cusparseLtGetErrorName(s_), cusparseLtGetErrorString(s_));                           \
      return false;                                                                                     \
    }                                                                                                   \
  } while (0)

// cuSPARSELt 2:4 fp16 GEMM, column-major "TN" like the cuBLAS call: D[N, Mp] = op(A) x B with A = W viewed as a
// K x N column-major structured matrix (opA = T, so op(A) = W [N, K], 2:4 along K), B = x as K x Mp, D = y.
// Errors are reported by init() / run() returning false (after printing the failing call).
struct SpLt {
  const cusparseLtHandle_t* h;
  cusparseLtMatDescriptor_t a{}, b{}, c{};
  cusparseLtMatmulDescriptor_t op{};
  cusparseLtMatmulAlgSelection_t sel{};
  cusparseLtMatmulPlan_t plan{};
  bool has_a = false, has_b = false, has_c = false, has_sel = false, has_plan = false;
  void* comp = nullptr;  // compressed W
  void* ws = nullptr;
  size_t ws_bytes = 0;
  explicit SpLt(const cusparseLtHandle_t* handle) : h(handle) {}

  bool alloc(void** p, size_t bytes) {
    if (cudaMalloc(p, std::max<size_t>(bytes, 16)) != cudaSuccess) {
      std::fprintf(stderr, "joule_cuda_bench: cuSPARSELt: cudaMalloc(%zu) failed\n", bytes);
      *p = nullptr;
      return false;
    }
    return true;
  }
  // w16: dense [N, K] fp16 weights with a 2:4 pattern along K; x16 / y16: buffers of at least Mp x K / Mp x N.
  bool init(int64_t Mp, int64_t N, int64_t K, const void* w16, const void* x16, void* y16) {
    const uint32_t align = 16;
    CHECK_SPLT(cusparseLtStructuredDescriptorInit(h, &a, K, N, K, align, CUDA_R_16F, CUSPARSE_ORDER_COL,
                                                  CUSPARSELT_SPARSITY_50_PERCENT));
    has_a = true;
    CHECK_SPLT(cusparseLtDenseDescriptorInit(h, &b, K, Mp, K, align, CUDA_R_16F, CUSPARSE_ORDER_COL));
    has_b = true;
    CHECK_SPLT(cusparseLtDenseDescriptorInit(h, &c, N, Mp, N, align, CUDA_R_16F, CUSPARSE_ORDER_COL));
    has_c = true;
    CHECK_SPLT(cusparseLtMatmulDescriptorInit(h, &op, CUSPARSE_OPERATION_TRANSPOSE, CUSPARSE_OPERATION_NON_TRANSPOSE,
                                              &a, &b, &c, &c, CUSPARSE_COMPUTE_32F));
    CHECK_SPLT(cusparseLtMatmulAlgSelectionInit(h, &sel, &op, CUSPARSELT_MATMUL_ALG_DEFAULT));
    has_sel = true;
    CHECK_SPLT(cusparseLtMatmulPlanInit(h, &plan, &op, &sel));
    has_plan = true;

    void* pruned = nullptr;
    if (!alloc(&pruned, size_t(N * K * 2))) return false;
    size_t comp_bytes = 0, comp_buf_bytes = 0;
    void* comp_buf = nullptr;
    bool ok = [&] {
      CHECK_SPLT(cusparseLtSpMMAPrune(h, &op, w16, pruned, CUSPARSELT_PRUNE_SPMMA_STRIP, nullptr));
      CHECK_SPLT(cusparseLtSpMMACompressedSize(h, &plan, &comp_bytes, &comp_buf_bytes));
      if (!alloc(&comp, comp_bytes) || !alloc(&comp_buf, comp_buf_bytes)) return false;
      CHECK_SPLT(cusparseLtSpMMACompress(h, &plan, pruned, comp, comp_buf, nullptr));
      return true;
    }();
    cudaDeviceSynchronize();
    cudaFree(pruned);
    cudaFree(comp_buf);
    if (!ok) return false;

    CHECK_SPLT(cusparseLtMatmulGetWorkspace(h, &plan, &ws_bytes));
    if (!alloc(&ws, ws_bytes)) return false;
    const float alpha = 1.0f, beta = 0.0f;
    cudaStream_t stream = nullptr;
    CHECK_SPLT(cusparseLtMatmulSearch(h, &plan, &alpha, comp, x16, &beta, y16, y16, ws, &stream, 1));
    size_t need = 0;  // the chosen configuration (e.g. split-K) may need more workspace
    CHECK_SPLT(cusparseLtMatmulGetWorkspace(h, &plan, &need));
    if (need > ws_bytes) {
      cudaFree(ws);
      ws_bytes = need;
      if (!alloc(&ws, ws_bytes)) return false;
    }
    return run(x16, y16) && cudaDeviceSynchronize() == cudaSuccess;
  }
  bool run(const void* x16, void* y16) {
    const float alpha = 1.0f, beta = 0.0f;
    cudaStream_t stream = nullptr;
    CHECK_SPLT(cusparseLtMatmul(h, &plan, &alpha, comp, x16, &beta, y16, y16, ws, &stream, 1));
    return true;
  }
  ~SpLt() {
    if (has_plan) cusparseLtMatmulPlanDestroy(&plan);
    if (has_sel) cusparseLtMatmulAlgSelectionDestroy(&sel);
    if (has_c) cusparseLtMatDescriptorDestroy(&c);
    if (has_b) cusparseLtMatDescriptorDestroy(&b);
    if (has_a) cusparseLtMatDescriptorDestroy(&a);
    cudaFree(comp);
    cudaFree(ws);
  }
};
#endif

}  // namespace

int main(int argc, char** argv) {
  std::string out;
  bool full = false;
  int reps = 15;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else if (!std::strcmp(argv[i], "--full")) full = true;
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: joule_cuda_bench [--out FILE] [--full] [--reps N]\n");
      return 2;
    }
  }
  int sm = 0;
  if (Status s = joule::cuda::device_sm(0, &sm); s != Status::kOk) {
    std::fprintf(stderr, "joule_cuda_bench: no GPU to benchmark on: %s\n", joule::cuda::status_string(s));
    return 1;
  }
  if (sm < 80) {
    std::fprintf(stderr, "joule_cuda_bench: the kernels need SM >= 80, this GPU is SM %d\n", sm);
    return 1;
  }
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  std::string gpu = prop.name;
  if (out.empty()) {
    std::string tag = gpu;
    for (auto& c : tag) c = std::isalnum(static_cast<unsigned char>(c)) ? char(std::tolower(c)) : '_';
    out = "bench/results/cuda_" + tag + ".md";
  }

  std::vector<std::pair<int64_t, int64_t>> kn = {{4096, 4096}, {4096, 14336}, {14336, 4096}, {8192, 8192}};
  if (full) {
    kn.clear();
    for (int64_t k : {4096, 8192, 14336})
      for (int64_t n : {4096, 8192, 14336}) kn.push_back({k, n});
  }
  const std::vector<int64_t> ms = {1, 4, 16, 64, 256, 2048, 8192};
  const int64_t group = 128;

  cublasHandle_t blas;
  cublasLtHandle_t lt;
  CHECK_BLAS(cublasCreate(&blas));
  CHECK_BLAS(cublasLtCreate(&lt));
  Timer timer(reps);
#ifdef JOULE_HAVE_CUSPARSELT
  cusparseLtHandle_t splt;
  bool have_splt = true;
  if (cusparseStatus_t s = cusparseLtInit(&splt); s != CUSPARSE_STATUS_SUCCESS) {
    std::fprintf(stderr, "joule_cuda_bench: cuSPARSELt: cusparseLtInit failed: %s\n", cusparseLtGetErrorString(s));
    have_splt = false;
  }
  const std::string splt_note = "cuSPARSELt " + std::to_string(CUSPARSELT_VER_MAJOR) + "." +
                                std::to_string(CUSPARSELT_VER_MINOR) + "." + std::to_string(CUSPARSELT_VER_PATCH) +
                                ": fp16 2:4, fp32 compute, M padded to a multiple of 16, best of "
                                "cusparseLtMatmulSearch; x = cuSPARSELt time / Joule 2:4 time.";
#else
  const std::string splt_note = "cuSPARSELt: not available (built without it).";
#endif

  std::ofstream md(out), csv(out.substr(0, out.rfind('.')) + ".csv");
  if (!md || !csv) {
    std::fprintf(stderr, "joule_cuda_bench: cannot write '%s' (run from the repository root)\n", out.c_str());
    return 1;
  }
  md << "# CUDA GEMM benchmark\n\nGPU: " << gpu << " (SM " << sm << "), driver " << driver / 1000 << "."
     << (driver % 1000) / 10 << ", CUDA runtime " << runtime / 1000 << "." << (runtime % 1000) / 10
     << ". Median of " << reps << " runs (L2 flushed), microseconds; speed-up = cuBLAS fp16 time / kernel time.\n"
     << "W4A16 uses group 128. cuBLASLt INT8 returns raw int32 (no epilogue). " << splt_note << "\n\n"
     << "| M | K | N | cuBLAS fp16 | 2:4 fp16 | x | cuSPARSELt 2:4 | x | cuBLASLt int8 | x | Joule W8A8 | x |"
        " Joule W4A16 | x |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  csv << "gpu,m,k,n,cublas_f16_us,sp24_f16_us,cusparselt_sp24_us,cublaslt_s8_us,w8a8_us,w4a16_us\n";

  for (auto [K, N] : kn) {
    const int64_t Mmax = ms.back();
    void* x16 = dalloc(size_t(Mmax * K * 2));
    void* w16 = dalloc(size_t(N * K * 2));
    void* y16 = dalloc(size_t(Mmax * N * 4));
    void* vals = dalloc(size_t(N * K));
    auto* meta = static_cast<uint16_t*>(dalloc(size_t(N * K / 8)));
    auto* x8 = static_cast<int8_t*>(dalloc(size_t(Mmax * K)));
    auto* w8 = static_cast<int8_t*>(dalloc(size_t(N * K)));
    auto* y32 = static_cast<int32_t*>(dalloc(size_t(Mmax * N * 4)));
    auto* xs = static_cast<float*>(dalloc(size_t(Mmax * 4)));
    auto* ws = static_cast<float*>(dalloc(size_t(N * 4)));
    auto* q4 = static_cast<uint8_t*>(dalloc(size_t(N * ((K + 1) / 2))));
    const int64_t ng = (K + group - 1) / group;
    auto* sc4 = static_cast<float*>(dalloc(size_t(N * ng * 4)));
    auto* z4 = static_cast<uint8_t*>(dalloc(size_t(N * ng)));
    fill_f16(x16, size_t(Mmax * K), 1, false);
    fill_f16(w16, size_t(N * K), 2, true);  // 2:4 pattern; cuBLAS multiplies it as dense
    CHECK_OK(joule::cuda::launch_compress_sp24(static_cast<uint16_t*>(w16), N, K, static_cast<uint16_t*>(vals), meta,
                                               nullptr, nullptr));
    fill_random_bytes(x8, size_t(Mmax * K), 3);
    fill_random_bytes(w8, size_t(N * K), 4);
    fill_f32(xs, size_t(Mmax), 0.01f);
    fill_f32(ws, size_t(N), 0.01f);
    fill_random_bytes(q4, size_t(N * ((K + 1) / 2)), 5);
    fill_f32(sc4, size_t(N * ng), 0.01f);
    fill_random_bytes(z4, size_t(N * ng), 6);
    // int8 values must stay in [-127, 127]: the random bytes' -128 becomes -127 through a quantize pass below.
    CHECK_OK(joule::cuda::launch_quantize_rows_s8(DType::kF16, x16, nullptr, nullptr, x8, xs, Mmax, K, nullptr));
    CHECK_CUDA(cudaDeviceSynchronize());

    for (int64_t M : ms) {
      const float alpha = 1.0f, beta = 0.0f;
      const double t_blas = timer.median_ms([&] {
        CHECK_BLAS(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(M), int(K), &alpha, w16, CUDA_R_16F,
                                int(K), x16, CUDA_R_16F, int(K), &beta, y16, CUDA_R_16F, int(N), CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
      });
      const double t_sp = timer.median_ms([&] {
        CHECK_OK(joule::cuda::launch_gemm_sp24(DType::kF16, x16, vals, meta, nullptr, y16, M, N, K, nullptr));
      });
      double t_splt = kNotAvailable;
#ifdef JOULE_HAVE_CUSPARSELT
      if (have_splt) {
        const int64_t Mp = (M + 15) / 16 * 16;  // <= Mmax: the buffers hold it
        SpLt sp(&splt);
        t_splt = kError;
        if (sp.init(Mp, N, K, w16, x16, y16)) {
          bool failed = false;
          const double t = timer.median_ms([&] { failed = failed || !sp.run(x16, y16); });
          if (!failed) t_splt = t;
        }
        if (t_splt == kError)
          std::fprintf(stderr, "joule_cuda_bench: cuSPARSELt failed for M=%lld K=%lld N=%lld\n", (long long)M,
                       (long long)K, (long long)N);
      }
#endif
      LtInt8 lti(lt, M, N, K);
      const double t_lt = lti.ok ? timer.median_ms([&] { lti.run(w8, x8, y32); }) : kNotAvailable;
      const double t_s8 = timer.median_ms([&] {
        CHECK_OK(joule::cuda::launch_gemm_s8s8(x8, xs, w8, ws, nullptr, DType::kF16, y16, M, N, K, nullptr));
      });
      const double t_w4 = timer.median_ms([&] {
        CHECK_OK(joule::cuda::launch_gemm_w4(DType::kF16, x16, q4, sc4, z4, nullptr, y16, M, N, K, group, nullptr));
      });
      auto us = [](double ms_) {
        return ms_ == kError ? std::string("error")
               : ms_ < 0     ? std::string("n/a")
                             : std::to_string(int64_t(ms_ * 1000 + 0.5));
      };
      auto x = [&](double ms_) {
        char b[32];
        std::snprintf(b, sizeof(b), "%.2f", ms_ > 0 ? t_blas / ms_ : 0.0);
        return std::string(b);
      };
      char vs[32] = "-";  // Joule 2:4 speed-up over cuSPARSELt
      if (t_splt > 0 && t_sp > 0) std::snprintf(vs, sizeof(vs), "%.2f", t_splt / t_sp);
      md << "| " << M << " | " << K << " | " << N << " | " << us(t_blas) << " | " << us(t_sp) << " | " << x(t_sp)
         << " | " << us(t_splt) << " | " << vs << " | " << us(t_lt) << " | " << x(t_lt) << " | " << us(t_s8) << " | "
         << x(t_s8) << " | " << us(t_w4) << " | " << x(t_w4) << " |\n";
      csv << '"' << gpu << "\"," << M << ',' << K << ',' << N << ',' << t_blas * 1e3 << ',' << t_sp * 1e3 << ',';
      if (t_splt >= 0) csv << t_splt * 1e3;  // empty when not available or failed
      csv << ',' << t_lt * 1e3 << ',' << t_s8 * 1e3 << ',' << t_w4 * 1e3 << '\n';
      std::printf("M=%-5lld K=%-6lld N=%-6lld cublas %8.1f us  sp24 %8.1f  cusparselt %8s  lt-int8 %8.1f  w8a8 %8.1f"
                  "  w4a16 %8.1f\n",
                  (long long)M, (long long)K, (long long)N, t_blas * 1e3, t_sp * 1e3, us(t_splt).c_str(),
                  t_lt * 1e3, t_s8 * 1e3, t_w4 * 1e3);
      std::fflush(stdout);
    }
    for (void* p : {x16, w16, y16, vals, static_cast<void*>(meta), static_cast<void*>(x8), static_cast<void*>(w8),
                    static_cast<void*>(y32), static_cast<void*>(xs), static_cast<void*>(ws), static_cast<void*>(q4),
                    static_cast<void*>(sc4), static_cast<void*>(z4)})
      cudaFree(p);
  }
  std::printf("wrote %s\n", out.c_str());
#ifdef JOULE_HAVE_CUSPARSELT
  if (have_splt) cusparseLtDestroy(&splt);
#endif
  cublasLtDestroy(lt);
  cublasDestroy(blas);
  return 0;
}
