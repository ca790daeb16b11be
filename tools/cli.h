// The joule CLI's shared pieces. One subcommand per file (tools/cmd_*.cpp); each adds itself to the app and
// returns how to run it. Pass subcommands (prune, quantize, ...) are made from the pass registry, their flags
// and --help from each pass's option spec (tools/cmd_pass.cpp). Errors are one line on stderr
// ("joule: error: ...") with a non-zero exit; the input model is never modified; outputs are atomic.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <list>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compress/energy/session.h"
#include "compress/io/model_io.h"
#include "compress/ir/workload.h"
#include "compress/passes/options.h"
#include "compress/pipeline/pipeline.h"

namespace joule::cli {

struct Command {
  CLI::App* app;
  std::function<int()> run;
};

Command add_inspect(CLI::App& app);
std::vector<Command> add_pass_commands(CLI::App& app);  // one per pass of the registry
Command add_run(CLI::App& app);
Command add_energy(CLI::App& app);
Command add_embed(CLI::App& app);
Command add_eval(CLI::App& app);
Command add_make_model(CLI::App& app);

// The flags of a pass spec on a subcommand: every option with `cli` set, its flag name, type and help line
// from the spec. values() is the options given on the command line, as a recipe would give them.
class SpecFlags {
 public:
  SpecFlags(CLI::App* app, const PassSpec& spec);
  nlohmann::json values() const;

 private:
  struct Flag {
    const OptionSpec* spec;
    CLI::Option* option = nullptr;
    bool b = false;
    int64_t i = 0;
    double d = 0;
    std::string s;
    std::vector<std::string> list;
  };
  std::list<Flag> flags_;  // stable addresses: CLI11 writes into them
};

// Workload, measurement, report and energy flags shared by the subcommands that measure models.
struct MeasureFlags {
  std::vector<std::string> input_shapes;
  int warmup = -1, reps = -1;
  uint64_t seed = 0;
  int64_t step = 0;
  std::string report, plot, stsb, export_hf;
  double cpu_watts = 0, grid_intensity = -1;
  std::string region, op_constants;
  int energy_windows = 8;

  void add_to(CLI::App* app);         // everything (pass subcommands, run)
  void add_energy_to(CLI::App* app);  // energy flags only
  void add_workload_to(CLI::App* app, bool timing);  // --input-shape (and --warmup/--reps)
  energy::Settings energy_settings() const;
  // CLI flags beat the recipe's workload, which beats the one carried in the model archive. None of them and not
  // `required`: a workload without inputs (passes that need none; only sizes are measured).
  Workload workload(const LoadedModel& lm, const nlohmann::json& recipe_workload, const std::string& model,
                    bool required = true) const;
};

// A TorchScript archive, or a Hugging Face BERT folder (config.json + model.safetensors + vocab.txt).
LoadedModel load_any(const std::string& path);

// The compression job of `pipeline` on `model` with the flags' workload and measurement, then the outputs:
// the archive `out`, and as the flags ask, an HF folder, the JSON report and the SVG plot.
int compress_model(Pipeline pipeline, const std::string& model, const std::string& out, const MeasureFlags& f,
                   const nlohmann::json& recipe_workload, const std::string& recipe_path);

}  // namespace joule::cli
