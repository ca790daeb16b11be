// What the linear-kernel benchmarks share (joule_bench_w8a8 and joule_bench_onednn), so that their rows line up:
// threads, the shapes, the weight-copy rotation and the counters. Header-only and LibTorch-free.
// Shapes: MiniLM's feed-forward linears at 128 tokens (m=128: k=384 -> n=1536 and k=1536 -> n=384) and a
// 4096 x 4096 GEMV (m=1). cold=1 rotates through enough weight copies (>= 128 MiB per side, at least 2) that the
// 32 MiB L3 cannot hold them, so every call streams its weights from DRAM; cold=0 reuses one copy.
// Counters: FLOP/s = 2 m n k per call; W_bytes/s = weight bytes per call (int8 or fp32) per second.
#pragma once
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>

namespace joule::bench {

// 2 threads (the project machine's cores); JOULE_BENCH_THREADS=n overrides, for single-core comparisons.
inline int threads() {
  static const int n = std::getenv("JOULE_BENCH_THREADS") ? std::atoi(std::getenv("JOULE_BENCH_THREADS")) : 2;
  return n;
}

constexpr int64_t kColdBytes = int64_t(128) << 20;
inline int64_t copies_for(int64_t bytes, bool cold) {
  return cold ? std::max<int64_t>(2, (kColdBytes + bytes - 1) / bytes) : 1;
}

inline void set_counters(benchmark::State& state, int64_t M, int64_t K, int64_t N, int64_t weight_bytes) {
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["W_bytes/s"] = benchmark::Counter(double(weight_bytes), benchmark::Counter::kIsIterationInvariantRate);
}

inline void linear_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "k", "n", "cold"});
  for (int cold : {0, 1}) {
    b->Args({128, 384, 1536, cold});
    b->Args({128, 1536, 384, cold});
  }
  b->Args({1, 4096, 4096, 1});
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}

}  // namespace joule::bench
