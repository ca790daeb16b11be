// A compression job: the library-level description of one run, which the CLI, benchmarks, tests and (later)
// the Python API fill in: the model and its workload, the passes, how to measure (energy settings, a task
// probe), where calibration text comes from, and the teacher and data a distillation pass trains from.
// run_job() runs it; writing outputs (archive, HF folder, report files) is the caller's.
#pragma once
#include <torch/script.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "compress/analysis/cache.h"
#include "compress/energy/session.h"
#include "compress/ir/workload.h"
#include "compress/pipeline/pipeline.h"
#include "compress/report/report.h"
#include "compress/train/task.h"

namespace joule {

struct CompressionJob {
  // What to compress. `model` is changed in place.
  torch::jit::Module model;
  std::string model_path;  // reported as model.path
  Workload workload;       // integer inputs without a bound get the model's smallest embedding table
  Pipeline passes;

  // How to measure.
  bool measure_energy = true;  // false: no energy session (no meters, no pass cost)
  energy::Settings energy;
  std::shared_ptr<QualityProbe> quality;  // null: outputs only (max |err|, cosine)
  int64_t step = 0;                       // training step, for gradual sparsity schedules

  // Inputs of passes that need data. Text calibration files need the model's tokenizer (models/job_hooks.h).
  std::shared_ptr<const CalibrationSource> calibration;
  // Distillation: what the model family adds (data, students, dev score; models/distill_task.h). The teacher is
  // the job's input model unless the pass names one.
  std::shared_ptr<train::DistillTask> distill;

  nlohmann::json info = nlohmann::json::object();  // extra keys of report.model (e.g. "recipe")
};

// Runs the job's passes with measurement before and after each; returns the report.
Report run_job(CompressionJob& job);

}  // namespace joule
