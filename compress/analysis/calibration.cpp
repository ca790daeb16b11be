#include "compress/analysis/calibration.h"

#include <fmt/ranges.h>

#include <cstring>
#include <filesystem>
#include <set>

#include "compress/base/error.h"
#include "compress/ir/graph.h"
#include "compress/base/progress.h"
#include "compress/io/safetensors.h"

namespace joule {

Batches tensor_calibration(const std::string& path, const torch::jit::Module& m, const Workload& w, int64_t samples,
                           int64_t batch) {
  if (!std::filesystem::exists(path)) fail("calibration file '{}': no such file", path);
  st::File f = st::File::open(path);
  const auto& args = m.get_method("forward").function().getSchema().arguments();  // args[0] is self
  std::vector<at::Tensor> columns;
  std::set<std::string> used;
  int64_t n = -1;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& name = args[i].name();
    const st::TensorView* t = f.find(name);
    if (!t) {
      if (args[i].default_value()) break;  // later arguments keep their defaults too
      fail("calibration file '{}': no tensor '{}' for forward's argument {}", path, name, i);
    }
    used.insert(name);
    if (i - 1 >= w.inputs.size()) fail("calibration file '{}': forward's argument '{}' is not in the workload", path, name);
    const InputSpec& spec = w.inputs[i - 1];
    c10::ScalarType dt;
    switch (t->dtype) {
      case st::DType::F32: dt = at::kFloat; break;
      case st::DType::I64: dt = at::kLong; break;
      default: fail("calibration file '{}': tensor '{}' is {}; F32 or I64 expected", path, name, st::dtype_name(t->dtype));
    }
    std::vector<int64_t> want(spec.shape.begin() + (spec.shape.empty() ? 0 : 1), spec.shape.end());
    std::vector<int64_t> got(t->shape.begin() + (t->shape.empty() ? 0 : 1), t->shape.end());
    if (t->shape.empty() || got != want || dt != spec.dtype)
      fail("calibration file '{}': tensor '{}' is {} [{}] but the model's input {} takes {} [N, {}]", path, name,
           st::dtype_name(t->dtype), fmt::join(t->shape, ", "), i, c10::toString(spec.dtype), fmt::join(want, ", "));
    if (n >= 0 && t->shape[0] != n)
      fail("calibration file '{}': tensor '{}' has {} samples, the others {}", path, name, t->shape[0], n);
    n = t->shape[0];
    // Copy out of the mapping: the bytes may not be aligned for the dtype.
    at::Tensor c = at::empty(t->shape, at::TensorOptions().dtype(dt));
    std::memcpy(c.data_ptr(), t->data, t->nbytes);
    columns.push_back(c);
  }
  for (const auto& t : f.tensors())
    if (!used.count(t.name)) fail("calibration file '{}': tensor '{}' is not an argument of forward", path, t.name);
  if (columns.empty() || n <= 0) fail("calibration file '{}': no samples", path);
  if (samples > 0) n = std::min(n, samples);
  Batches out;
  for (int64_t s = 0; s < n; s += batch) {
    std::vector<c10::IValue> b;
    for (const auto& c : columns) b.emplace_back(c.slice(0, s, std::min(n, s + batch)));
    out.push_back(std::move(b));
  }
  return out;
}

CalibrationStats collect_linear_stats(const torch::jit::Module& m, const Batches& batches) {
  CalibrationStats stats;
  Progress bar("calibrating", static_cast<int64_t>(batches.size()));
  for_each_linear_input(
      m, batches,
      [&](const std::string& weight, const at::Tensor& x) {
        if (x.scalar_type() != at::kFloat) return;
        at::Tensor xd = x.to(at::kDouble);
        at::Tensor amax = x.abs().amax(0);
        auto it = stats.find(weight);
        if (it == stats.end()) {
          stats[weight] = {xd.t().mm(xd), amax, x.size(0)};
        } else {
          it->second.xtx.addmm_(xd.t(), xd);
          it->second.absmax = at::maximum(it->second.absmax, amax);
          it->second.rows += x.size(0);
        }
      },
      [&](size_t) { bar.tick(); });
  return stats;
}

}  // namespace joule
