// `joule energy MODEL`: one model's energy per inference, every source side by side, with what is unavailable
// and why.
#include <fmt/format.h>

#include <iostream>

#include "compress/pipeline/measure.h"
#include "tools/cli.h"

namespace joule::cli {
namespace {

int cmd_energy(const std::string& path, const MeasureFlags& f, bool json) {
  energy::Session session(f.energy_settings());
  LoadedModel lm = load_any(path);
  Workload w = f.workload(lm, nullptr, path);
  fill_int_bounds(w, analyze(lm.module));
  auto inputs = w.make_inputs();
  at::Tensor ref;
  {
    torch::NoGradGuard g;
    ref = flat_output(lower_for_cpu(lm.module).module.forward(inputs));  // as measure() runs it
  }
  const std::string busy = energy::busy_machine_warning(at::get_num_threads());
  if (!busy.empty()) fmt::print(stderr, "joule: warning: {}\n", busy);
  Metrics m = measure(lm.module, w, inputs, ref, "model", &session);
  double grid = session.settings().grid.g_per_kwh;
  if (json) {
    nlohmann::json out = {{"model", path}, {"workload", w.to_json()}, {"latency_ms", m.latency_ms},
                          {"cpu_ms_per_inference", m.cpu_ms_per_inference}, {"energy_setup", session.describe()}};
    if (!busy.empty()) out["machine_busy"] = busy;
    for (const auto& e : m.energy) {
      auto j = figure_json(e);
      j["co2e_g_per_million"] = energy::co2e_g_per_million(e.j_per_inference, grid);
      out["energy"].push_back(j);
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  fmt::print("{}: workload {}, latency {:.3f} ms (median of {}), CPU {:.3f} ms per inference\n", path,
             w.to_json()["inputs"].dump(), m.latency_ms, m.reps, m.cpu_ms_per_inference);
  fmt::print("{:<22} {:<9} {:>14} {:>12} {:>10} {:>16}  {}\n", "source", "kind", "mJ/inference", "±95% CI", "method ±",
             "gCO2e/1M inf", "how");
  for (const auto& e : m.energy) {
    std::string how = e.source == "estimate:op-model" ? "MACs x pJ/MAC + bytes x pJ/byte (Horowitz 2014, 45 nm)" : "";
    for (const auto& mt : session.meters())
      if (mt->source() == e.source) how = mt->method();
    fmt::print("{:<22} {:<9} {:>14.4f} {:>12.4f} {:>9.0f}% {:>16.3f}  {}\n", e.source,
               e.measured ? "measured" : "estimate", e.j_per_inference * 1e3, e.ci95_j * 1e3, e.uncertainty_rel * 100,
               energy::co2e_g_per_million(e.j_per_inference, grid), how);
  }
  for (const auto& u : session.unavailable()) fmt::print("{:<22} {:<9} {}\n", u.source, "n/a", u.why);
  const auto& g = session.settings().grid;
  fmt::print("CPU: {} ({:.2f} W per busy core: {})\ngrid: {} {:.0f} gCO2e/kWh ({}{})\n", session.cpu().model,
             session.cpu().watts_per_core, session.cpu().source, g.region, g.g_per_kwh, g.source,
             g.year ? fmt::format(", {}", g.year) : "");
  return 0;
}

}  // namespace

Command add_energy(CLI::App& app) {
  struct State {
    std::string model;
    MeasureFlags measure;
    bool json = false;
  };
  auto st = std::make_shared<State>();
  CLI::App* sub = app.add_subcommand("energy", "measure one model's energy per inference: every source side by side");
  sub->add_option("model", st->model, "TorchScript model (.pt) or HF model folder")->required();
  st->measure.add_workload_to(sub, true);
  sub->add_flag("--json", st->json, "print JSON instead of a table");
  st->measure.add_energy_to(sub);
  return {sub, [st] { return cmd_energy(st->model, st->measure, st->json); }};
}

}  // namespace joule::cli
