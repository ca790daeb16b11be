// oneDNN's own matmuls (Debian's libdnnl, bench/onednn_baseline.h) at the shapes of joule_bench_w8a8
// (bench/linear_bench.h), same threads: f32 with bias, and u8s8s32 with the int32 result (the raw integer GEMM a
// W8A8 linear has to beat). They get everything in their favour: weights reordered once, outside the timed loop,
// into the layout the primitive chose (format any); the u8 input made beforehand; no epilogue beyond the output.
// A process of its own, without LibTorch: libtorch_cpu exports some of its bundled oneDNN's template symbols (the
// gemm kernels' one-time jit_init), which then stand in for libdnnl's, so that in a process holding both, oneDNN's
// gemm:jit path (the one it takes without AVX-512) returns without computing or fails to execute.
// Run: joule_bench_onednn --benchmark_repetitions=5 --benchmark_report_aggregates_only=true, beside
// joule_bench_w8a8 (bench/compare_kernels.sh runs both and prints the ratios).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <memory>
#include <random>
#include <type_traits>
#include <vector>

#include "bench/linear_bench.h"
#include "bench/onednn_baseline.h"

namespace {

using joule::bench::OneDnnMatmul;

template <bool kInt8>
void BM_onednn(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  omp_set_num_threads(joule::bench::threads());
  std::mt19937 rng(0);
  const int64_t wbytes = N * K * (kInt8 ? 1 : 4);
  std::vector<std::unique_ptr<OneDnnMatmul>> mm;
  using W = std::conditional_t<kInt8, int8_t, float>;
  std::uniform_int_distribution<int> q(-127, 127);
  std::normal_distribution<float> f(0.0f, 0.05f);
  for (int64_t i = joule::bench::copies_for(wbytes, state.range(3)); i > 0; --i) {
    std::vector<W> w(static_cast<size_t>(N * K));  // reordered into the primitive's own copy at construction
    for (auto& v : w) v = kInt8 ? W(q(rng)) : W(f(rng));
    mm.push_back(
        std::make_unique<OneDnnMatmul>(kInt8 ? OneDnnMatmul::kU8S8S32 : OneDnnMatmul::kF32, M, K, N, w.data()));
  }
  std::vector<uint8_t> xq(static_cast<size_t>(M * K));  // y: floats, or as many int32
  std::vector<float> xf(static_cast<size_t>(M * K)), b(static_cast<size_t>(N)), y(static_cast<size_t>(M * N));
  std::uniform_int_distribution<int> u(0, 255);
  std::normal_distribution<float> nd;
  for (auto& v : xq) v = uint8_t(u(rng));
  for (auto& v : xf) v = nd(rng);
  for (auto& v : b) v = nd(rng);
  size_t i = 0;
  for (auto _ : state) {
    mm[i++ % mm.size()]->run(kInt8 ? static_cast<const void*>(xq.data()) : xf.data(), b.data(), y.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(mm[0]->impl());
  joule::bench::set_counters(state, M, K, N, wbytes);
}

}  // namespace

BENCHMARK(BM_onednn<false>)->Name("BM_onednn_f32")->Apply(joule::bench::linear_shapes);
BENCHMARK(BM_onednn<true>)->Name("BM_onednn_u8s8s32")->Apply(joule::bench::linear_shapes);
BENCHMARK_MAIN();
