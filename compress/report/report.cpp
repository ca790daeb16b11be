#include "compress/report/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "compress/energy/carbon.h"

namespace joule {

std::string pass_label(const PassRecord& p) {
  if (!p.label.empty()) return p.label;
  if (p.options.is_object() && p.options.contains("method") && p.options["method"].is_string())
    return fmt::format("{} {}", p.name, p.options["method"].get<std::string>());
  return p.name;
}

std::string skipped_summary(const std::vector<Skipped>& skipped, size_t names) {
  std::vector<std::pair<std::string, std::vector<std::string>>> by_reason;  // in order of first appearance
  size_t n = 0;
  for (const auto& s : skipped) {
    if (s.by_user) continue;
    ++n;
    auto it = std::find_if(by_reason.begin(), by_reason.end(), [&](const auto& r) { return r.first == s.reason; });
    if (it == by_reason.end()) it = by_reason.insert(by_reason.end(), {s.reason, {}});
    it->second.push_back(s.weight);
  }
  if (n == 0) return "";
  std::string out = fmt::format("skipped {} weight{}:", n, n == 1 ? "" : "s");
  for (size_t r = 0; r < by_reason.size(); ++r) {
    const auto& [reason, weights] = by_reason[r];
    out += r ? "; " : " ";
    for (size_t i = 0; i < weights.size() && i < names; ++i) out += (i ? ", " : "") + weights[i];
    if (weights.size() > names) out += fmt::format(" +{} more", weights.size() - names);
    out += " (" + reason + ")";
  }
  return out;
}

nlohmann::json figure_json(const EnergyFigure& f) {
  nlohmann::json j = {{"source", f.source},
                      {"measured", f.measured},
                      {"j_per_inference", f.j_per_inference},
                      {"ci95_j", f.ci95_j},
                      {"uncertainty_rel", f.uncertainty_rel},
                      {"windows", f.windows},
                      {"inferences_per_window", f.inferences_per_window}};
  if (!f.detail.is_null()) j["detail"] = f.detail;
  return j;
}

const EnergyFigure* find_figure(const Metrics& m, const std::string& source) {
  for (const auto& f : m.energy)
    if (f.source == source) return &f;
  return nullptr;
}

nlohmann::json metrics_json(const Metrics& m) {
  auto energy = nlohmann::json::array();
  for (const auto& f : m.energy) energy.push_back(figure_json(f));
  nlohmann::json quality = {{"reference", "pipeline input model, same inputs"}, {"max_abs_err", m.max_abs_err},
                            {"cosine", m.cosine}};
  quality.update(m.task);
  nlohmann::json j = {
      {"params", m.params},
      {"nonzero_params", m.nonzero_params},
      {"packed_params", m.packed_params},
      {"sparsity", m.params ? 1.0 - double(m.nonzero_params) / double(m.params) : 0.0},
      {"weight_bytes", m.weight_bytes},
      {"bits_per_weight", m.bits_per_weight()},
      {"file_bytes", m.file_bytes},
      {"measured", m.measured},
      {"latency_ms", m.latency_ms},
      {"latency_p10_ms", m.latency_p10_ms},
      {"latency_p90_ms", m.latency_p90_ms},
      {"latency_reps", m.reps},
      {"wall_ms_per_inference", m.wall_ms_per_inference},
      {"cpu_ms_per_inference", m.cpu_ms_per_inference},
      {"executed", {{"float_linears_on_onednn", m.float_linears_lowered}, {"gelu_fused", m.gelu_fused},
                    {"float_compute", m.float_compute},
                    {"attention_on_joule", m.attention_lowered},
                    {"w4_int8_activations", m.w4_int8_activations},
                    {"w4_float_activations", m.w4_float_activations}}},
      {"quality", quality},
      {"energy", energy},
  };
  if (!m.measured) {
    // Nothing ran: no number stands for latency, fidelity or energy (the task score may still be there).
    j["not_measured"] = m.not_measured;
    for (const char* k : {"latency_ms", "latency_p10_ms", "latency_p90_ms", "wall_ms_per_inference", "cpu_ms_per_inference"})
      j[k] = nullptr;
    j["quality"]["max_abs_err"] = nullptr, j["quality"]["cosine"] = nullptr;
  }
  return j;
}

std::string slowdown_warning(const Metrics& before, const Metrics& after, double* ratio) {
  if (ratio) *ratio = 0;
  if (!before.measured || !after.measured || !(before.latency_ms > 0)) return "";
  const double r = after.latency_ms / before.latency_ms;
  if (ratio) *ratio = r;
  if (!(after.latency_p10_ms > before.latency_p90_ms && r >= 1.05)) return "";
  return fmt::format("the model is {:.2f}x slower after this pass on the measured device ({:.3f} -> {:.3f} ms median, "
                     "p10 {:.3f} above the input's p90 {:.3f})", r, before.latency_ms, after.latency_ms,
                     after.latency_p10_ms, before.latency_p90_ms) +
         (after.w4_float_activations > 0 && after.w4_int8_activations == 0
              ? fmt::format("; its {} W4 layers ran with float activations (`joule --w4a8` runs them with int8 "
                            "ones on CPUs with AVX-512 VNNI)", after.w4_float_activations)
              : std::string());
}

std::string size_change(int64_t before, int64_t after) {
  if (before <= 0 || after <= 0) return "size unknown";
  if (before == after) return "the same size";
  return before > after ? fmt::format("{:.2f}x smaller", double(before) / double(after))
                        : fmt::format("{:.2f}x larger", double(after) / double(before));
}

static nlohmann::json or_null(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

// One source's before/after/saving/break-even/CO2e block; the headline source's block is also the
// top level of the pass's "energy" object.
static nlohmann::json source_block(const EnergyFigure& b, const EnergyFigure& a, const PassCost* cost, double grid) {
  double saved = b.j_per_inference - a.j_per_inference;
  double saved_ci = std::sqrt(b.ci95_j * b.ci95_j + a.ci95_j * a.ci95_j);
  // A saving inside the noise is not a saving: no break-even is claimed for it.
  bool significant = saved > saved_ci;
  nlohmann::json j = {
      {"source", a.source},
      {"measured", a.measured},
      {"j_per_inference_before", b.j_per_inference},
      {"j_per_inference_after", a.j_per_inference},
      {"ci95_j_per_inference_before", b.ci95_j},
      {"ci95_j_per_inference_after", a.ci95_j},
      {"saved_j_per_inference", saved},
      {"saved_ci95_j", saved_ci},
      {"saving_significant", significant},
      {"saved_percent", b.j_per_inference > 0 ? 100.0 * saved / b.j_per_inference : 0.0},
      {"grid_g_per_kwh", grid},
      {"co2e_g_per_million_before", energy::co2e_g_per_million(b.j_per_inference, grid)},
      {"co2e_g_per_million_after", energy::co2e_g_per_million(a.j_per_inference, grid)},
  };
  if (cost) {
    j["pass_cost_j"] = cost->joules;
    j["pass_cost_source"] = cost->source;
    j["co2e_g_pass"] = energy::co2e_g(cost->joules, grid);
    j["break_even_inferences"] = significant ? or_null(energy::break_even_inferences(cost->joules, saved)) : nullptr;
  }
  return j;
}

static nlohmann::json energy_json(const PassRecord& p, double grid) {
  nlohmann::json e;
  auto sources = nlohmann::json::object();
  // The pass cost comes from the headline meter; the op model has no window, so it borrows that cost.
  const PassCost* headline_cost = p.pass_cost.empty() ? nullptr : &p.pass_cost.front();
  for (const auto& a : p.after.energy) {
    const EnergyFigure* b = find_figure(p.before, a.source);
    if (!b) continue;
    const PassCost* cost = headline_cost;
    for (const auto& c : p.pass_cost)
      if (c.source == a.source) cost = &c;
    sources[a.source] = source_block(*b, a, cost, grid);
    if (e.is_null()) e = sources[a.source];  // the first figure is the headline
  }
  if (e.is_null()) e = {{"source", "none"}};
  e["sources"] = sources;
  e["wall_ms_per_inference_before"] = p.before.wall_ms_per_inference;
  e["wall_ms_per_inference_after"] = p.after.wall_ms_per_inference;
  e["cpu_ms_per_inference_before"] = p.before.cpu_ms_per_inference;
  e["cpu_ms_per_inference_after"] = p.after.cpu_ms_per_inference;
  e["pass_wall_s"] = p.pass_wall_s;
  e["pass_cpu_s"] = p.pass_cpu_s;
  return e;
}

static nlohmann::json skipped_json(const std::vector<Skipped>& skipped) {
  auto j = nlohmann::json::array();
  for (const auto& s : skipped)
    j.push_back({{"weight", s.weight}, {"reason", s.reason}, {"by_user", s.by_user}});
  return j;
}

nlohmann::json Report::to_json() const {
  nlohmann::json passes_json = nlohmann::json::array();
  for (const auto& p : passes) {
    auto costs = nlohmann::json::array();
    for (const auto& c : p.pass_cost)
      costs.push_back({{"source", c.source}, {"measured", c.measured}, {"joules", c.joules},
                       {"seconds", c.seconds}, {"padded_s", c.padded_s}});
    double ratio = 0;
    const bool slower = !slowdown_warning(p.before, p.after, &ratio).empty();
    passes_json.push_back({{"name", p.name},
                           {"latency_ratio", ratio ? nlohmann::json(ratio) : nlohmann::json(nullptr)},
                           {"slower", slower},
                           {"options", p.options},
                           {"before", metrics_json(p.before)},
                           {"after", metrics_json(p.after)},
                           {"energy", energy_json(p, grid_g_per_kwh)},
                           {"pass_cost", costs},
                           {"stats", p.stats},
                           {"skipped", skipped_json(p.skipped)},
                           {"warnings", p.warnings}});
  }
  return {{"joule_report_version", 1}, {"model", model}, {"energy_setup", energy}, {"passes", passes_json}};
}

static std::string mib(int64_t bytes) { return fmt::format("{:.2f}", double(bytes) / (1 << 20)); }

static std::string mj(const Metrics& m, size_t i) {
  if (m.energy.size() <= i) return "-";
  const auto& f = m.energy[i];
  return f.ci95_j > 0 ? fmt::format("{:.2f}±{:.2f}", f.j_per_inference * 1e3, f.ci95_j * 1e3)
                      : fmt::format("{:.3f}", f.j_per_inference * 1e3);
}

static std::string task_cell(const Metrics& m) {
  if (!m.task.contains("stsb_spearman")) return "";
  return fmt::format(" {:>8.2f} {:>8.5f}", m.task["stsb_spearman"].get<double>(), m.task.value("stsb_embedding_cosine", 1.0));
}

static std::string row(const std::string& label, const Metrics& m) {
  double sparsity = m.params ? 100.0 * (1.0 - double(m.nonzero_params) / double(m.params)) : 0.0;
  const EnergyFigure* op = find_figure(m, "estimate:op-model");
  if (!m.measured)
    return fmt::format("{:<24} {:>10} {:>6.1f} {:>6.2f} {:>8} {:>8} {:>9} {:>13} {:>9} {:>9} {:>8}{}\n", label, m.params,
                       sparsity, m.bits_per_weight(), mib(m.weight_bytes), mib(m.file_bytes), "-", "-", "-", "-", "-",
                       task_cell(m));
  return fmt::format("{:<24} {:>10} {:>6.1f} {:>6.2f} {:>8} {:>8} {:>9.3f} {:>13} {:>9} {:>9.2e} {:>8.5f}{}\n", label,
                     m.params, sparsity, m.bits_per_weight(), mib(m.weight_bytes), mib(m.file_bytes), m.latency_ms,
                     mj(m, 0), op ? fmt::format("{:.3f}", op->j_per_inference * 1e3) : "-", m.max_abs_err, m.cosine,
                     task_cell(m));
}

std::string Report::table() const {
  if (passes.empty()) return "no passes\n";
  const auto& first = passes.front().before;
  std::string headline = first.energy.empty() ? "energy" : first.energy.front().source;
  bool task = first.task.contains("stsb_spearman");
  std::string out = fmt::format("{:<24} {:>10} {:>6} {:>6} {:>8} {:>8} {:>9} {:>13} {:>9} {:>9} {:>8}{}\n", "pass",
                                "params", "zero%", "bits/w", "weights", "file", "latency", "mJ/inference", "op-model",
                                "max|err|", "cosine", task ? "    STS-B  STS-B" : "");
  out += fmt::format("{:<24} {:>10} {:>6} {:>6} {:>8} {:>8} {:>9} {:>13} {:>9} {:>9} {:>8}{}\n", "", "", "", "", "MiB",
                     "MiB", "ms p50", "±95% CI", "mJ/inf", "vs input", "vs input", task ? " spearman  emb cos" : "");
  std::string rule(task ? 137 : 119, '-');
  out += rule + "\n" + row("input model", first);
  for (size_t i = 0; i < passes.size(); ++i) {
    const auto& p = passes[i];
    out += row(fmt::format("{}. {}", i + 1, pass_label(p)), p.after);
  }
  const Metrics& last = passes.back().after;
  out += rule + "\n";
  if (!first.measured || !last.measured) {
    out += fmt::format("overall: file {} ({:.2f} -> {:.2f} MiB); latency, fidelity and energy not measured: {}\n",
                       size_change(first.file_bytes, last.file_bytes), double(first.file_bytes) / (1 << 20),
                       double(last.file_bytes) / (1 << 20), first.measured ? last.not_measured : first.not_measured);
  } else {
    const double speed = last.latency_ms > 0 ? first.latency_ms / last.latency_ms : 0.0;
    out += fmt::format("overall: file {}, latency {:.2f}x {} ({:.3f} -> {:.3f} ms)\n",
                       size_change(first.file_bytes, last.file_bytes), speed >= 1 || speed == 0 ? speed : 1 / speed,
                       speed >= 1 || speed == 0 ? "faster" : "slower", first.latency_ms, last.latency_ms);
  }
  if (!first.energy.empty() && !last.energy.empty()) {
    const EnergyFigure &fb = first.energy.front(), &fa = last.energy.front();
    double b = fb.j_per_inference, a = fa.j_per_inference;
    double cost = 0;
    for (const auto& p : passes)
      if (!p.pass_cost.empty()) cost += p.pass_cost.front().joules;
    bool significant = b - a > std::sqrt(fb.ci95_j * fb.ci95_j + fa.ci95_j * fa.ci95_j);
    auto be = significant ? energy::break_even_inferences(cost, b - a) : std::nullopt;
    out += fmt::format("energy ({}{}): {:.3f} -> {:.3f} mJ/inference ({:+.1f}%), passes cost {:.2f} J, break-even "
                       "{}, {:.2f} -> {:.2f} gCO2e per million inferences at {:.0f} g/kWh\n",
                       headline, fb.measured ? ", measured" : "", b * 1e3, a * 1e3,
                       b > 0 ? 100.0 * (a - b) / b : 0.0, cost,
                       be ? fmt::format("after {:.0f} inferences", std::ceil(*be))
                          : std::string("none (no saving beyond the 95% CI)"),
                       energy::co2e_g_per_million(b, grid_g_per_kwh), energy::co2e_g_per_million(a, grid_g_per_kwh),
                       grid_g_per_kwh);
  }
  // A training pass (distill): its run is the pass cost; per epoch and per example so runs of different lengths compare.
  for (size_t i = 0; i < passes.size(); ++i) {
    const auto& p = passes[i];
    if (!p.stats.is_object() || !p.stats.contains("training")) continue;
    const auto& t = p.stats["training"];
    const double epochs = std::max(1e-9, t.value("steps", 0.0) / std::max(1.0, t.value("steps_per_epoch", 1.0)));
    std::string energy = "energy not measured";
    if (!p.pass_cost.empty()) {
      const PassCost& c = p.pass_cost.front();
      energy = fmt::format("{:.0f} J ({}{}) = {:.0f} J/epoch, {:.1f} gCO2e", c.joules, c.source, c.measured ? ", measured" : "",
                           c.joules / epochs, energy::co2e_g(c.joules, grid_g_per_kwh));
    }
    std::string dev = t.value("best_step", int64_t{-1}) >= 0
                          ? fmt::format(", best dev {:.2f} at step {}", t.value("best_dev", 0.0), t.value("best_step", int64_t{0}))
                          : std::string();
    out += fmt::format("training ({}. {}): {} steps ({:.1f} epochs) in {:.0f} s at {:.0f} examples/s, loss {:.4g} -> {:.4g}{}; {}\n",
                       i + 1, p.name, t.value("steps", int64_t{0}), epochs, p.pass_wall_s, t.value("examples_per_s", 0.0),
                       t.value("first_loss", 0.0), t.value("last_loss", 0.0), dev, energy);
  }
  for (const auto& p : passes)
    for (const auto& w : p.warnings) out += fmt::format("warning ({}): {}\n", p.name, w);
  return out;
}

}  // namespace joule
