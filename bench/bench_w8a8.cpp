// W8A8 linear (kernels/cpu/w8a8.h) against LibTorch fp32 at::linear and oneDNN's own matmuls (f32, and u8s8s32
// with the int32 result: the raw integer GEMM a W8A8 linear has to beat), same binary, same threads (2), with bias.
// The oneDNN baselines get everything in their favour: weights reordered once, outside the timed loop, into the
// layout the primitive chose (format any); the u8 input made beforehand; no epilogue beyond its s32 output.
// Shapes: MiniLM's feed-forward linears at 128 tokens (m=128: k=384 -> n=1536 and k=1536 -> n=384) and a
// 4096 x 4096 GEMV (m=1). cold=1 rotates through enough weight copies (>= 128 MiB per side, at least 2) that
// the 32 MiB L3 cannot hold them, so every call streams its weights from DRAM; cold=0 reuses one copy.
// BM_w8a8_linear is the op as joule::linear_w8a8 runs it (weights packed once, activations quantized in the call);
// _repack packs the weights on every call (the kernel without the op's cache).
// Joule's own float linear (joule::linear_float) is measured in joule_minilm_bench: this binary loads Debian's
// oneDNN 2.6, whose exported symbols can interpose on LibTorch's oneDNN 3.10 and slow it down by up to 5x.
// Counters: FLOP/s = 2 m n k per call; W_bytes/s = weight bytes per call (int8 or fp32) per second.
// Run: joule_bench_w8a8 --benchmark_repetitions=5 --benchmark_report_aggregates_only=true (add
// --benchmark_enable_random_interleaving=true on a shared machine: fp32 and W8A8 repetitions then alternate).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include "compress/base/allocator.h"

#include <cstdlib>
#include <memory>
#include <vector>

#include "bench/onednn_baseline.h"
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

// oneDNN matmul (bench/onednn_baseline.h), weights prepacked once per copy; kInt8: u8s8s32, else f32 + bias.
template <bool kInt8>
void BM_onednn(benchmark::State& state) {
  using joule::bench::OneDnnMatmul;
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  at::set_num_threads(threads());  // oneDNN runs on the same OpenMP pool
  at::manual_seed(0);
  const int64_t wbytes = N * K * (kInt8 ? 1 : 4);
  std::vector<std::unique_ptr<OneDnnMatmul>> mm;
  for (int64_t i = copies_for(wbytes, state.range(3)); i > 0; --i) {
    at::Tensor w = kInt8 ? at::randint(-127, 128, {N, K}, at::kChar) : at::randn({N, K}) * 0.05;
    mm.push_back(std::make_unique<OneDnnMatmul>(kInt8 ? OneDnnMatmul::kU8S8S32 : OneDnnMatmul::kF32, M, K, N,
                                                w.data_ptr()));
  }
  at::Tensor x = kInt8 ? at::randint(0, 256, {M, K}, at::kByte) : at::randn({M, K});
  at::Tensor b = at::randn({N}), y = at::empty({M, N}, kInt8 ? at::kInt : at::kFloat);
  size_t i = 0;
  for (auto _ : state) {
    mm[i++ % mm.size()]->run(x.data_ptr(), b.data_ptr<float>(), y.data_ptr());
    benchmark::ClobberMemory();
  }
  state.SetLabel(mm[0]->impl());
  set_counters(state, M, K, N, wbytes);
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
BENCHMARK(BM_onednn<false>)->Name("BM_onednn_f32")->Apply(shapes);
BENCHMARK(BM_onednn<true>)->Name("BM_onednn_u8s8s32")->Apply(shapes);
BENCHMARK(BM_w8a8<true, true>)->Name("BM_w8a8_linear")->Apply(shapes);
BENCHMARK(BM_w8a8<true, false>)->Name("BM_w8a8_linear_repack")->Apply(shapes);
BENCHMARK(BM_w8a8<false, true>)->Name("BM_w8a8_gemm")->Apply(shapes);

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
