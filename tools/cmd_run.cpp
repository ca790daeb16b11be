// `joule run RECIPE MODEL -o OUT`: the passes of a recipe (YAML or JSON), each reported.
#include "compress/pipeline/recipe.h"
#include "tools/cli.h"

namespace joule::cli {

Command add_run(CLI::App& app) {
  struct State {
    std::string recipe, model, out;
    MeasureFlags measure;
  };
  auto st = std::make_shared<State>();
  CLI::App* sub = app.add_subcommand("run", "apply a recipe (YAML or JSON list of passes) and report each pass");
  sub->add_option("recipe", st->recipe, "recipe file, e.g. recipes/demo.yaml")->required();
  sub->add_option("model", st->model, "TorchScript model (.pt) or HF model folder")->required();
  sub->add_option("-o,--output", st->out, "output model (.pt)")->required();
  st->measure.add_to(sub);
  return {sub, [st] {
            Recipe r = load_recipe(st->recipe);
            Pipeline p;
            for (auto& pass : r.passes) p.add(std::move(pass));
            return compress_model(std::move(p), st->model, st->out, st->measure, r.workload, st->recipe);
          }};
}

}  // namespace joule::cli
