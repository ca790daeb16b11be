// Shared CLI pieces: pass-spec flags, the measurement flags, and the compression job with its outputs.
#include <fmt/format.h>

#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>

#include "compress/base/error.h"
#include "compress/io/atomic_file.h"
#include "compress/io/read_file.h"
#include "compress/pipeline/job.h"
#include "models/bert.h"
#include "compress/train/distributed.h"
#include "models/distill_task.h"
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
  // A pass with its own seed (distill: the batch order) seeds the workload inputs with it too.
  if (!app->get_option_no_throw("--seed")) app->add_option("--seed", seed, "seed of the generated workload inputs");
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
  app->add_option("--region", region, "grid carbon intensity of a region, ISO 3166 alpha-2 or alpha-3 (CodeCarbon's): WORLD, EU, US/USA, CN, IN, DE/DEU, FR, GB, ...")->excludes(g);
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
    const std::string text = io::read_regular_file(op_constants, io::kMaxConfigBytes, "op constants");
    try {
      s.op = energy::OpModelConstants::from_json(nlohmann::json::parse(text));
    } catch (const std::exception& e) {
      fail("op constants '{}': {}", op_constants, first_line(e.what()));
    }
  }
  return s;
}

Workload MeasureFlags::workload(const LoadedModel& lm, const nlohmann::json& recipe_workload, const std::string& model,
                                bool required) const {
  Workload w;
  if (!input_shapes.empty()) {
    for (const auto& s : input_shapes) w.inputs.push_back(parse_input_spec(s));
  } else if (!recipe_workload.is_null()) {
    w = Workload::from_json(recipe_workload, "recipe's workload");
  } else if (!lm.workload.is_null()) {
    w = Workload::from_json(lm.workload, model + ":joule/workload.json");
  } else if (required) {
    fail("model '{}' carries no workload: pass --input-shape (e.g. 1x784, or i64:1x128 for token ids)", model);
  } else {
    return w;  // no inputs: the passes run, sizes are measured, the report says why nothing else was
  }
  if (warmup >= 0) w.warmup = warmup;
  if (reps >= 0) w.reps = reps;
  if (reps == 0) fail("--reps must be at least 1");
  if (!input_shapes.empty()) w.seed = seed;
  w.check("workload of '" + model + "'");
  return w;
}

LoadedModel load_any(const std::string& path) {
  return models::is_hf_dir(path) ? models::load_hf_as_model(path) : load_model(path);
}

namespace {

// Whether a pass of the pipeline reads the workload (distillation, calibrated quantization).
bool needs_workload(const Pipeline& p) {
  for (size_t i = 0; i < p.size(); ++i)
    if (p.pass(i).needs_workload()) return true;
  return false;
}

// The processes a pipeline's distill pass asks for (nproc), 1 when none does.
int64_t requested_processes(const Pipeline& p) {
  int64_t n = 1;
  for (size_t i = 0; i < p.size(); ++i) n = std::max<int64_t>(n, p.pass(i).options().value("nproc", int64_t{1}));
  return n;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    fail("--nproc: cannot find a free TCP port on 127.0.0.1");
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// `joule ... --nproc N` on one machine: ranks 1..N-1 are this same command line re-run with the torchrun
// variables set (they train, and write nothing); this process becomes rank 0. Returns the children's pids.
std::vector<pid_t> spawn_ranks(int64_t n) {
  std::ifstream f("/proc/self/cmdline");
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t pos = 0; pos < all.size();) {
    size_t end = all.find('\0', pos);
    args.push_back(all.substr(pos, end - pos));
    pos = end + 1;
  }
  const int port = free_port();
  const int threads = std::max<int>(1, at::get_num_threads() / int(n));  // the cores shared among the ranks
  ::setenv("WORLD_SIZE", std::to_string(n).c_str(), 1);
  ::setenv("MASTER_ADDR", "127.0.0.1", 1);
  ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
  at::set_num_threads(threads);
  std::vector<pid_t> pids;
  for (int64_t r = 1; r < n; ++r) {
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e)
      if (std::strncmp(*e, "RANK=", 5) != 0) env_s.push_back(*e);
    env_s.push_back("RANK=" + std::to_string(r));
    env_s.push_back("JOULE_PROGRESS=0");
    std::vector<std::string> a = args;
    a.insert(a.begin() + 1, {"--threads", std::to_string(threads)});
    std::vector<char*> argv, envp;
    for (auto& s : a) argv.push_back(s.data());
    for (auto& s : env_s) envp.push_back(s.data());
    argv.push_back(nullptr), envp.push_back(nullptr);
    pid_t pid;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data()) != 0)
      fail("--nproc: cannot start rank {}", r);
    pids.push_back(pid);
  }
  ::setenv("RANK", "0", 1);
  return pids;
}

void wait_ranks(const std::vector<pid_t>& pids) {
  for (size_t i = 0; i < pids.size(); ++i) {
    int st = 0;
    ::waitpid(pids[i], &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail("--nproc: rank {} failed (status {})", i + 1, st);
  }
}

}  // namespace

