// W4 weight-only linear (kernels/cpu/w4.h) against LibTorch fp32 at::linear, same binary, same 2 OpenMP threads.
// GEMV shapes (M <= 16) rotate through several weight sets totalling > 80 MiB, so neither side is served from
// the 32 MiB L3: that is the regime (weights streamed from DRAM) in which 4-bit weights pay. The MiniLM
// shapes (M = 128 tokens) are compute-bound and use one weight set.
//   ./joule_bench_w4 --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "compress/base/allocator.h"
#include <immintrin.h>
#include <omp.h>
#include <torch/torch.h>

#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "kernels/cpu/w4.h"

namespace {

constexpr int kThreads = 2;
constexpr int64_t kRotateBytes = int64_t{80} << 20;  // rotate weights until the sets exceed this (L3 is 32 MiB)

int64_t sets_for(int64_t m, int64_t bytes_per_set) {
  return m <= 16 ? std::max<int64_t>(2, (kRotateBytes + bytes_per_set - 1) / bytes_per_set) : 1;
}

void set_threads() {
  at::set_num_threads(kThreads);
  omp_set_num_threads(kThreads);
}

void counters(benchmark::State& state, int64_t m, int64_t k, int64_t n, int64_t weight_bytes, int64_t sets) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(2e-9 * double(m * k * n), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["weight_GB/s"] =
      benchmark::Counter(1e-9 * double(weight_bytes), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["weight_MiB"] = double(weight_bytes) / (1 << 20);
  state.counters["sets"] = double(sets);
}

struct W4Set {
  std::vector<uint8_t> qweight, zeros;
  std::vector<float> scales;
  std::shared_ptr<const joule::kernels::W4A8Packed> packed;  // made by the W4A8 benchmark, as the op caches it
};

struct W4Weights {
  std::vector<W4Set> sets;
  int64_t bytes = 0;  // per set: packed nibbles + scales + zeros
};

const W4Weights& w4_weights(int64_t k, int64_t n, int64_t group, int64_t m) {
  static std::map<std::tuple<int64_t, int64_t, int64_t, int64_t>, W4Weights> cache;
  auto it = cache.find({k, n, group, m});
  if (it != cache.end()) return it->second;
  using namespace joule::kernels;
  const at::Tensor w = at::randn({n, k});
  W4Set one{std::vector<uint8_t>(n * w4_row_bytes(k)), std::vector<uint8_t>(n * w4_groups(k, group)),
            std::vector<float>(n * w4_groups(k, group))};
  quantize_w4_rtn(w.data_ptr<float>(), n, k, group, one.qweight.data(), one.scales.data(), one.zeros.data());
  W4Weights out;
  out.bytes = int64_t(one.qweight.size() + one.zeros.size() + one.scales.size() * sizeof(float));
  out.sets.assign(size_t(sets_for(m, out.bytes)), one);  // distinct copies: distinct memory
  return cache.emplace(std::make_tuple(k, n, group, m), std::move(out)).first->second;
}

const std::vector<at::Tensor>& fp32_weights(int64_t k, int64_t n, int64_t m) {
  static std::map<std::tuple<int64_t, int64_t, int64_t>, std::vector<at::Tensor>> cache;
  auto it = cache.find({k, n, m});
  if (it != cache.end()) return it->second;
  std::vector<at::Tensor> sets;
  for (int64_t i = 0, s = sets_for(m, n * k * 4); i < s; ++i) sets.push_back(at::randn({n, k}));
  return cache.emplace(std::make_tuple(k, n, m), std::move(sets)).first->second;
}

void BM_LinearFp32(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  set_threads();
  at::NoGradGuard ng;
  const auto& w = fp32_weights(k, n, m);
  const at::Tensor x = at::randn({m, k}), b = at::randn({n});
  size_t i = 0;
  for (auto _ : state) {
    at::Tensor y = at::linear(x, w[i++ % w.size()], b);
    benchmark::DoNotOptimize(y.data_ptr<float>());
  }
  counters(state, m, k, n, n * k * 4, int64_t(w.size()));
  state.counters["threads"] = at::get_num_threads();
}

// W4 with float activations (linear_w4), or int8 ones (linear_w4a8 on the packed weights the op caches, made
// before timing): the same weights and arguments.
template <bool kInt8>
void BM_LinearW4(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2), group = state.range(3);
  set_threads();
  W4Weights& w = const_cast<W4Weights&>(w4_weights(k, n, group, m));
  if (kInt8)
    for (W4Set& s : w.sets)
      if (!s.packed)
        s.packed = std::make_shared<const joule::kernels::W4A8Packed>(
            joule::kernels::pack_w4a8(s.qweight.data(), s.scales.data(), s.zeros.data(), n, k, group));
  const at::Tensor x = at::randn({m, k}), b = at::randn({n});
  std::vector<float> y(size_t(m * n));
  size_t i = 0;
  for (auto _ : state) {
    const W4Set& s = w.sets[i++ % w.sets.size()];
    if (kInt8)
      joule::kernels::linear_w4a8(x.data_ptr<float>(), m, k, s.qweight.data(), s.scales.data(), s.zeros.data(), n,
                                  group, b.data_ptr<float>(), y.data(), s.packed.get());
    else
      joule::kernels::linear_w4(x.data_ptr<float>(), m, k, s.qweight.data(), s.scales.data(), s.zeros.data(), n,
                                group, b.data_ptr<float>(), y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  counters(state, m, k, n, w.bytes, int64_t(w.sets.size()));
  state.counters["threads"] = omp_get_max_threads();
}

// Bytes [0, n) summed as 64-bit lanes with AVX2 loads, 4 accumulators and the kernels' 1 KiB prefetch distance:
// a read that keeps as many requests in flight as the kernels do (a plain loop in baseline SSE2 read 30% slower
// than the W4A8 GEMV on a Zen 3, so it was no limit).
__attribute__((target("avx2"))) int64_t sum_avx2(const int64_t* v, int64_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(v + j) + 1024, _MM_HINT_T0);
    a0 = _mm256_add_epi64(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + j)));
    a1 = _mm256_add_epi64(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + j + 4)));
    a2 = _mm256_add_epi64(a2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + j + 8)));
    a3 = _mm256_add_epi64(a3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + j + 12)));
  }
  alignas(32) int64_t t[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t),
                     _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
  int64_t total = t[0] + t[1] + t[2] + t[3];
  for (; j < n; ++j) total += v[j];
  return total;
}

