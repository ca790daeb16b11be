// SP24 packing: a 2:4 sparse weight keeps only two values in every chunk of four input features, so it is
// stored as the kept values (half the columns) plus 4 bits of position metadata per chunk (kernels/formats/
// formats.h), which the sparse kernels read directly. Packing follows the shared linear rewrite (compress/ir/
// rewrite.h): find the linear sites on the inlined forward, compress each eligible weight once into buffers of
// the top module, replace its aten::linear nodes with joule::linear_sp24, then empty the float weight. Weights
// that the format cannot hold (not float32 [N, K] with K % 16 == 0) or that other ops read as well stay dense.
#include "compress/algorithms/pack_sp24.h"

#include <fmt/format.h>

#include "compress/ir/graph.h"
#include "compress/ops/schema.h"
#include "kernels/cpu/sp24.h"

namespace joule {

PackedWeight sp24_pack(const at::Tensor& w) {
  at::Tensor wc = w.detach().contiguous();
  const int64_t N = wc.size(0), K = wc.size(1);
  at::Tensor values = at::empty({N, K / 2}, at::kFloat);
  at::Tensor meta = at::empty({N, kernels::sp24_meta_cols(K)}, at::kShort);
  kernels::compress_sp24(wc.data_ptr<float>(), N, K, values.data_ptr<float>(),
                         reinterpret_cast<uint16_t*>(meta.data_ptr<int16_t>()));
  return {"", {{"values", values}, {"meta", meta}}, {{"in_features", K}}};
}

Sp24Packing pack_sp24(torch::jit::Module& m, const std::set<std::string>& weights) {
  Sp24Packing r;
  LinearSites sites = find_linear_sites(m);
  std::vector<PackedWeight> packed;
  for (const auto& path : weights) {
    const LinearSite* site = sites.find(path);
    at::Tensor w = get_tensor(m, path);
    if (!site || !site->exclusive) {
      r.warnings.push_back(fmt::format("'{}' stays dense: it is read by ops other than a plain aten::linear", path));
      continue;
    }
    if (w.scalar_type() != at::kFloat || w.dim() != 2 || w.size(1) % kernels::kSp24KAlign != 0) {
      r.warnings.push_back(fmt::format("'{}' stays dense: 2:4 packing needs a float32 [N, K] weight with K % {} == 0, "
                                       "got {} {}", path, kernels::kSp24KAlign, c10::toString(w.scalar_type()),
                                       c10::str(w.sizes())));
      continue;
    }
    PackedWeight p = sp24_pack(w);
    p.weight = path;
    r.bytes_before += static_cast<int64_t>(w.nbytes());
    r.bytes_after += p.bytes();
    r.packed.push_back(path);
    packed.push_back(std::move(p));
  }
  rewrite_linears(m, std::move(sites), ops::linear_sp24(), packed, "sp24_");
  return r;
}

}  // namespace joule
