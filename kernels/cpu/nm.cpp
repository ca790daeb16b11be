// Per group: a partial selection sort over at most 32 magnitudes. The cost is O(rows*cols*n), far below the
// cost of reading the weights once from DRAM for the usual n <= 4, so no SIMD path is worth keeping.
#include "kernels/cpu/nm.h"

#include <cmath>

namespace joule::kernels {

void nm_mask(const float* w, int64_t rows, int64_t cols, int n, int m, uint8_t* keep) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = w + r * cols;
    uint8_t* out = keep + r * cols;
    for (int64_t g = 0; g < cols; g += m) {
      for (int j = 0; j < m; ++j) out[g + j] = 0;
      for (int picked = 0; picked < n; ++picked) {
        int best = -1;
        float best_mag = -1.0f;
        for (int j = 0; j < m; ++j) {
          float mag = std::fabs(row[g + j]);
          if (std::isnan(mag)) mag = INFINITY;  // never silently keep a NaN hidden behind a zero
          if (!out[g + j] && mag > best_mag) {
            best = j;
            best_mag = mag;
          }
        }
        out[g + best] = 1;
      }
    }
  }
}

bool nm_satisfied(const float* w, int64_t rows, int64_t cols, int n, int m) {
  if (m <= 0 || cols % m != 0) return false;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols; g += m) {
      int nz = 0;
      for (int j = 0; j < m; ++j) nz += w[r * cols + g + j] != 0.0f;
      if (nz > n) return false;
    }
  return true;
}

}  // namespace joule::kernels