// The machine's limit for the GEMV: 2 threads reading buffers of the W4 layer's size (9 MiB), rotated through
// more than the L3 as the weights are, so the W4 rows' weight_GB/s can be read against it.
void BM_DramRead(benchmark::State& state) {
  set_threads();
  const int64_t bytes = state.range(0);
  static std::vector<std::vector<int64_t>> bufs;
  if (bufs.empty())
    for (int64_t i = 0, s = sets_for(1, bytes); i < s; ++i) bufs.emplace_back(size_t(bytes / 8), i);
  size_t i = 0;
  for (auto _ : state) {
    const std::vector<int64_t>& v = bufs[i++ % bufs.size()];
    int64_t total = 0;
    const int64_t n = int64_t(v.size());
    const bool avx2 = __builtin_cpu_supports("avx2");
#pragma omp parallel reduction(+ : total)
    {
      const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t j0 = n * t / nt / 16 * 16, j1 = t + 1 == nt ? n : n * (t + 1) / nt / 16 * 16;
      if (avx2) {
        total += sum_avx2(v.data() + j0, j1 - j0);
      } else {
        for (int64_t j = j0; j < j1; ++j) total += v[size_t(j)];
      }
    }
    benchmark::DoNotOptimize(total);
  }
  state.counters["GB/s"] = benchmark::Counter(1e-9 * double(bytes), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["sets"] = double(bufs.size());
}

// {m, k, n}: GEMV (decode) on a 4096 x 4096 layer at M = 1..16 (small-batch serving), then MiniLM's FFN shapes
// at 128 tokens.
const std::vector<std::vector<int64_t>> kShapes = {{1, 4096, 4096},  {2, 4096, 4096},   {4, 4096, 4096},
                                                   {8, 4096, 4096},  {16, 4096, 4096},  {128, 384, 1536},
                                                   {128, 1536, 384}};

void fp32_args(benchmark::internal::Benchmark* b) {
  for (const auto& s : kShapes) b->Args(s);
  b->ArgNames({"m", "k", "n"});
}

void w4_args(benchmark::internal::Benchmark* b) {
  for (const auto& s : kShapes) b->Args({s[0], s[1], s[2], 128});
  b->Args({1, 4096, 4096, 32});
  b->ArgNames({"m", "k", "n", "group"});
}



}  // namespace

BENCHMARK(BM_LinearFp32)->Apply(fp32_args)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_LinearW4<false>)->Name("BM_LinearW4")->Apply(w4_args)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_LinearW4<true>)->Name("BM_LinearW4A8")->Apply(w4_args)->Unit(benchmark::kMicrosecond)->UseRealTime();
// 4096 x 4096 at G = 128: 8 MiB of nibbles + 0.5 MiB of scales + 128 KiB of zeros, as the W4 GEMV reads.
BENCHMARK(BM_DramRead)->Arg(4096 * 2048 + 4096 * 32 * 5)->Unit(benchmark::kMicrosecond)->UseRealTime();

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
