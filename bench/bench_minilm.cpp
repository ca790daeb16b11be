// all-MiniLM-L6-v2 fp32 forward (sentence embeddings) through Joule's TorchScript port, batch 1 and 32 at
// sequence length 128. bench/compare_minilm.sh runs this and the same model in PyTorch (transformers) with
// the same threads, and prints the ratio.
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include "models/bert.h"

static void BM_MiniLM(benchmark::State& state) {
  static const joule::models::SentenceEncoder enc = joule::models::load_hf_encoder(JOULE_MINILM_DIR);
  torch::jit::Module m = enc.module;
  int64_t batch = state.range(0), seq = state.range(1);
  std::vector<c10::IValue> in{at::randint(1000, 20000, {batch, seq}, at::kLong), at::ones({batch, seq}, at::kLong)};
  torch::NoGradGuard g;
  for (int i = 0; i < 5; ++i) m.forward(in);
  for (auto _ : state) benchmark::DoNotOptimize(m.forward(in));
  state.counters["threads"] = at::get_num_threads();
  state.counters["sentences/s"] = benchmark::Counter(double(batch), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_MiniLM)->Args({1, 128})->Args({32, 128})->ArgNames({"batch", "seq"})->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
