// N:M pruning: in every group of M consecutive weights along the input (reduction) dimension keep the N of
// largest magnitude and zero the others, the pattern that sparse tensor cores and the SP24 kernels (2:4) skip
// half the work for. The weight is moved so the input dimension is last and made float and contiguous, the
// kernel (kernels/cpu/nm.h) writes a keep mask group by group, and the mask is moved back and applied in place,
// so any weight layout (linear [N, K], conv [O, I, kh, kw], matmul operands) works through in_dim.
#include "compress/algorithms/prune_nm.h"

#include <fmt/format.h>

#include "compress/base/error.h"
#include "kernels/cpu/nm.h"

namespace joule {

bool nm_holds(const at::Tensor& w, int in_dim, int n, int m) {
  if (w.size(in_dim) % m != 0) return false;
  at::Tensor t = w.detach().to(c10::kFloat).movedim(in_dim, -1).contiguous();
  return kernels::nm_satisfied(t.data_ptr<float>(), t.numel() / t.size(-1), t.size(-1), n, m);
}

std::vector<PrunedLayer> prune_nm(torch::jit::Module& m, const Analysis& a, const std::vector<size_t>& targets, int n,
                                  int mm) {
  for (size_t i : targets) {
    const WeightOp& op = a.ops[i];
    if (op.weight_shape[op.in_dim] % mm != 0)
      fail("prune: {}:{} needs the input dimension of '{}' ({} = {}) divisible by {}; exclude it with --exclude", n, mm,
           op.module, op.weight, op.weight_shape[op.in_dim], mm);
  }
  std::vector<PrunedLayer> out;
  for (size_t i : targets) {
    const WeightOp& op = a.ops[i];
    at::Tensor w = get_tensor(m, op.weight);
    std::vector<int64_t> shape = w.sizes().vec();
    at::Tensor moved = w.detach().to(c10::kFloat).movedim(op.in_dim, -1).contiguous();
    at::Tensor keep = at::empty(moved.sizes(), at::TensorOptions().dtype(c10::kByte));
    kernels::nm_mask(moved.data_ptr<float>(), moved.numel() / moved.size(-1), moved.size(-1), n, mm,
                     keep.data_ptr<uint8_t>());
    w.masked_fill_(keep.movedim(-1, op.in_dim).eq(0), 0);
    out.push_back(pruned_layer(i, shape, w, fmt::format("{}:{}", n, mm)));
  }
  return out;
}

}  // namespace joule
