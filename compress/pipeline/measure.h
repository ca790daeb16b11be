// Measurement of one model state on the fixed workload: size (params, non-zeros, weight and archive bytes),
// latency (median of timed repetitions after warm-up), fidelity against a reference output, and energy per
// inference from every meter of an energy session (windows of repeated inferences, mean and 95% CI) plus the
// op model. The pipeline measures before the first pass and after each; `joule energy` measures one model.
#pragma once
#include <torch/script.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compress/energy/op_model.h"
#include "compress/energy/session.h"
#include "compress/ir/graph.h"
#include "compress/ir/lower.h"
#include "compress/ir/workload.h"
#include "compress/report/report.h"

namespace joule {

// Process CPU time (all threads), in seconds.
double cpu_seconds();

// All outputs of a forward (tensor, tuple, list, dict) flattened and concatenated as float64.
at::Tensor flat_output(const c10::IValue& out);

// Size (every weight counted whatever its storage, packed ones by their logical [N, K]), latency and fidelity;
// with a session also energy per inference from every meter (windows of repeated inferences, mean and 95% CI) and
// the op model. A workload without inputs measures the size only (Metrics::measured false).
Metrics measure_size(const torch::jit::Module& m);
Metrics measure(const torch::jit::Module& m, const Workload& w, const std::vector<c10::IValue>& inputs,
                const at::Tensor& reference, const std::string& label, const energy::Session* session = nullptr);

// The op model's view of the model: one OpCost per weight op that ran on the workload.
std::vector<energy::OpCost> op_costs(const torch::jit::Module& m, const Analysis& probed);

// Joules per inference from every meter of the session, `windows` windows of repeated inferences each.
std::vector<EnergyFigure> measure_energy(torch::jit::Module& m, const std::vector<c10::IValue>& inputs,
                                         const energy::Session& session, double latency_ms, double dram_bytes,
                                         const std::string& label);

// Why a run without a workload measured size only (Metrics::not_measured).
extern const char* const kNoWorkload;

// Integer inputs without an explicit upper bound get the smallest embedding table of the model (token ids
// must index every table), or 100 when the model has none.
void fill_int_bounds(Workload& w, const Analysis& a);

// Model-level facts for the report: weight ops, params, MACs on the workload.
nlohmann::json describe_model(const torch::jit::Module& m, const Workload& w, const std::string& path);

}  // namespace joule
