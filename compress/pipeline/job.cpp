#include "compress/pipeline/job.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <optional>
#include <sstream>

#include "compress/pipeline/measure.h"

namespace joule {

Report run_job(CompressionJob& job) {
  std::optional<energy::Session> session;
  if (job.measure_energy) session.emplace(job.energy);
  Context ctx;
  ctx.workload = job.workload;
  ctx.step = job.step;
  ctx.calibration = job.calibration;
  ctx.distill = job.distill;
  for (size_t i = 0; i < job.passes.size() && !ctx.teacher; ++i)
    if (job.passes.pass(i).needs_teacher()) {
      // A copy, as passes before it change the model. Through the serializer rather than Module::deepcopy(): a
      // deep copy keeps the original's class type, and the passes rewrite `forward` on the type, so the teacher
      // would run the student's rewritten graph. (The "~35x slower" once blamed on it was CPU contention:
      // docs/EXECUTOR.md.)
      std::stringstream buf;
      job.model.save(buf);
      ctx.teacher = torch::jit::load(buf);
    }
  fill_int_bounds(ctx.workload, ctx.analysis(job.model));
  job.workload = ctx.workload;
  nlohmann::json info = describe_model(job.model, ctx.workload, job.model_path);
  for (const auto& [k, v] : job.info.items()) info[k] = v;
  if (session) {
    std::string busy = energy::busy_machine_warning(at::get_num_threads());
    if (!busy.empty()) fmt::print(stderr, "joule: warning: {}\n", busy);
    Report report = job.passes.run(job.model, ctx, info, &*session, job.quality.get());
    if (!busy.empty()) report.energy["machine_busy"] = busy;
    return report;
  }
  return job.passes.run(job.model, ctx, info, nullptr, job.quality.get());
}

}  // namespace joule
