// all-MiniLM-L6-v2 forward (sentence embeddings) through Joule's TorchScript port, batch 1 and 32 at
// sequence length 128: fp32, and after the quantize pass (W8A8, W4 g128) running on the joule:: kernels.
// bench/compare_minilm.sh runs this and the same model in PyTorch (fp32 and quantize_dynamic) with the
// same threads, and prints the ratios.
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include "compress/base/allocator.h"

#include "compress/ir/lower.h"
#include "compress/passes/quantize.h"
#include "models/bert.h"

static const char* kSchemes[] = {"fp32", "w8a8", "w4", "fp32 in bf16"};  // bf16: joule --bf16 (lower.h)

static torch::jit::Module model_for(int64_t scheme) {
  static std::map<int64_t, torch::jit::Module> cache;
  auto it = cache.find(scheme);
  if (it != cache.end()) return it->second;
  auto enc = joule::models::load_hf_encoder(JOULE_MINILM_DIR);
  if (scheme == 1 || scheme == 2) {
    joule::Context ctx;
    joule::QuantizePass(joule::QuantizeOptions::from_json({{"scheme", kSchemes[scheme]}, {"group", 128}})).run(enc.module, ctx);
  }
  // As `joule` runs a model (compress/ir/lower.h): float linears on oneDNN, attention on Joule's kernel, unless JOULE_LOWER=off.
  joule::set_float_compute(scheme == 3 ? joule::FloatCompute::Bf16 : joule::FloatCompute::Fp32);
  torch::jit::Module lowered = joule::lower_for_cpu(enc.module).module;
  joule::set_float_compute(joule::FloatCompute::Fp32);
  return cache.emplace(scheme, lowered).first->second;
}

static void BM_MiniLM(benchmark::State& state) {
  if (state.range(2) == 3 && !joule::cpu_has_bf16()) return state.SkipWithError("no AVX512_BF16 / AMX on this CPU");
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
    ->ArgsProduct({{1, 32}, {128}, {0, 1, 2, 3}})
    ->ArgNames({"batch", "seq", "scheme"})
    ->Unit(benchmark::kMillisecond)
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