int compress_model(Pipeline pipeline, const std::string& model, const std::string& out, const MeasureFlags& f,
                   const nlohmann::json& recipe_workload, const std::string& recipe_path) {
  const int64_t nproc = requested_processes(pipeline);
  std::vector<pid_t> children;
  if (nproc > 1 && !std::getenv("WORLD_SIZE")) children = spawn_ranks(nproc);
  const train::DistEnv env = train::DistEnv::from_env();
  if (env.rank != 0) {  // a worker rank: the same passes, no measurement, no outputs
    LoadedModel lm = load_any(model);
    CompressionJob job;
    job.model = lm.module;
    job.workload = f.workload(lm, recipe_workload, model, needs_workload(pipeline));
    job.workload.warmup = 0, job.workload.reps = 1;
    job.measure_energy = false;
    job.calibration = std::make_shared<models::TextCalibration>(lm, model);
    if (lm.extra.count("joule/vocab.txt")) job.distill = std::make_shared<models::SentenceDistillTask>(models::encoder_from_archive(lm, model));
    job.passes = std::move(pipeline);
    run_job(job);
    return 0;
  }
  struct Reap {  // on an error before the ranks were waited for, they are stopped (they would wait for rank 0)
    std::vector<pid_t>& pids;
    ~Reap() {
      for (pid_t p : pids) ::kill(p, SIGKILL), ::waitpid(p, nullptr, 0);
    }
  } reap{children};
  if (models::is_hf_dir(out)) fail("output '{}' is a model folder; -o takes a .pt path (use --export-hf DIR)", out);
  {
    // Every file the run reads (the model, the recipe, the passes' data files) against every output.
    std::vector<io::NamedPath> inputs = {{"input model", model}, {"recipe", recipe_path}, {"--stsb data", f.stsb}};
    for (size_t i = 0; i < pipeline.size(); ++i) {
      const Pass& p = pipeline.pass(i);
      nlohmann::json opts = p.options();
      for (const auto& o : p.spec().options)  // (checkpoint_dir and teacher_cache are the pass's own outputs)
        if (o.path && o.name != "checkpoint_dir" && o.name != "teacher_cache" && opts.contains(o.name) &&
            opts[o.name].is_string())
          inputs.push_back({p.spec().name + " " + o.name, opts[o.name].get<std::string>()});
    }
    io::check_outputs(inputs, {{"output", out}, {"--export-hf", f.export_hf}, {"--report", f.report}, {"--plot", f.plot}},
                      {"--export-hf"});
  }
  check_output_path(out, model);
  if (!f.report.empty()) check_output_path(f.report, model);
  if (!f.plot.empty()) check_output_path(f.plot, model);
  CompressionJob job;
  job.energy = f.energy_settings();
  LoadedModel lm = load_any(model);
  std::optional<models::SentenceEncoder> encoder;
  if (!f.stsb.empty() || !f.export_hf.empty() || lm.extra.count("joule/vocab.txt")) encoder = models::encoder_from_archive(lm, model);
  if (encoder) job.distill = std::make_shared<models::SentenceDistillTask>(*encoder);
  if (!f.stsb.empty()) job.quality = std::make_shared<models::StsbProbe>(*encoder, text::load_stsb(f.stsb));
  job.calibration = std::make_shared<models::TextCalibration>(lm, model);
  job.model = lm.module;
  job.model_path = model;
  job.workload = f.workload(lm, recipe_workload, model, needs_workload(pipeline));
  job.step = f.step;
  job.passes = std::move(pipeline);
  if (!recipe_path.empty()) job.info["recipe"] = recipe_path;
  Report report = run_job(job);
  if (!children.empty()) {
    wait_ranks(children);
    children.clear();
  }
  // The archive's encoder files describe the model as it is now (a distilled student has fewer layers).
  if (encoder)
    for (auto& [k, v] : models::archive_files_for(*encoder, job.model)) lm.extra[k] = v;
  std::cout << report.table();
  nlohmann::json provenance = lm.provenance.is_null() ? nlohmann::json{{"passes", nlohmann::json::array()}} : lm.provenance;
  for (const auto& p : report.passes) provenance["passes"].push_back({{"name", p.name}, {"options", p.options}});
  if (!f.export_hf.empty()) models::hf_export_config(*encoder, job.model, f.export_hf);  // refuse before writing
  // All outputs or none: each goes to its temp first, and they are renamed into place once every one is written.
  io::OutputSet outs;
  save_model(outs, job.model, out, model, job.workload.inputs.empty() ? nlohmann::json() : job.workload.to_json(),
             provenance, lm.extra);
  if (!f.export_hf.empty()) models::save_hf_encoder(*encoder, job.model, f.export_hf, outs);
  if (!f.report.empty()) {
    const std::string text = report.to_json().dump(2) + "\n";
    outs.file(f.report).write(text.data(), text.size());
  }
  if (!f.plot.empty()) {
    const std::string svg = report.svg();
    outs.file(f.plot).write(svg.data(), svg.size());
  }
  outs.commit();
  fmt::print("wrote {}\n", out);
  if (!f.export_hf.empty())
    fmt::print("wrote {} (model.safetensors, config.json, vocab.txt, sentence-transformers modules)\n", f.export_hf);
  if (!f.report.empty()) fmt::print("wrote {}\n", f.report);
  if (!f.plot.empty()) fmt::print("wrote {}\n", f.plot);
  return 0;
}

}  // namespace joule::cli
