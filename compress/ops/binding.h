// Shape helpers shared by the CPU and CUDA bindings of the joule:: ops (LibTorch; header-only so that each
// binding stays one translation unit). Errors name the op and the offending sizes.
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace joule::ops {

// x [..., K] -> contiguous [M, K] rows (dtype and device are each binding's own checks).
inline at::Tensor rows_of(const at::Tensor& x, int64_t K, const char* op) {
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == K, op, ": x has ", x.sizes(), " but the weight expects K=", K,
              " input features");
  return x.reshape({-1, K}).contiguous();
}

// The output keeps x's leading dims with N features.
inline std::vector<int64_t> out_shape(const at::Tensor& x, int64_t N) {
  auto s = x.sizes().vec();
  s.back() = N;
  return s;
}

}  // namespace joule::ops
