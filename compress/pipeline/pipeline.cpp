#include "compress/pipeline/pipeline.h"

#include <fmt/format.h>

#include <chrono>
#include <thread>

#include "compress/base/error.h"
#include "compress/pipeline/measure.h"

namespace joule {

Report Pipeline::run(torch::jit::Module& m, Context& ctx, nlohmann::json model_info, const energy::Session* session,
                     QualityProbe* quality) {
  Report report;
  report.model = std::move(model_info);
  if (session) {
    report.energy = session->describe();
    report.grid_g_per_kwh = session->settings().grid.g_per_kwh;
  }
  auto inputs = ctx.workload.make_inputs();
  for (const auto& p : passes_)
    if (inputs.empty() && p->needs_workload())
      fail("pass '{}' needs a workload and the model carries none: pass --input-shape (e.g. 1x3x224x224, or "
           "i64:1x128 for token ids)", p->label());
  for (const auto& p : passes_) p->check(m, ctx);
  at::Tensor reference;
  if (!inputs.empty()) {  // no workload: passes that need none run, and only sizes are measured
    torch::NoGradGuard no_grad;
    reference = flat_output(lower_for_cpu(m).module.forward(inputs));  // as measure() runs it
  }
  Metrics current = measure(m, ctx.workload, inputs, reference, "input model", session);
  if (quality) current.task = quality->score(m);
  for (size_t i = 0; i < passes_.size(); ++i) {
    Pass& pass = *passes_[i];
    PassRecord rec;
    rec.name = pass.name();
    rec.label = pass.label();
    rec.options = pass.options();
    rec.before = current;
    double cpu0 = cpu_seconds();
    auto wall0 = std::chrono::steady_clock::now();
    if (session)
      for (auto& mt : session->meters()) mt->start();
    PassResult res = pass.run(m, ctx);
    rec.pass_wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    rec.pass_cpu_s = cpu_seconds() - cpu0;
    if (session) {
      // Measured meters cannot resolve a window shorter than their update period: keep the window open
      // (idle) until it is long enough, and say how long that padding was.
      double padded = 0;
      bool any_measured = false;
      for (auto& mt : session->meters()) any_measured |= mt->measured();
      if (any_measured && rec.pass_wall_s < session->window_s()) {
        padded = session->window_s() - rec.pass_wall_s;
        std::this_thread::sleep_for(std::chrono::duration<double>(padded));
      }
      for (auto& mt : session->meters()) {
        energy::Reading r = mt->stop({});
        rec.pass_cost.push_back({mt->source(), mt->measured(), r.joules, r.seconds, mt->measured() ? padded : 0.0});
      }
    }
    if (res.changed) ctx.invalidate();
    rec.stats = std::move(res.stats);
    rec.warnings = std::move(res.warnings);
    rec.skipped = std::move(res.skipped);
    // What the pass left alone, in one line on stderr (and in the report): never a silent partial result.
    if (std::string line = skipped_summary(rec.skipped); !line.empty()) {
      fmt::print(stderr, "joule: warning: {}: {}\n", rec.label, line);
      rec.warnings.push_back(line);
    }
    current = measure(m, ctx.workload, inputs, reference, fmt::format("after {}. {}", i + 1, rec.name), session);
    if (quality) current.task = quality->score(m);
    rec.after = current;
    // A compression that costs speed on this device is said, not left for the user to find in the table.
    if (std::string slow = slowdown_warning(rec.before, rec.after); !slow.empty()) {
      fmt::print(stderr, "joule: warning: {}: {}\n", rec.label, slow);
      rec.warnings.push_back(slow);
    }
    report.passes.push_back(std::move(rec));
  }
  return report;
}

}  // namespace joule
