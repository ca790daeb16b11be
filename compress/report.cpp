#include "compress/report.h"

#include <fmt/format.h>

namespace joule {

nlohmann::json metrics_json(const Metrics& m) {
  return {
      {"params", m.params},
      {"nonzero_params", m.nonzero_params},
      {"sparsity", m.params ? 1.0 - double(m.nonzero_params) / double(m.params) : 0.0},
      {"weight_bytes", m.weight_bytes},
      {"file_bytes", m.file_bytes},
      {"latency_ms", m.latency_ms},
      {"latency_p10_ms", m.latency_p10_ms},
      {"latency_p90_ms", m.latency_p90_ms},
      {"latency_reps", m.reps},
      {"quality", {{"reference", "pipeline input model, same inputs"}, {"max_abs_err", m.max_abs_err},
                   {"cosine", m.cosine}}},
  };
}

static nlohmann::json energy_json(const PassRecord& p) {
  // Time only for now: the energy meters (RAPL, NVML, estimates) fill joules in these same objects.
  return {
      {"status", "time-only: no joule figures yet"},
      {"wall_ms_per_inference_before", p.before.wall_ms_per_inference},
      {"wall_ms_per_inference_after", p.after.wall_ms_per_inference},
      {"cpu_ms_per_inference_before", p.before.cpu_ms_per_inference},
      {"cpu_ms_per_inference_after", p.after.cpu_ms_per_inference},
      {"pass_wall_s", p.pass_wall_s},
      {"pass_cpu_s", p.pass_cpu_s},
  };
}

nlohmann::json Report::to_json() const {
  nlohmann::json passes_json = nlohmann::json::array();
  for (const auto& p : passes) {
    passes_json.push_back({{"name", p.name},
                           {"options", p.options},
                           {"before", metrics_json(p.before)},
                           {"after", metrics_json(p.after)},
                           {"energy", energy_json(p)},
                           {"stats", p.stats},
                           {"warnings", p.warnings}});
  }
  return {{"joule_report_version", 1}, {"model", model}, {"passes", passes_json}};
}

static std::string mib(int64_t bytes) { return fmt::format("{:.2f}", double(bytes) / (1 << 20)); }

static std::string row(const std::string& label, const Metrics& m) {
  double sparsity = m.params ? 100.0 * (1.0 - double(m.nonzero_params) / double(m.params)) : 0.0;
  return fmt::format("{:<26} {:>11} {:>7.1f} {:>9} {:>9} {:>10.3f} {:>10.3f} {:>10.2e} {:>9.6f}\n", label,
                     m.params, sparsity, mib(m.weight_bytes), mib(m.file_bytes), m.latency_ms,
                     m.cpu_ms_per_inference, m.max_abs_err, m.cosine);
}

std::string Report::table() const {
  std::string out = fmt::format("{:<26} {:>11} {:>7} {:>9} {:>9} {:>10} {:>10} {:>10} {:>9}\n", "pass", "params",
                                "zero%", "weights", "file", "latency", "cpu/inf", "max|err|", "cosine");
  out += fmt::format("{:<26} {:>11} {:>7} {:>9} {:>9} {:>10} {:>10} {:>10} {:>9}\n", "", "", "", "MiB", "MiB",
                     "ms (p50)", "ms", "vs input", "vs input");
  out += std::string(110, '-') + "\n";
  if (!passes.empty()) out += row("input model", passes.front().before);
  for (size_t i = 0; i < passes.size(); ++i) {
    const auto& p = passes[i];
    std::string opts = p.options.is_object() && p.options.contains("method")
                           ? fmt::format(" {}", p.options["method"].get<std::string>())
                           : "";
    out += row(fmt::format("{}. {}{}", i + 1, p.name, opts), p.after);
  }
  if (!passes.empty()) {
    const Metrics &a = passes.front().before, &b = passes.back().after;
    out += std::string(110, '-') + "\n";
    out += fmt::format("overall: file {:.2f}x smaller, latency {:.2f}x ({:.3f} -> {:.3f} ms), cpu time/inference "
                       "{:.3f} -> {:.3f} ms (energy meters: not yet; time only)\n",
                       b.file_bytes ? double(a.file_bytes) / double(b.file_bytes) : 0.0,
                       b.latency_ms > 0 ? a.latency_ms / b.latency_ms : 0.0, a.latency_ms, b.latency_ms,
                       a.cpu_ms_per_inference, b.cpu_ms_per_inference);
  }
  for (const auto& p : passes)
    for (const auto& w : p.warnings) out += fmt::format("warning ({}): {}\n", p.name, w);
  return out;
}

}  // namespace joule
