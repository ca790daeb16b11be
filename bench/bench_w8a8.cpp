// W8A8 linear (kernels/cpu/w8a8.h) against LibTorch fp32 at::linear, same threads (2), with bias, at the shapes
// of bench/linear_bench.h. oneDNN's matmuls at the same shapes are joule_bench_onednn (a process without
// LibTorch: bench/bench_onednn.cpp says why); bench/compare_kernels.sh runs both and prints the ratios.
// BM_w8a8_linear is the op as joule::linear_w8a8 runs it (weights packed once, activations quantized in the call);
// _repack packs the weights on every call (the kernel without the op's cache); _gemm is the GEMM alone on x
// quantized beforehand. Joule's own float linear (joule::linear_float) is measured in joule_minilm_bench.
// Run: joule_bench_w8a8 --benchmark_repetitions=5 --benchmark_report_aggregates_only=true (add
// --benchmark_enable_random_interleaving=true on a shared machine: fp32 and W8A8 repetitions then alternate).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include "compress/base/allocator.h"

#include <cstdlib>
#include <memory>
#include <vector>

#include "bench/linear_bench.h"
#include "kernels/cpu/w8a8.h"

namespace k = joule::kernels;

namespace {

using joule::bench::copies_for;
using joule::bench::set_counters;
using joule::bench::threads;

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
// kPacked: with the weights packed once (pack_w8a8, as the joule::linear_w8a8 op caches them), else per call.
template <bool kWholeOp, bool kPacked>
void BM_w8a8(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  at::set_num_threads(threads());
  at::manual_seed(0);
  const int64_t copies = copies_for(N * K, state.range(3));
  std::vector<at::Tensor> qw, ws;
  std::vector<k::W8A8Packed> packed;
  for (int64_t i = 0; i < copies; ++i) {
    at::Tensor w = at::randn({N, K}) * 0.05;
    qw.push_back(at::empty({N, K}, at::kChar));
    ws.push_back(at::empty({N}));
    k::quantize_rows_s8(w.data_ptr<float>(), N, K, qw.back().data_ptr<int8_t>(), ws.back().data_ptr<float>());
    if (kPacked) packed.push_back(k::pack_w8a8(qw.back().data_ptr<int8_t>(), N, K));
  }
  at::Tensor x = at::randn({M, K}), b = at::randn({N}), y = at::empty({M, N});
  at::Tensor qx = at::empty({M, K}, at::kChar), xs = at::empty({M});
  k::quantize_rows_s8(x.data_ptr<float>(), M, K, qx.data_ptr<int8_t>(), xs.data_ptr<float>());
  size_t i = 0;
  for (auto _ : state) {
    const size_t c = i++ % qw.size();
    const k::W8A8Packed* p = kPacked ? &packed[c] : nullptr;
    if (kWholeOp)
      k::linear_w8a8(x.data_ptr<float>(), M, K, qw[c].data_ptr<int8_t>(), ws[c].data_ptr<float>(), N,
                     b.data_ptr<float>(), y.data_ptr<float>(), {}, p);
    else
      k::gemm_s8s8(qx.data_ptr<int8_t>(), xs.data_ptr<float>(), M, K, qw[c].data_ptr<int8_t>(),
                   ws[c].data_ptr<float>(), N, b.data_ptr<float>(), y.data_ptr<float>(), p);
    benchmark::ClobberMemory();
  }
  set_counters(state, M, K, N, N * K);
}

}  // namespace

BENCHMARK(BM_fp32_linear)->Apply(joule::bench::linear_shapes);
BENCHMARK(BM_w8a8<true, true>)->Name("BM_w8a8_linear")->Apply(joule::bench::linear_shapes);
BENCHMARK(BM_w8a8<true, false>)->Name("BM_w8a8_linear_repack")->Apply(joule::bench::linear_shapes);
BENCHMARK(BM_w8a8<false, true>)->Name("BM_w8a8_gemm")->Apply(joule::bench::linear_shapes);

// Google Benchmark's main, after the CLI's malloc settings (compress/base/allocator.h), so that the timings are
// the ones `joule` measures.
int main(int argc, char** argv) {
  joule::keep_freed_memory();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
