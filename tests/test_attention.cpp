// The attention kernels (kernels/cpu/attention.h): the scalar reference against a softmax computed by hand in
// double, and each fast kernel the CPU has (AVX-512, AVX2) against the reference over head dims, odd lengths (tails
// of the 8-row / 32-key AVX-512 and 6-row / 16-key AVX2 blocks), the projection layout read in place, broadcast and
// full masks, fully masked rows and thread counts.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/isa.h"

using namespace joule::kernels;

namespace {

// q, k, v in [B, S, H, D] memory (a projection's output viewed as [B, H, S, D]), o contiguous [B, S, H, D] too.
struct Case {
  AttentionShape sh;
  std::vector<float> q, k, v, mask, o;
  Strides4 qs, ks, vs, ms, os;
  Case(int64_t B, int64_t H, int64_t Sq, int64_t Sk, int64_t D, int mask_kind, uint32_t seed)
      : sh{B, H, Sq, Sk, D}, q(B * Sq * H * D), k(B * Sk * H * D), v(B * Sk * H * D), o(B * Sq * H * D) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (auto* t : {&q, &k, &v})
      for (auto& x : *t) x = nd(gen);
    qs = {Sq * H * D, D, H * D, 1};
    ks = vs = {Sk * H * D, D, H * D, 1};
    os = qs;
    ms = {0, 0, 0, 0};
    if (mask_kind == 1) {  // [B, 1, 1, Sk] padding mask: the last keys of odd batches masked (BERT's lowest float)
      mask.assign(B * Sk, 0.0f);
      for (int64_t b = 1; b < B; b += 2)
        for (int64_t j = Sk - Sk / 3; j < Sk; ++j) mask[b * Sk + j] = std::numeric_limits<float>::lowest();
      ms = {Sk, 0, 0, 1};
    } else if (mask_kind == 2) {  // a full [B, H, Sq, Sk] additive mask with -inf, one query row entirely
      mask.resize(B * H * Sq * Sk);
      for (auto& x : mask) x = nd(gen);
      for (int64_t j = 0; j < Sk; j += 3) mask[j] = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < Sk; ++j) mask[(Sq - 1) * Sk + j] = -std::numeric_limits<float>::infinity();
      ms = {H * Sq * Sk, Sq * Sk, Sk, 1};
    }
  }
  const float* m() const { return mask.empty() ? nullptr : mask.data(); }
  float scale() const { return 1.0f / std::sqrt(float(sh.head_dim)); }
};

// Each fast kernel this CPU runs, found by trying the test switch both ways (it is back on afterwards).
std::vector<isa::AttentionImpl> fast_kernels() {
  std::vector<isa::AttentionImpl> out;
  for (bool avx512 : {true, false}) {
    isa::set_attention_avx512(avx512);
    const auto impl = isa::attention_impl(32);
    if (impl != isa::AttentionImpl::kReference && (out.empty() || out.back() != impl)) out.push_back(impl);
  }
  isa::set_attention_avx512(true);
  return out;
}

// Selects one kernel for the scope's lifetime; the switch is back on after it.
struct KernelScope {
  explicit KernelScope(isa::AttentionImpl impl) { isa::set_attention_avx512(impl == isa::AttentionImpl::kAvx512); }
  ~KernelScope() { isa::set_attention_avx512(true); }
};

}  // namespace

TEST(Attention, ReferenceMatchesSoftmaxComputedInDouble) {
  Case c(2, 3, 5, 7, 4, 2, 1);
  attention_f32_ref(c.q.data(), c.qs, c.k.data(), c.ks, c.v.data(), c.vs, c.m(), c.ms, c.o.data(), c.os, c.sh,
                    c.scale());
  const auto& s = c.sh;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.heads; ++h)
      for (int64_t i = 0; i < s.q_len; ++i) {
        std::vector<double> p(s.k_len);
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < s.k_len; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < s.head_dim; ++d)
            dot += double(c.q[b * c.qs.b + h * c.qs.h + i * c.qs.r + d]) * c.k[b * c.ks.b + h * c.ks.h + j * c.ks.r + d];
          p[j] = dot * c.scale() + c.mask[b * c.ms.b + h * c.ms.h + i * c.ms.r + j];
          mx = std::max(mx, p[j]);
        }
        for (int64_t d = 0; d < s.head_dim; ++d) {
          const float got = c.o[b * c.os.b + h * c.os.h + i * c.os.r + d];
          if (std::isinf(mx)) {  // every key masked: zeros, by definition
            EXPECT_EQ(got, 0.0f);
            continue;
          }
          double acc = 0;
          sum = 0;
          for (int64_t j = 0; j < s.k_len; ++j) {
            const double e = std::exp(p[j] - mx);
            sum += e;
            acc += e * c.v[b * c.vs.b + h * c.vs.h + j * c.vs.r + d];
          }
          EXPECT_NEAR(got, acc / sum, 1e-5) << b << " " << h << " " << i << " " << d;
        }
      }
}

