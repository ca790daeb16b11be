// The joule CLI: inspect, prune, run RECIPE, make-model. Every error is one line on stderr
// ("joule: error: ...") with a non-zero exit; the input model is never modified; outputs are atomic.
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <numeric>
#include <optional>
#include <set>

#include "compress/base/error.h"
#include "compress/io/model_io.h"
#include "compress/passes/prune.h"
#include "compress/pipeline/pipeline.h"
#include "compress/passes/registry.h"
#include "models/bert.h"
#include "models/builders.h"

namespace {
using namespace joule;

struct MeasureFlags {
  std::vector<std::string> input_shapes;
  int warmup = -1, reps = -1;
  uint64_t seed = 0;
  int64_t step = 0;
  std::string report, plot, stsb, export_hf;
  // energy
  double cpu_watts = 0, grid_intensity = -1;
  std::string region, op_constants;
  int energy_windows = 8;

  void add_to(CLI::App* app) {
    app->add_option("--input-shape,-i", input_shapes,
                    "workload input, repeat per model input: [dtype:]D0xD1..[:high], e.g. 1x784 or i64:1x128")
        ->allow_extra_args(false);
    app->add_option("--warmup", warmup, "untimed runs before measuring (default 3)");
    app->add_option("--reps", reps, "timed runs; latency is their median (default 20)");
    app->add_option("--seed", seed, "seed of the generated workload inputs");
    app->add_option("--step", step, "training step, for gradual (cubic) sparsity schedules in fine-tuning loops");
    app->add_option("--report", report, "write the JSON report here (schema: docs/REPORT.md)");
    app->add_option("--plot", plot, "write an SVG plot of size, latency, energy and quality per pass here");
    app->add_option("--stsb", stsb, "sentence encoders: STS-B TSV to score (Spearman x100) before and after each pass");
    app->add_option("--export-hf", export_hf, "sentence encoders: also write the result as an HF folder (safetensors + config)");
    add_energy_to(app);
  }

  void add_energy_to(CLI::App* app) {
    app->add_option("--cpu-watts", cpu_watts, "active power per busy core for the time x power estimate (default: CPU TDP / cores)");
    auto* g = app->add_option("--grid-intensity", grid_intensity, "grid carbon intensity, gCO2e/kWh (default: world average)");
    app->add_option("--region", region, "grid carbon intensity of a region: WORLD, EU, US, CN, IN, DE, FR, GB, ...")->excludes(g);
    app->add_option("--op-constants", op_constants, "JSON file overriding the op model's pJ constants (docs/ENERGY.md)");
    app->add_option("--energy-windows", energy_windows, "energy measurement windows per model (default 8; CI from their spread)");
  }

