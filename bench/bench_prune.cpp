// Pruning pass cost and model latency, dense vs pruned, on the bundled MLP (d_model 512, hidden 2048).
// Latency ratios are what matter: dense and pruned models run in the same binary, same threads.
#include <benchmark/benchmark.h>

#include "compress/passes/prune.h"
#include "models/builders.h"

using namespace joule;

static const models::MlpConfig kCfg{256, 512, 2048, 64, 2, 0};

static void prune_once(torch::jit::Module& m, const nlohmann::json& opts) {
  Context ctx;
  PrunePass(PruneOptions::from_json(opts)).run(m, ctx);
}

static const nlohmann::json& method_opts(int64_t i) {
  static const std::vector<nlohmann::json> o = {
      {{"method", "unstructured"}, {"sparsity", 0.5}},
      {{"method", "unstructured"}, {"sparsity", 0.5}, {"scope", "global"}},
      {{"method", "2:4"}},
      {{"method", "structured"}, {"sparsity", 0.5}, {"include", "blocks.*.a"}}};
  return o.at(i);
}

// The pass itself (graph analysis + selection + rewrite), on a fresh copy each iteration.
static void BM_PrunePass(benchmark::State& state) {
  auto base = models::build_mlp(kCfg);
  for (auto _ : state) {
    state.PauseTiming();
    auto m = base.clone();
    state.ResumeTiming();
    prune_once(m, method_opts(state.range(0)));
  }
  state.SetLabel(method_opts(state.range(0)).dump());
}
BENCHMARK(BM_PrunePass)->DenseRange(0, 3)->Unit(benchmark::kMillisecond);

// Forward latency, batch 32: 0 dense, 1 2:4 (dense kernels: same speed expected), 2 structured 50% hidden.
static void BM_ModelLatency(benchmark::State& state) {
  auto m = models::build_mlp(kCfg);
  if (state.range(0) == 1) prune_once(m, method_opts(2));
  if (state.range(0) == 2) prune_once(m, method_opts(3));
  std::vector<c10::IValue> x{at::randn({32, kCfg.d_in})};
  torch::NoGradGuard g;
  for (int i = 0; i < 3; ++i) m.forward(x);
  for (auto _ : state) benchmark::DoNotOptimize(m.forward(x));
  state.SetLabel(state.range(0) == 0 ? "dense" : state.range(0) == 1 ? "2:4 (dense kernel)" : "structured 50% hidden");
}
BENCHMARK(BM_ModelLatency)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