TEST(Attention, FastMatchesReferenceOnOddShapesMasksAndThreads) {
  const auto kernels = fast_kernels();
  if (kernels.empty()) GTEST_SKIP() << "no AVX2+FMA on this CPU";
  int cases = 0;
  for (const auto impl : kernels)
    for (int64_t D : {16, 32, 64, 128})
      for (int64_t Sq : {1, 5, 6, 7, 8, 9, 13, 128})
        for (int64_t Sk : {1, 15, 17, 31, 33, 128})
          for (int mask_kind : {0, 1, 2})
            for (int threads : {1, 2}) {
              KernelScope scope(impl);
              SCOPED_TRACE(testing::Message() << "kernel " << int(impl) << " D " << D << " Sq " << Sq << " Sk " << Sk
                                              << " mask " << mask_kind << " threads " << threads);
              omp_set_num_threads(threads);
              Case c(3, 2, Sq, Sk, D, mask_kind, uint32_t(D * 1000 + Sq * 10 + Sk));
              std::vector<float> ref(c.o.size());
              attention_f32_ref(c.q.data(), c.qs, c.k.data(), c.ks, c.v.data(), c.vs, c.m(), c.ms, ref.data(), c.os,
                                c.sh, c.scale());
              attention_f32(c.q.data(), c.qs, c.k.data(), c.ks, c.v.data(), c.vs, c.m(), c.ms, c.o.data(), c.os, c.sh,
                            c.scale());
              float worst = 0;
              for (size_t i = 0; i < ref.size(); ++i) {
                ASSERT_FALSE(std::isnan(c.o[i])) << i;
                worst = std::max(worst, std::abs(c.o[i] - ref[i]));
              }
              EXPECT_LT(worst, 2e-5f);  // outputs are convex combinations of N(0,1) values: |o| < ~5
              ++cases;
            }
  omp_set_num_threads(2);
  EXPECT_EQ(cases, int(kernels.size()) * 4 * 8 * 6 * 3 * 2);
}

TEST(Attention, NonFiniteScoresPropagateAsInTheReference) {
  const auto kernels = fast_kernels();
  if (kernels.empty()) GTEST_SKIP() << "no AVX2+FMA on this CPU";
  for (const auto impl : kernels) {
    KernelScope scope(impl);
    SCOPED_TRACE(testing::Message() << "kernel " << int(impl));
    Case c(1, 1, 9, 40, 32, 0, 3);
    c.q[2 * 32 + 5] = std::numeric_limits<float>::quiet_NaN();  // query row 2
    std::vector<float> ref(c.o.size());
    attention_f32_ref(c.q.data(), c.qs, c.k.data(), c.ks, c.v.data(), c.vs, nullptr, c.ms, ref.data(), c.os, c.sh,
                      c.scale());
    attention_f32(c.q.data(), c.qs, c.k.data(), c.ks, c.v.data(), c.vs, nullptr, c.ms, c.o.data(), c.os, c.sh,
                  c.scale());
    for (int64_t i = 0; i < 9; ++i)
      for (int64_t d = 0; d < 32; ++d) {
        const float r = ref[i * 32 + d], f = c.o[i * 32 + d];
        EXPECT_EQ(std::isnan(r), std::isnan(f)) << i << " " << d;
        EXPECT_EQ(std::isnan(f), i == 2) << i << " " << d;
      }
  }
}
