#include "compress/pipeline/measure.h"

#include <ATen/Parallel.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <set>

#include "compress/base/error.h"
#include "compress/base/progress.h"
#include "compress/io/model_io.h"
#include "compress/ops/schema.h"

namespace joule {

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

double cpu_seconds() {
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

std::vector<energy::OpCost> op_costs(const torch::jit::Module& m, const Analysis& a) {
  std::vector<energy::OpCost> out;
  for (const auto& op : a.ops) {
    if (op.calls == 0) continue;
    at::Tensor w = get_tensor(m, op.weight);
    energy::OpCost c;
    c.name = op.weight;
    try {
      // A packed op multiplies in its format's compute type (W8A8: int8 x int8; W4 and 2:4: float32).
      const ops::PackedLinearOp* packed = op.quant.empty() ? nullptr : ops::find_packed_linear_op_by_quant(op.quant);
      c.dtype = energy::dtype_from_name(packed ? packed->mac_dtype : c10::toString(w.scalar_type()));
    } catch (const std::invalid_argument&) {
      c.dtype = energy::DType::F32;
    }
    int64_t bytes = static_cast<int64_t>(w.nbytes());
    for (const auto& t : op.quant_tensors) bytes += static_cast<int64_t>(get_tensor(m, t).nbytes());
    if (!op.bias.empty()) bytes += static_cast<int64_t>(get_tensor(m, op.bias).nbytes());
    c.macs = double(op.macs);
    c.weight_bytes = double(bytes) * double(op.calls);
    c.act_bytes = double(op.act_bytes);
    c.density = op.quant.empty() && w.numel() ? double(w.count_nonzero().item<int64_t>()) / double(w.numel()) : 1.0;
    out.push_back(c);
  }
  return out;
}

std::vector<EnergyFigure> measure_energy(torch::jit::Module& m, const std::vector<c10::IValue>& inputs,
                                         const energy::Session& session, double latency_ms, double dram_bytes,
                                         const std::string& label) {
  const auto& meters = session.meters();
  int windows = std::max(2, session.settings().windows);
  // Each window repeats the workload until it is long enough for the slowest meter (NVML's counter
  // updates every ~100 ms): a short window is never reported as zero.
  int64_t per_window = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(session.window_s() * 1e3 / std::max(latency_ms, 1e-3))));
  std::vector<std::vector<double>> samples(meters.size());
  std::vector<double> rel(meters.size(), 0);
  torch::NoGradGuard no_grad;
  Progress bar("energy " + label, windows);
  for (int k = 0; k < windows; ++k, bar.tick()) {
    for (auto& mt : meters) mt->start();
    for (int64_t i = 0; i < per_window; ++i) m.forward(inputs);
    energy::WindowInfo info{dram_bytes * double(per_window)};
    for (size_t j = 0; j < meters.size(); ++j) {
      energy::Reading r = meters[j]->stop(info);
      samples[j].push_back(r.joules / double(per_window));
      rel[j] = r.uncertainty_rel;
    }
  }
  std::vector<EnergyFigure> out;
  for (size_t j = 0; j < meters.size(); ++j) {
    energy::Stats st = energy::mean_ci95(samples[j]);
    out.push_back({meters[j]->source(), meters[j]->measured(), st.mean, st.ci95, rel[j], windows, per_window, nullptr});
  }
  return out;
}

const char* const kNoWorkload =
    "no workload (the model carries none, and no --input-shape or recipe workload was given; the passes need none)";

namespace {

// Non-zero weights of a packed linear, read from its codes: int8 and 2:4 values are zero where the weight is; a
// W4 weight is zero where its code equals its group's zero point.
int64_t packed_nonzeros(const torch::jit::Module& m, const WeightOp& op) {
  at::Tensor q = get_tensor(m, op.weight);
  if (op.quant != "w4" || op.quant_tensors.size() < 2) return q.count_nonzero().item<int64_t>();
  const int64_t N = q.size(0), K = op.logical_weights / std::max<int64_t>(N, 1);
  at::Tensor zeros = get_tensor(m, op.quant_tensors[1]).to(at::kInt);  // [N, groups]: (scales, zeros) follow qweight
  const int64_t groups = zeros.size(1);
  int64_t group = 2;  // the power of two with ceil(K / group) == groups (unique when groups > 1)
  while (groups > 1 && (K + group - 1) / group > groups) group *= 2;
  at::Tensor qi = q.to(at::kInt);
  at::Tensor codes = at::stack({qi.bitwise_and(15), qi.bitwise_right_shift(4)}, 2).reshape({N, -1}).narrow(1, 0, K);
  at::Tensor zero_of_k = zeros.repeat_interleave(group, 1).narrow(1, 0, K);
  return codes.ne(zero_of_k).sum().item<int64_t>();
}

}  // namespace

