// N:M semi-structured sparsity on row-major float matrices: in every run of M consecutive values along a
// row (the GEMM reduction dimension), keep the N of largest magnitude. 2:4 is what sparse tensor cores run.
#pragma once
#include <cstdint>

namespace joule::kernels {

// keep[r*cols + c] = 1 for the kept weights, 0 for the pruned ones. cols % m == 0, 0 < n <= m <= 32.
// Ties in |w| keep the lower column, so the mask is deterministic.
void nm_mask(const float* w, int64_t rows, int64_t cols, int n, int m, uint8_t* keep);

// True when every group of m consecutive values along each row has at most n non-zeros.
bool nm_satisfied(const float* w, int64_t rows, int64_t cols, int n, int m);

}  // namespace joule::kernels
