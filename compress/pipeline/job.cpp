#include "compress/pipeline/job.h"

#include <optional>

#include "compress/pipeline/measure.h"

namespace joule {

Report run_job(CompressionJob& job) {
  std::optional<energy::Session> session;
  if (job.measure_energy) session.emplace(job.energy);
  Context ctx;
  ctx.workload = job.workload;
  ctx.step = job.step;
  ctx.calibration = job.calibration;
  fill_int_bounds(ctx.workload, ctx.analysis(job.model));
  job.workload = ctx.workload;
  nlohmann::json info = describe_model(job.model, ctx.workload, job.model_path);
  for (const auto& [k, v] : job.info.items()) info[k] = v;
  return job.passes.run(job.model, ctx, info, session ? &*session : nullptr, job.quality.get());
}

}  // namespace joule
