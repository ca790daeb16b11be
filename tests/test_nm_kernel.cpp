// N:M mask kernel against a brute-force reference (sort each group by |w|, ties to the lower index).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/nm.h"

using joule::kernels::nm_mask;
using joule::kernels::nm_satisfied;

static std::vector<uint8_t> reference_mask(const std::vector<float>& w, int64_t rows, int64_t cols, int n, int m) {
  std::vector<uint8_t> keep(w.size(), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols; g += m) {
      std::vector<int> idx(m);
      std::iota(idx.begin(), idx.end(), 0);
      std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) {
        return std::fabs(w[r * cols + g + a]) > std::fabs(w[r * cols + g + b]);
      });
      for (int j = 0; j < n; ++j) keep[r * cols + g + idx[j]] = 1;
    }
  return keep;
}

TEST(NMKernel, MatchesReferenceOnOddShapes) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist;
  for (auto [n, m] : {std::pair{2, 4}, {1, 4}, {4, 8}, {3, 16}})
    for (int64_t rows : {1, 3, 17})
      for (int64_t groups : {1, 5, 33}) {
        int64_t cols = groups * m;
        std::vector<float> w(rows * cols);
        for (auto& x : w) x = dist(rng);
        std::vector<uint8_t> keep(w.size());
        nm_mask(w.data(), rows, cols, n, m, keep.data());
        ASSERT_EQ(keep, reference_mask(w, rows, cols, n, m)) << n << ":" << m << " rows=" << rows;
        std::vector<float> pruned(w);
        for (size_t i = 0; i < w.size(); ++i) pruned[i] *= keep[i];
        EXPECT_TRUE(nm_satisfied(pruned.data(), rows, cols, n, m));
        EXPECT_EQ(std::count(keep.begin(), keep.end(), 1), rows * groups * n);
      }
}

TEST(NMKernel, TiesKeepLowerIndexAndZerosCount) {
  // All-equal magnitudes: the first n of each group are kept, whatever the signs.
  std::vector<float> w = {1, -1, 1, -1, 0, 0, 0, 0};
  std::vector<uint8_t> keep(8);
  nm_mask(w.data(), 1, 8, 2, 4, keep.data());
  EXPECT_EQ(keep, (std::vector<uint8_t>{1, 1, 0, 0, 1, 1, 0, 0}));
}

TEST(NMKernel, SatisfiedDetectsViolationsAndBadShapes) {
  std::vector<float> ok = {1, 0, 2, 0, 0, 0, 0, 3};
  std::vector<float> bad = {1, 2, 3, 0, 0, 0, 0, 0};
  EXPECT_TRUE(nm_satisfied(ok.data(), 1, 8, 2, 4));
  EXPECT_FALSE(nm_satisfied(bad.data(), 1, 8, 2, 4));
  EXPECT_FALSE(nm_satisfied(ok.data(), 1, 6, 2, 4));  // 6 is not a multiple of 4
}
