// `joule inspect MODEL`: the weight-bearing ops, their shapes and MACs on the workload.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <numeric>
#include <set>

#include "compress/pipeline/measure.h"
#include "tools/cli.h"

namespace joule::cli {
namespace {

int cmd_inspect(const std::string& path, const MeasureFlags& f, bool json) {
  LoadedModel lm = load_any(path);
  Workload w;
  bool have_workload = !f.input_shapes.empty() || !lm.workload.is_null();
  if (have_workload) w = f.workload(lm, nullptr, path);
  fill_int_bounds(w, analyze(lm.module));
  auto inputs = w.make_inputs();
  Analysis a = analyze(lm.module, have_workload ? &inputs : nullptr);
  if (json) {
    auto ops = nlohmann::json::array();
    for (const auto& op : a.ops)
      ops.push_back({{"module", op.module}, {"weight", op.weight}, {"bias", op.bias}, {"op", op_kind_name(op.kind)},
                     {"weight_shape", op.weight_shape}, {"input_shape", op.input_shape},
                     {"output_shape", op.output_shape}, {"calls", op.calls}, {"macs", op.macs},
                     {"derived", op.derived}});
    nlohmann::json out = {{"model", path}, {"params", a.total_params}, {"macs", a.total_macs()},
                          {"probed", a.probed}, {"weight_ops", ops}};
    if (have_workload) out["workload"] = w.to_json();
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  auto shape = [](const std::vector<int64_t>& s) { return s.empty() ? std::string("-") : fmt::format("{}", fmt::join(s, "x")); };
  fmt::print("{}: {} weight ops, {} parameters{}\n", path, a.ops.size(), a.total_params,
             have_workload ? fmt::format(", workload {}", w.to_json()["inputs"].dump()) : " (no workload: no MACs)");
  fmt::print("{:>3}  {:<40} {:<9} {:<16} {:<18} {:<18} {:>12}\n", "#", "weight", "op", "weight shape", "input",
             "output", "MACs");
  int64_t weight_params = 0;
  std::set<std::string> counted;
  for (size_t i = 0; i < a.ops.size(); ++i) {
    const auto& op = a.ops[i];
    std::string macs = !a.probed ? "-" : op.calls == 0 ? "not run" : fmt::format("{}", op.macs);
    fmt::print("{:>3}  {:<40} {:<9} {:<16} {:<18} {:<18} {:>12}\n", i, op.weight + (op.derived ? " (slice)" : ""),
               op_kind_name(op.kind), shape(op.weight_shape), shape(op.input_shape), shape(op.output_shape), macs);
    if (counted.insert(op.weight).second)
      weight_params += std::accumulate(op.weight_shape.begin(), op.weight_shape.end(), int64_t{1}, std::multiplies<>());
  }
  fmt::print("total: {} parameters ({} in weight-op weights), {} MACs ({:.3f} GMACs) per forward\n",
             a.total_params, weight_params, a.total_macs(), double(a.total_macs()) * 1e-9);
  return 0;
}

}  // namespace

Command add_inspect(CLI::App& app) {
  struct State {
    std::string model;
    MeasureFlags measure;
    bool json = false;
  };
  auto st = std::make_shared<State>();
  CLI::App* sub = app.add_subcommand("inspect", "list the weight-bearing ops, their shapes and MACs");
  sub->add_option("model", st->model, "TorchScript model (.pt) or HF model folder")->required();
  st->measure.add_workload_to(sub, false);
  sub->add_flag("--json", st->json, "print JSON instead of a table");
  return {sub, [st] { return cmd_inspect(st->model, st->measure, st->json); }};
}

}  // namespace joule::cli
