// Shared CLI pieces: pass-spec flags, the measurement flags, and the compression job with its outputs.
#include <fmt/format.h>

#include <fstream>
#include <iostream>

#include "compress/base/error.h"
#include "compress/pipeline/job.h"
#include "models/bert.h"
#include "models/job_hooks.h"
#include "tools/cli.h"

namespace joule::cli {

SpecFlags::SpecFlags(CLI::App* app, const PassSpec& spec) {
  for (const auto& o : spec.options) {
    if (!o.cli) continue;
    Flag& f = flags_.emplace_back();
    f.spec = &o;
    std::string names = o.short_flag.empty() ? flag_name(o) : flag_name(o) + "," + o.short_flag;
    std::string help = help_line(o);
    switch (o.type) {
      case OptType::Bool: f.option = app->add_flag(names, f.b, help); break;
      case OptType::Int: f.option = app->add_option(names, f.i, help); break;
      case OptType::Float: f.option = app->add_option(names, f.d, help); break;
      case OptType::String: f.option = app->add_option(names, f.s, help); break;
      case OptType::Globs: f.option = app->add_option(names, f.list, help)->allow_extra_args(false); break;
      case OptType::Object: break;  // recipe only
    }
  }
}

nlohmann::json SpecFlags::values() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& f : flags_) {
    if (!f.option || f.option->count() == 0) continue;
    const std::string& k = f.spec->name;
    switch (f.spec->type) {
      case OptType::Bool: j[k] = f.b; break;
      case OptType::Int: j[k] = f.i; break;
      case OptType::Float: j[k] = f.d; break;
      case OptType::String: j[k] = f.s; break;
      case OptType::Globs: j[k] = f.list; break;
      case OptType::Object: break;
    }
  }
  return j;
}

void MeasureFlags::add_workload_to(CLI::App* app, bool timing) {
  app->add_option("--input-shape,-i", input_shapes,
                  "workload input, repeat per model input: [dtype:]D0xD1..[:high], e.g. 1x784 or i64:1x128")
      ->allow_extra_args(false);
  if (!timing) return;
  app->add_option("--warmup", warmup, "untimed runs before measuring (default 3)");
  app->add_option("--reps", reps, "timed runs; latency is their median (default 20)");
}

void MeasureFlags::add_to(CLI::App* app) {
  add_workload_to(app, true);
  app->add_option("--seed", seed, "seed of the generated workload inputs");
  app->add_option("--step", step, "training step, for gradual (cubic) sparsity schedules in fine-tuning loops");
  app->add_option("--report", report, "write the JSON report here (schema: docs/REPORT.md)");
  app->add_option("--plot", plot, "write an SVG plot of size, latency, energy and quality per pass here");
  app->add_option("--stsb", stsb, "sentence encoders: STS-B TSV to score (Spearman x100) before and after each pass");
  app->add_option("--export-hf", export_hf, "sentence encoders: also write the result as an HF folder (safetensors + config)");
  add_energy_to(app);
}

void MeasureFlags::add_energy_to(CLI::App* app) {
  app->add_option("--cpu-watts", cpu_watts, "active power per busy core for the time x power estimate (default: CPU TDP / cores)");
  auto* g = app->add_option("--grid-intensity", grid_intensity, "grid carbon intensity, gCO2e/kWh (default: world average)");
  app->add_option("--region", region, "grid carbon intensity of a region: WORLD, EU, US, CN, IN, DE, FR, GB, ...")->excludes(g);
  app->add_option("--op-constants", op_constants, "JSON file overriding the op model's pJ constants (docs/ENERGY.md)");
  app->add_option("--energy-windows", energy_windows, "energy measurement windows per model (default 8; CI from their spread)");
}