Metrics measure_size(const torch::jit::Module& m) {
  Metrics r;
  for (const auto& p : m.named_parameters(true)) {
    r.params += p.value.numel();
    r.nonzero_params += p.value.count_nonzero().item<int64_t>();
    r.weight_bytes += static_cast<int64_t>(p.value.nbytes());
  }
  for (const auto& b : m.named_buffers(true)) r.weight_bytes += static_cast<int64_t>(b.value.nbytes());
  // Packed weights are buffers of the top module, their float parameter emptied: counted by what they hold.
  std::set<std::string> seen;
  for (const auto& op : analyze(m).ops)
    if (!op.quant.empty() && seen.insert(op.weight).second) {
      r.params += op.logical_weights;
      r.packed_params += op.logical_weights;
      r.nonzero_params += packed_nonzeros(m, op);
    }
  r.file_bytes = archive_bytes(m);
  return r;
}

Metrics measure(const torch::jit::Module& m, const Workload& w, const std::vector<c10::IValue>& inputs,
                const at::Tensor& reference, const std::string& label, const energy::Session* session) {
  Metrics r = measure_size(m);
  if (inputs.empty()) {
    r.measured = false;
    r.not_measured = kNoWorkload;
    return r;
  }

  torch::NoGradGuard no_grad;
  // What runs is the CPU lowering (float linears on oneDNN, Joule's attention: compress/ir/lower.h), a copy
  // sharing m's tensors.
  Lowered lowered = lower_for_cpu(m);
  torch::jit::Module module = lowered.module;
  r.float_linears_lowered = lowered.linears;
  r.gelu_fused = lowered.fused_gelu;
  r.attention_lowered = lowered.attention;
  r.w4_int8_activations = lowered.w4a8;
  r.w4_float_activations = lowered.w4_float;
  r.float_compute = float_compute() == FloatCompute::Bf16 && lowered.linears ? "bf16" : "fp32";
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

  if (session) {
    Analysis probed = analyze(m, &inputs);
    auto costs = op_costs(m, probed);
    double dram_bytes = 0;
    for (const auto& c : costs) dram_bytes += c.weight_bytes;
    r.energy = measure_energy(module, inputs, *session, r.latency_ms, dram_bytes, label);
    const auto& consts = session->settings().op;
    energy::OpEstimate dense = energy::estimate_dense(costs, consts), ideal = energy::estimate_ideal_sparse(costs, consts);
    double macs = 0, act = 0;
    for (const auto& c : costs) macs += c.macs, act += c.act_bytes;
    nlohmann::json detail = {{"as_executed", dense.to_json()},
                             {"ideal_sparse", ideal.to_json()},
                             {"macs", macs},
                             {"weight_bytes_read", dram_bytes},
                             {"activation_bytes", act},
                             {"scope", "weight-bearing ops only (linear, conv, matmul with a weight)"}};
    // The op model is an order-of-magnitude figure in absolute terms (45 nm constants): uncertainty 100%.
    r.energy.push_back({"estimate:op-model", false, dense.total(), 0.0, 1.0, 0, 0, detail});
  }
  return r;
}

void fill_int_bounds(Workload& w, const Analysis& a) {
  int64_t vocab = 0;
  for (const auto& op : a.ops)
    if (op.kind == OpKind::Embedding) vocab = vocab ? std::min(vocab, op.weight_shape[0]) : op.weight_shape[0];
  for (auto& in : w.inputs)
    if (c10::isIntegralType(in.dtype, false) && in.high == 0 && !in.fill) in.high = vocab ? vocab : 100;
}

nlohmann::json describe_model(const torch::jit::Module& m, const Workload& w, const std::string& path) {
  auto inputs = w.make_inputs();
  Analysis a = analyze(m, inputs.empty() ? nullptr : &inputs);
  int64_t params = a.total_params;  // float parameters, plus the packed weights of an already compressed model
  std::set<std::string> packed;
  for (const auto& op : a.ops)
    if (!op.quant.empty() && packed.insert(op.weight).second) params += op.logical_weights;
  return {{"path", path},
          {"workload", w.to_json()},
          {"threads", at::get_num_threads()},
          {"libtorch", TORCH_VERSION},
          {"params", params},
          {"weight_ops", a.ops.size()},
          {"macs", a.total_macs()}};
}

}  // namespace joule
