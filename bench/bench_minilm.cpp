// all-MiniLM-L6-v2 forward (sentence embeddings) through Joule's TorchScript port, batch 1 and 32 at
// sequence length 128: fp32 (and in bf16), and after the quantize pass (W8A8, W4 g128 with float or int8
// activations) running on the joule:: kernels.
// bench/compare_minilm.sh runs this and the same model in PyTorch (fp32 and quantize_dynamic) with the
// same threads, and prints the ratios.
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <benchmark/benchmark.h>

#include "compress/base/allocator.h"

#include "compress/ir/lower.h"
#include "compress/ops/ops.h"
#include "compress/passes/quantize.h"
#include "models/bert.h"

// bf16: joule --bf16; w4 int8 act: joule --w4a8 (compress/ir/lower.h)
static const char* kSchemes[] = {"fp32", "w8a8", "w4", "fp32 in bf16", "w4 int8 act"};

static torch::jit::Module model_for(int64_t scheme) {
  static std::map<int64_t, torch::jit::Module> cache;
  auto it = cache.find(scheme);
  if (it != cache.end()) return it->second;
  auto enc = joule::models::load_hf_encoder(JOULE_MINILM_DIR);
  if (scheme == 1 || scheme == 2 || scheme == 4) {
    joule::Context ctx;
    joule::QuantizePass(joule::QuantizeOptions::from_json({{"scheme", scheme == 1 ? "w8a8" : "w4"}, {"group", 128}}))
        .run(enc.module, ctx);
  }
  // As `joule` runs a model (compress/ir/lower.h): float linears on oneDNN, attention on Joule's kernel, unless JOULE_LOWER=off.
  joule::set_float_compute(scheme == 3 ? joule::FloatCompute::Bf16 : joule::FloatCompute::Fp32);
  joule::set_w4_activations(scheme == 4 ? joule::W4Activations::Int8 : joule::W4Activations::Float);
  torch::jit::Module lowered = joule::lower_for_cpu(enc.module).module;
  joule::set_float_compute(joule::FloatCompute::Fp32);
  joule::set_w4_activations(joule::W4Activations::Float);
  return cache.emplace(scheme, lowered).first->second;
}

static void BM_MiniLM(benchmark::State& state) {
  if (state.range(2) == 3 && !joule::cpu_has_bf16()) return state.SkipWithError("no AVX512_BF16 / AMX on this CPU");
  if (state.range(2) == 4 && !joule::cpu_has_w4a8()) return state.SkipWithError("no AVX2 on this CPU");
  torch::jit::Module m = model_for(state.range(2));
  int64_t batch = state.range(0), seq = state.range(1);
  std::vector<c10::IValue> in{at::randint(1000, 20000, {batch, seq}, at::kLong), at::ones({batch, seq}, at::kLong)};
  torch::NoGradGuard g;
  for (int i = 0; i < 5; ++i) m.forward(in);
  for (auto _ : state) benchmark::DoNotOptimize(m.forward(in));
  state.SetLabel(kSchemes[state.range(2)]);
  state.counters["threads"] = at::get_num_threads();
  state.counters["sentences/s"] = benchmark::Counter(double(batch), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_MiniLM)
    ->ArgsProduct({{1, 32}, {128}, {0, 1, 2, 3, 4}})
    ->ArgNames({"batch", "seq", "scheme"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The float linear at MiniLM's shapes (128 tokens; 4096 x 4096 GEMV), weights reordered once before the timed
// loop, OMP_NUM_THREADS threads as above: kind 0 = at::linear (MKL), 1 = joule::linear_float fp32, 2 = joule::linear_float
// bf16, 3 = LibTorch's raw oneDNN op (mkldnn::_linear_pointwise on a weight reordered by hand): what Joule's op
// adds over oneDNN. cold=1 rotates weight copies beyond the L3. (Not in joule_bench_w8a8, which loads Debian's
// oneDNN 2.6: its symbols can interpose on LibTorch's oneDNN and slow it down several times.)
static void BM_FloatLinear(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2), kind = state.range(4);
  if (kind == 2 && !joule::cpu_has_bf16()) return state.SkipWithError("no AVX512_BF16 / AMX on this CPU");
  joule::ops::ensure_ops_registered();
  static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("joule::linear_float", "");
  static auto reorder = c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_reorder_linear_weight", "");
  static auto pointwise = c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_linear_pointwise", "");
  at::manual_seed(0);
  const int64_t copies = state.range(3) ? std::max<int64_t>(2, ((int64_t(128) << 20) + N * K * 4 - 1) / (N * K * 4)) : 1;
  std::vector<at::Tensor> w, packed;
  for (int64_t i = 0; i < copies; ++i) w.push_back(at::randn({N, K}) * 0.05);
  at::Tensor x = at::randn({M, K}), b = at::randn({N});
  if (kind == 3)
    for (const auto& wi : w) {
      torch::jit::Stack st{wi, M};
      reorder.callBoxed(st);
      packed.push_back(st.at(0).toTensor());
    }
  auto call = [&](size_t i) -> at::Tensor {
    if (kind == 0) return at::linear(x, w[i], b);
    torch::jit::Stack st = kind == 3 ? torch::jit::Stack{x, packed[i], b, std::string("none"),
                                                        c10::List<std::optional<at::Scalar>>(), std::string("none")}
                                     : torch::jit::Stack{x, w[i], b, std::string("none"),
                                                        std::string(kind == 2 ? "bf16" : "fp32")};
    (kind == 3 ? pointwise : op).callBoxed(st);
    return st.at(0).toTensor();
  };
  torch::NoGradGuard g;
  for (size_t i = 0; i < w.size(); ++i) call(i);  // joule::linear_float reorders each copy on its first call
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(call(i++ % w.size()).data_ptr());
  static const char* kKinds[] = {"at::linear (MKL)", "joule::linear_float fp32", "joule::linear_float bf16",
                                 "LibTorch oneDNN raw"};
  state.SetLabel(kKinds[kind]);
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_FloatLinear)
    ->ArgsProduct({{128}, {384}, {1536}, {0, 1}, {0, 1, 2, 3}})
    ->ArgsProduct({{128}, {1536}, {384}, {0, 1}, {0, 1, 2, 3}})
    ->ArgsProduct({{1}, {4096}, {4096}, {1}, {0, 1, 2, 3}})
    ->ArgNames({"m", "k", "n", "cold", "kind"})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

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