  energy::Settings energy_settings() const {
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

  // CLI flags beat the recipe's workload, which beats the one carried in the model archive.
  Workload workload(const LoadedModel& lm, const nlohmann::json& recipe_workload, const std::string& model) const {
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
};

// A TorchScript archive, or a Hugging Face BERT folder (config.json + model.safetensors + vocab.txt).
LoadedModel load_any(const std::string& path) { return models::is_hf_dir(path) ? models::load_hf_as_model(path) : load_model(path); }

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

int run_pipeline(Pipeline& pipeline, const std::string& model, const std::string& out, const MeasureFlags& f,
                 const nlohmann::json& recipe_workload, const std::string& recipe_path) {
  if (models::is_hf_dir(out)) fail("output '{}' is a model folder; -o takes a .pt path (use --export-hf DIR)", out);
  check_output_path(out, model);
  if (!f.report.empty()) check_output_path(f.report, model);
  if (!f.plot.empty()) check_output_path(f.plot, model);
  energy::Session session(f.energy_settings());
  LoadedModel lm = load_any(model);
  std::optional<models::SentenceEncoder> encoder;
  if (!f.stsb.empty() || !f.export_hf.empty()) encoder = models::encoder_from_archive(lm, model);
  Context ctx;
  if (!f.stsb.empty()) {
    auto pairs = std::make_shared<std::vector<text::StsbPair>>(text::load_stsb(f.stsb));
    // Besides the score, how close each pass keeps the embeddings of the STS-B sentences to the input
    // model's (mean cosine): finer than the rank correlation, which barely moves for small changes.
    auto input_embeddings = std::make_shared<at::Tensor>();
    ctx.task_quality = [&encoder, pairs, input_embeddings](torch::jit::Module& m) {
      models::StsbScore s = models::evaluate_stsb(*encoder, m, *pairs);
      nlohmann::json q = {{"stsb_spearman", s.spearman}, {"stsb_pearson", s.pearson}, {"stsb_pairs", s.pairs}};
      if (!input_embeddings->defined()) *input_embeddings = s.embeddings;
      q["stsb_embedding_cosine"] = at::cosine_similarity(s.embeddings, *input_embeddings, 1).mean().item<double>();
      return q;
    };
  }
  // Text calibration files need the model's tokenizer: only sentence encoders have one.
  ctx.calibration_source = [&lm, &model](const std::string& file, int64_t samples) -> Batches {
    if (file.size() >= 12 && file.compare(file.size() - 12, 12, ".safetensors") == 0) return {};
    if (!lm.extra.count("joule/vocab.txt"))
      fail("calibration file '{}': text calibration needs a sentence encoder; pass a .safetensors tensor file", file);
    return models::text_calibration(models::encoder_from_archive(lm, model), file, samples);
  };
  ctx.workload = f.workload(lm, recipe_workload, model);
  ctx.step = f.step;
  fill_int_bounds(ctx.workload, ctx.analysis(lm.module));
  auto info = describe_model(lm.module, ctx.workload, model);
  if (!recipe_path.empty()) info["recipe"] = recipe_path;
  Report report = pipeline.run(lm.module, ctx, info, &session);
  std::cout << report.table();
  nlohmann::json provenance = lm.provenance.is_null() ? nlohmann::json{{"passes", nlohmann::json::array()}} : lm.provenance;
  for (const auto& p : report.passes) provenance["passes"].push_back({{"name", p.name}, {"options", p.options}});
  save_model(lm.module, out, model, ctx.workload.to_json(), provenance, lm.extra);
  fmt::print("wrote {}\n", out);
  if (!f.export_hf.empty()) {
    models::save_hf_encoder(*encoder, lm.module, f.export_hf);
    fmt::print("wrote {} (model.safetensors, config.json, vocab.txt)\n", f.export_hf);
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

// One model alone: every energy source side by side, with what is unavailable and why.
int cmd_energy(const std::string& path, const MeasureFlags& f, bool json) {
  energy::Session session(f.energy_settings());
  LoadedModel lm = load_any(path);
  Workload w = f.workload(lm, nullptr, path);
  fill_int_bounds(w, analyze(lm.module));
  auto inputs = w.make_inputs();
  at::Tensor ref;
  {
    torch::NoGradGuard g;
    ref = flat_output(lm.module.forward(inputs));
  }
  Metrics m = measure(lm.module, w, inputs, ref, "model", &session);
  double grid = session.settings().grid.g_per_kwh;
  if (json) {
    nlohmann::json out = {{"model", path}, {"workload", w.to_json()}, {"latency_ms", m.latency_ms},
                          {"cpu_ms_per_inference", m.cpu_ms_per_inference}, {"energy_setup", session.describe()}};
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

int cmd_embed(const std::string& model, const std::vector<std::string>& texts, const std::string& out) {
  models::SentenceEncoder enc = models::load_encoder(model);
  at::Tensor e = enc.embed(texts, 32, texts.size() > 64);
  nlohmann::json j = nlohmann::json::array();
  for (size_t i = 0; i < texts.size(); ++i) {
    at::Tensor row = e[int64_t(i)].contiguous();
    j.push_back({{"text", texts[i]}, {"embedding", std::vector<float>(row.data_ptr<float>(), row.data_ptr<float>() + row.numel())}});
  }
  if (!out.empty()) {
    write_file_atomic(out, j.dump() + "\n");
    fmt::print("wrote {} ({} embeddings of dimension {})\n", out, texts.size(), e.size(1));
  } else {
    for (const auto& r : j) std::cout << r.dump() << "\n";
  }
  return 0;
}

int cmd_eval_stsb(const std::string& model, const std::string& data, bool json, int64_t batch) {
  auto pairs = text::load_stsb(data);
  models::SentenceEncoder enc = models::load_encoder(model);
  if (batch < 1) fail("--batch must be at least 1");
  models::StsbScore s = models::evaluate_stsb(enc, enc.module, pairs, true, batch);
  if (json) {
    std::cout << nlohmann::json{{"model", model}, {"data", data}, {"pairs", s.pairs}, {"spearman", s.spearman},
                                {"pearson", s.pearson}}.dump(2)
              << "\n";
  } else {
    fmt::print("pairs: {}\nspearman: {:.2f}\npearson: {:.2f}\n", s.pairs, s.spearman, s.pearson);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"joule: compress PyTorch models (TorchScript) and report size, speed, fidelity and energy per pass"};
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return fmt::format("joule: error: {} (see --help)\n", e.what());
  });
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "intra-op threads for measurement (default: all cores)");

  std::string model, out, recipe;
  MeasureFlags flags;

  auto* inspect = app.add_subcommand("inspect", "list the weight-bearing ops, their shapes and MACs");
  bool inspect_json = false;
  inspect->add_option("model", model, "TorchScript model (.pt)")->required();
  inspect->add_option("--input-shape,-i", flags.input_shapes, "workload input(s), e.g. 1x128 or i64:1x128:30522")
      ->allow_extra_args(false);
  inspect->add_flag("--json", inspect_json, "print JSON instead of a table");

  auto* prune = app.add_subcommand("prune", "magnitude pruning: unstructured, N:M (2:4) or structured");
  std::string method = "unstructured", scope;
  double sparsity = 0.5;
  std::vector<std::string> include, exclude;
  prune->add_option("model", model, "TorchScript model (.pt)")->required();
  prune->add_option("-o,--output", out, "output model (.pt)")->required();
  prune->add_option("--method,-m", method, "unstructured | structured | N:M (e.g. 2:4)")->capture_default_str();
  prune->add_option("--sparsity,-s", sparsity, "fraction of weights (or channels) to remove, in [0, 1); default 0.5");
  prune->add_option("--scope", scope, "unstructured: 'layer' (default) or 'global' threshold");
  prune->add_option("--include", include, "only layers whose module path matches this glob (repeatable)")
      ->allow_extra_args(false);
  prune->add_option("--exclude", exclude, "skip layers whose module path matches this glob (repeatable)")
      ->allow_extra_args(false);
  bool pack = false;
  prune->add_flag("--pack", pack, "2:4: rewrite pruned linears into joule::linear_sp24 (values + metadata, the "
                  "sparse kernels' format); loading the output needs libjoule_ops");
  flags.add_to(prune);

  auto* quantize = app.add_subcommand("quantize", "weight quantization of linear layers: w8a8 or w4 (group-wise), RTN or GPTQ");
  std::string scheme = "w8a8", qmethod = "rtn", act = "dynamic", calib;
  int64_t group = 128, calib_samples = 512;
  double smooth = 0, damp = 0.01;
  bool act_order = false;
  quantize->add_option("model", model, "TorchScript model (.pt) or HF model folder")->required();
  quantize->add_option("-o,--output", out, "output model (.pt); loading it needs libjoule_ops")->required();
  quantize->add_option("--scheme", scheme, "w8a8 | w4")->capture_default_str();
  quantize->add_option("--group", group, "w4: input features per scale/zero group (power of two)")->capture_default_str();
  quantize->add_option("--method", qmethod, "rtn (round to nearest) | gptq (w4, needs --calib)")->capture_default_str();
  quantize->add_option("--calib", calib, "calibration data: text for sentence encoders (STS-B .tsv, or one text per line), "
                       "else a .safetensors file with one tensor per forward argument");
  quantize->add_option("--calib-samples", calib_samples, "calibration samples (texts or tensor rows) to use")->capture_default_str();
  quantize->add_option("--act", act, "w8a8 activations: dynamic (per token) | static (one calibrated scale per layer)")
      ->capture_default_str();
  quantize->add_option("--smooth", smooth, "w8a8: SmoothQuant migration strength alpha in (0, 1] (needs --calib)");
  quantize->add_flag("--act-order", act_order, "gptq: quantize columns in decreasing Hessian-diagonal order");
  quantize->add_option("--damp", damp, "gptq: dampening, fraction of the mean Hessian diagonal")->capture_default_str();
  quantize->add_option("--include", include, "only layers whose module path matches this glob (repeatable)")
      ->allow_extra_args(false);
  quantize->add_option("--exclude", exclude, "skip layers whose module path matches this glob (repeatable)")
      ->allow_extra_args(false);
  flags.add_to(quantize);

  auto* run = app.add_subcommand("run", "apply a recipe (YAML or JSON list of passes) and report each pass");
  run->add_option("recipe", recipe, "recipe file, e.g. recipes/demo.yaml")->required();
  run->add_option("model", model, "TorchScript model (.pt)")->required();
  run->add_option("-o,--output", out, "output model (.pt)")->required();
  flags.add_to(run);

  auto* energy_cmd = app.add_subcommand("energy", "measure one model's energy per inference: every source side by side");
  bool energy_json = false;
  energy_cmd->add_option("model", model, "TorchScript model (.pt)")->required();
  energy_cmd->add_option("--input-shape,-i", flags.input_shapes, "workload input(s), e.g. 1x128 or i64:1x128:30522")
      ->allow_extra_args(false);
  energy_cmd->add_option("--warmup", flags.warmup, "untimed runs before measuring (default 3)");
  energy_cmd->add_option("--reps", flags.reps, "timed runs for latency (default 20)");
  energy_cmd->add_flag("--json", energy_json, "print JSON instead of a table");
  flags.add_energy_to(energy_cmd);

  auto* embed = app.add_subcommand("embed", "sentence embeddings from a sentence encoder (HF folder or Joule .pt)");
  std::vector<std::string> texts;
  std::string embed_out;
  embed->add_option("--model", model, "HF model folder or Joule-saved .pt")->required();
  embed->add_option("texts", texts, "texts to embed")->required();
  embed->add_option("-o,--output", embed_out, "write JSON [{text, embedding}] here instead of printing");

  auto* eval = app.add_subcommand("eval", "evaluate a model on a benchmark");
  auto* eval_stsb = eval->add_subcommand("stsb", "STS Benchmark: Spearman and Pearson (x100) of cosine similarities");
  std::string data;
  bool eval_json = false;
  int64_t eval_batch = 32;
  eval->require_subcommand(1);
  eval_stsb->add_option("--model", model, "HF model folder or Joule-saved .pt")->required();
  eval_stsb->add_option("--data", data, "STS-B TSV, e.g. ../shared/data/stsb/dev.tsv")->required();
  eval_stsb->add_flag("--json", eval_json, "print JSON");
  eval_stsb->add_option("--batch", eval_batch, "sentences per forward")->capture_default_str();

  auto* make = app.add_subcommand("make-model", "build a bundled model as TorchScript (the default: mlp)");
  std::string kind = "mlp";
  models::MlpConfig mlp;
  int64_t batch = 32;
  make->add_option("kind", kind, "model kind: mlp")->capture_default_str();
  make->add_option("-o,--output", out, "output model (.pt)")->required();
  make->add_option("--d-in", mlp.d_in)->capture_default_str();
  make->add_option("--d-model", mlp.d_model)->capture_default_str();
  make->add_option("--hidden", mlp.hidden, "hidden width of each block's MLP")->capture_default_str();
  make->add_option("--d-out", mlp.d_out)->capture_default_str();
  make->add_option("--blocks", mlp.blocks)->capture_default_str();
  make->add_option("--seed", mlp.seed)->capture_default_str();
  make->add_option("--batch", batch, "batch size of the workload stored with the model")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (threads < 0) fail("--threads must be positive");
    if (threads > 0) at::set_num_threads(threads);
    if (*inspect) return cmd_inspect(model, flags, inspect_json);
    if (*energy_cmd) return cmd_energy(model, flags, energy_json);
    if (*embed) return cmd_embed(model, texts, embed_out);
    if (*eval_stsb) return cmd_eval_stsb(model, data, eval_json, eval_batch);
    if (*prune) {
      nlohmann::json o = {{"method", method}};
      if (prune->count("--sparsity")) o["sparsity"] = sparsity;
      if (!scope.empty()) o["scope"] = scope;
      if (!include.empty()) o["include"] = include;
      if (!exclude.empty()) o["exclude"] = exclude;
      if (pack) o["pack"] = true;
      Pipeline p;
      p.add(make_pass("prune", o));
      return run_pipeline(p, model, out, flags, nullptr, "");
    }
    if (*quantize) {
      nlohmann::json o = {{"scheme", scheme}, {"method", qmethod}};
      if (quantize->count("--group")) o["group"] = group;
      if (quantize->count("--act")) o["act"] = act;
      if (quantize->count("--smooth")) o["smooth"] = smooth;
      if (!calib.empty()) o["calib"] = calib;
      if (quantize->count("--calib-samples")) o["calib_samples"] = calib_samples;
      if (act_order) o["act_order"] = true;
      if (quantize->count("--damp")) o["damp"] = damp;
      if (!include.empty()) o["include"] = include;
      if (!exclude.empty()) o["exclude"] = exclude;
      Pipeline p;
      p.add(make_pass("quantize", o));
      return run_pipeline(p, model, out, flags, nullptr, "");
    }
    if (*run) {
      Recipe r = load_recipe(recipe);
      Pipeline p;
      for (auto& pass : r.passes) p.add(std::move(pass));
      return run_pipeline(p, model, out, flags, r.workload, recipe);
    }
    if (*make) {
      if (kind != "mlp") fail("make-model: unknown kind '{}' (mlp)", kind);
      if (mlp.d_in < 1 || mlp.d_model < 1 || mlp.hidden < 1 || mlp.d_out < 1 || mlp.blocks < 1 || batch < 1)
        fail("make-model: all sizes must be positive");
      check_output_path(out, "");
      auto m = models::build_mlp(mlp);
      Workload w;
      w.inputs.push_back(parse_input_spec(fmt::format("f32:{}x{}", batch, mlp.d_in)));
      save_model(m, out, "", w.to_json(), nullptr);
      fmt::print("wrote {} (mlp: {} blocks, d_model {}, hidden {}; workload {})\n", out, mlp.blocks, mlp.d_model,
                 mlp.hidden, w.inputs[0].str());
      return 0;
    }
  } catch (const joule::Error& e) {
    fmt::print(stderr, "joule: error: {}\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    fmt::print(stderr, "joule: error: {}\n", first_line(e.what_without_backtrace()));
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "joule: error: {}\n", first_line(e.what()));
    return 1;
  }
  return 0;
}
