#include "compress/pipeline.h"

#include <ATen/Parallel.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <ctime>

#include "compress/error.h"
#include "compress/model_io.h"
#include "compress/progress.h"

namespace joule {

const Analysis& Context::analysis(const torch::jit::Module& m) {
  if (!analysis_) analysis_ = analyze(m);
  return *analysis_;
}

static void flatten_into(const c10::IValue& v, std::vector<at::Tensor>& out) {
  if (v.isTensor()) {
    out.push_back(v.toTensor().detach().reshape(-1).to(c10::kDouble));
  } else if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements()) flatten_into(e, out);
  } else if (v.isList()) {
    for (const auto& e : v.toListRef()) flatten_into(e, out);
  } else if (v.isGenericDict()) {
    for (const auto& kv : v.toGenericDict()) flatten_into(kv.value(), out);
  }
}

at::Tensor flat_output(const c10::IValue& out) {
  std::vector<at::Tensor> parts;
  flatten_into(out, parts);
  if (parts.empty()) fail("the model's output holds no tensor to compare");
  return at::cat(parts);
}

static double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

static double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  double pos = q * double(v.size() - 1);
  size_t lo = static_cast<size_t>(pos);
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - double(lo)) * (v[hi] - v[lo]);
}

Metrics measure(const torch::jit::Module& m, const Workload& w, const std::vector<c10::IValue>& inputs,
                const at::Tensor& reference, const std::string& label) {
  Metrics r;
  for (const auto& p : m.named_parameters(true)) {
    r.params += p.value.numel();
    r.nonzero_params += p.value.count_nonzero().item<int64_t>();
    r.weight_bytes += static_cast<int64_t>(p.value.nbytes());
  }
  for (const auto& b : m.named_buffers(true)) r.weight_bytes += static_cast<int64_t>(b.value.nbytes());
  r.file_bytes = archive_bytes(m);

  torch::NoGradGuard no_grad;
  auto module = m;  // forward() is non-const; Module is a handle to the same object
  Progress bar("measuring " + label, w.warmup + w.reps);
  c10::IValue out;
  for (int i = 0; i < w.warmup; ++i, bar.tick()) out = module.forward(inputs);
  std::vector<double> ms;
  double cpu0 = cpu_seconds();
  auto wall0 = std::chrono::steady_clock::now();
  for (int i = 0; i < w.reps; ++i, bar.tick()) {
    auto t0 = std::chrono::steady_clock::now();
    out = module.forward(inputs);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wall0).count();
  double cpu = (cpu_seconds() - cpu0) * 1e3;
  r.reps = w.reps;
  r.latency_ms = percentile(ms, 0.5);
  r.latency_p10_ms = percentile(ms, 0.1);
  r.latency_p90_ms = percentile(ms, 0.9);
  r.wall_ms_per_inference = wall / w.reps;
  r.cpu_ms_per_inference = cpu / w.reps;

  at::Tensor y = flat_output(out);
  if (y.numel() != reference.numel())
    fail("output size changed from {} to {} values; fidelity cannot be compared", reference.numel(), y.numel());
  r.max_abs_err = reference.numel() ? (y - reference).abs().max().item<double>() : 0.0;
  double denom = y.norm().item<double>() * reference.norm().item<double>();
  r.cosine = denom > 0 ? y.dot(reference).item<double>() / denom : (y.equal(reference) ? 1.0 : 0.0);
  return r;
}

void fill_int_bounds(Workload& w, const Analysis& a) {
  int64_t vocab = 0;
  for (const auto& op : a.ops)
    if (op.kind == OpKind::Embedding) vocab = vocab ? std::min(vocab, op.weight_shape[0]) : op.weight_shape[0];
  for (auto& in : w.inputs)
    if (c10::isIntegralType(in.dtype, false) && in.high == 0) in.high = vocab ? vocab : 100;
}

nlohmann::json describe_model(const torch::jit::Module& m, const Workload& w, const std::string& path) {
  auto inputs = w.make_inputs();
  Analysis a = analyze(m, &inputs);
  return {{"path", path},
          {"workload", w.to_json()},
          {"threads", at::get_num_threads()},
          {"libtorch", TORCH_VERSION},
          {"params", a.total_params},
          {"weight_ops", a.ops.size()},
          {"macs", a.total_macs()}};
}

Report Pipeline::run(torch::jit::Module& m, Context& ctx, nlohmann::json model_info) {
  Report report;
  report.model = std::move(model_info);
  auto inputs = ctx.workload.make_inputs();
  at::Tensor reference;
  {
    torch::NoGradGuard no_grad;
    reference = flat_output(m.forward(inputs));
  }
  Metrics current = measure(m, ctx.workload, inputs, reference, "input model");
  for (size_t i = 0; i < passes_.size(); ++i) {
    Pass& pass = *passes_[i];
    PassRecord rec;
    rec.name = pass.name();
    rec.options = pass.options();
    rec.before = current;
    double cpu0 = cpu_seconds();
    auto wall0 = std::chrono::steady_clock::now();
    PassResult res = pass.run(m, ctx);
    rec.pass_wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    rec.pass_cpu_s = cpu_seconds() - cpu0;
    if (res.changed) ctx.invalidate();
    rec.stats = std::move(res.stats);
    rec.warnings = std::move(res.warnings);
    current = measure(m, ctx.workload, inputs, reference, fmt::format("after {}. {}", i + 1, rec.name));
    rec.after = current;
    report.passes.push_back(std::move(rec));
  }
  return report;
}

}  // namespace joule