energy::Settings MeasureFlags::energy_settings() const {
  energy::Settings s;
  if (cpu_watts < 0) fail("--cpu-watts must be positive");
  if (energy_windows < 2) fail("--energy-windows must be at least 2 (a confidence interval needs two windows)");
  s.cpu_watts = cpu_watts;
  s.windows = energy_windows;
  try {
    if (grid_intensity >= 0) s.grid = energy::grid_custom(grid_intensity);
    if (!region.empty()) s.grid = energy::grid_for_region(region);
  } catch (const std::invalid_argument& e) {
    fail("{}", e.what());
  }
  if (!op_constants.empty()) {
    std::ifstream f(op_constants);
    if (!f) fail("op constants '{}': no such file", op_constants);
    try {
      s.op = energy::OpModelConstants::from_json(nlohmann::json::parse(f));
    } catch (const std::exception& e) {
      fail("op constants '{}': {}", op_constants, first_line(e.what()));
    }
  }
  return s;
}

Workload MeasureFlags::workload(const LoadedModel& lm, const nlohmann::json& recipe_workload, const std::string& model) const {
  Workload w;
  if (!input_shapes.empty()) {
    for (const auto& s : input_shapes) w.inputs.push_back(parse_input_spec(s));
  } else if (!recipe_workload.is_null()) {
    w = Workload::from_json(recipe_workload);
  } else if (!lm.workload.is_null()) {
    w = Workload::from_json(lm.workload);
  } else {
    fail("model '{}' carries no workload: pass --input-shape (e.g. 1x784, or i64:1x128 for token ids)", model);
  }
  if (warmup >= 0) w.warmup = warmup;
  if (reps >= 0) w.reps = reps;
  if (reps == 0) fail("--reps must be at least 1");
  if (!input_shapes.empty()) w.seed = seed;
  return w;
}

LoadedModel load_any(const std::string& path) {
  return models::is_hf_dir(path) ? models::load_hf_as_model(path) : load_model(path);
}

int compress_model(Pipeline pipeline, const std::string& model, const std::string& out, const MeasureFlags& f,
                   const nlohmann::json& recipe_workload, const std::string& recipe_path) {
  if (models::is_hf_dir(out)) fail("output '{}' is a model folder; -o takes a .pt path (use --export-hf DIR)", out);
  check_output_path(out, model);
  if (!f.report.empty()) check_output_path(f.report, model);
  if (!f.plot.empty()) check_output_path(f.plot, model);
  CompressionJob job;
  job.energy = f.energy_settings();
  LoadedModel lm = load_any(model);
  std::optional<models::SentenceEncoder> encoder;
  if (!f.stsb.empty() || !f.export_hf.empty()) encoder = models::encoder_from_archive(lm, model);
  if (!f.stsb.empty()) job.quality = std::make_shared<models::StsbProbe>(*encoder, text::load_stsb(f.stsb));
  job.calibration = std::make_shared<models::TextCalibration>(lm, model);
  job.model = lm.module;
  job.model_path = model;
  job.workload = f.workload(lm, recipe_workload, model);
  job.step = f.step;
  job.passes = std::move(pipeline);
  if (!recipe_path.empty()) job.info["recipe"] = recipe_path;
  Report report = run_job(job);
  std::cout << report.table();
  nlohmann::json provenance = lm.provenance.is_null() ? nlohmann::json{{"passes", nlohmann::json::array()}} : lm.provenance;
  for (const auto& p : report.passes) provenance["passes"].push_back({{"name", p.name}, {"options", p.options}});
  if (!f.export_hf.empty()) models::hf_export_config(*encoder, job.model, f.export_hf);  // refuse before writing
  save_model(job.model, out, model, job.workload.to_json(), provenance, lm.extra);
  fmt::print("wrote {}\n", out);
  if (!f.export_hf.empty()) {
    models::save_hf_encoder(*encoder, job.model, f.export_hf);
    fmt::print("wrote {} (model.safetensors, config.json, vocab.txt, sentence-transformers modules)\n", f.export_hf);
  }
  if (!f.report.empty()) {
    write_file_atomic(f.report, report.to_json().dump(2) + "\n");
    fmt::print("wrote {}\n", f.report);
  }
  if (!f.plot.empty()) {
    write_file_atomic(f.plot, report.svg());
    fmt::print("wrote {}\n", f.plot);
  }
  return 0;
}

}  // namespace joule::cli
