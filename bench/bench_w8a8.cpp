// W8A8 linear (kernels/cpu/w8a8.h) against LibTorch fp32 at::linear, same binary, same threads (2), with bias.
// Shapes: MiniLM's feed-forward linears at 128 tokens (m=128: k=384 -> n=1536 and k=1536 -> n=384) and a
// 4096 x 4096 GEMV (m=1). cold=1 rotates through enough weight copies (>= 128 MiB per side, at least 2) that
// the 32 MiB L3 cannot hold them, so every call streams its weights from DRAM; cold=0 reuses one copy.
// Counters: FLOP/s = 2 m n k per call; W_bytes/s = weight bytes per call (int8 or fp32) per second.
// Run: joule_bench_w8a8 --benchmark_repetitions=5 --benchmark_report_aggregates_only=true (add
// --benchmark_enable_random_interleaving=true on a shared machine: fp32 and W8A8 repetitions then alternate).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <vector>

#include "kernels/cpu/w8a8.h"

namespace k = joule::kernels;

namespace {

// 2 threads (the project machine's cores); JOULE_BENCH_THREADS=n overrides, for single-core comparisons.
int threads() {
  static const int n = std::getenv("JOULE_BENCH_THREADS") ? std::atoi(std::getenv("JOULE_BENCH_THREADS")) : 2;
  return n;
}
constexpr int64_t kColdBytes = int64_t(128) << 20;

int64_t copies_for(int64_t bytes, bool cold) {
  return cold ? std::max<int64_t>(2, (kColdBytes + bytes - 1) / bytes) : 1;
}

void set_counters(benchmark::State& state, int64_t M, int64_t K, int64_t N, int64_t weight_bytes) {
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["W_bytes/s"] = benchmark::Counter(double(weight_bytes), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_fp32_linear(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  at::set_num_threads(threads());
  at::manual_seed(0);
  std::vector<at::Tensor> w;
  for (int64_t i = copies_for(N * K * 4, state.range(3)); i > 0; --i) w.push_back(at::randn({N, K}) * 0.05);
  at::Tensor x = at::randn({M, K}), b = at::randn({N});
  size_t i = 0;
  for (auto _ : state) {
    at::Tensor y = at::linear(x, w[i++ % w.size()], b);
    benchmark::DoNotOptimize(y.data_ptr<float>());
  }
  set_counters(state, M, K, N, N * K * 4);
}

// kWholeOp: linear_w8a8 (quantize x per token, then the GEMM), or gemm_s8s8 alone on x quantized beforehand.
template <bool kWholeOp>
void BM_w8a8(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  at::set_num_threads(threads());
  at::manual_seed(0);
  const int64_t copies = copies_for(N * K, state.range(3));
  std::vector<at::Tensor> qw, ws;
  for (int64_t i = 0; i < copies; ++i) {
    at::Tensor w = at::randn({N, K}) * 0.05;
    qw.push_back(at::empty({N, K}, at::kChar));
    ws.push_back(at::empty({N}));
    k::quantize_rows_s8(w.data_ptr<float>(), N, K, qw.back().data_ptr<int8_t>(), ws.back().data_ptr<float>());
  }
  at::Tensor x = at::randn({M, K}), b = at::randn({N}), y = at::empty({M, N});
  at::Tensor qx = at::empty({M, K}, at::kChar), xs = at::empty({M});
  k::quantize_rows_s8(x.data_ptr<float>(), M, K, qx.data_ptr<int8_t>(), xs.data_ptr<float>());
  size_t i = 0;
  for (auto _ : state) {
    const size_t c = i++ % qw.size();
    if (kWholeOp)
      k::linear_w8a8(x.data_ptr<float>(), M, K, qw[c].data_ptr<int8_t>(), ws[c].data_ptr<float>(), N,
                     b.data_ptr<float>(), y.data_ptr<float>());
    else
      k::gemm_s8s8(qx.data_ptr<int8_t>(), xs.data_ptr<float>(), M, K, qw[c].data_ptr<int8_t>(),
                   ws[c].data_ptr<float>(), N, b.data_ptr<float>(), y.data_ptr<float>());
    benchmark::ClobberMemory();
  }
  set_counters(state, M, K, N, N * K);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "k", "n", "cold"});
  for (int cold : {0, 1}) {
    b->Args({128, 384, 1536, cold});
    b->Args({128, 1536, 384, cold});
  }
  b->Args({1, 4096, 4096, 1});
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_fp32_linear)->Apply(shapes);
BENCHMARK(BM_w8a8<true>)->Name("BM_w8a8_linear")->Apply(shapes);
BENCHMARK(BM_w8a8<false>)->Name("BM_w8a8_gemm")->Apply(shapes);

BENCHMARK_MAIN();
