// `joule make-model mlp -o OUT`: a bundled model built as TorchScript, with its workload.
#include <fmt/format.h>

#include "compress/base/error.h"
#include "models/builders.h"
#include "tools/cli.h"

namespace joule::cli {

Command add_make_model(CLI::App& app) {
  struct State {
    std::string kind = "mlp", out;
    models::MlpConfig mlp;
    int64_t batch = 32;
  };
  auto st = std::make_shared<State>();
  CLI::App* sub = app.add_subcommand("make-model", "build a bundled model as TorchScript (the default: mlp)");
  sub->add_option("kind", st->kind, "model kind: mlp")->capture_default_str();
  sub->add_option("-o,--output", st->out, "output model (.pt)")->required();
  sub->add_option("--d-in", st->mlp.d_in)->capture_default_str();
  sub->add_option("--d-model", st->mlp.d_model)->capture_default_str();
  sub->add_option("--hidden", st->mlp.hidden, "hidden width of each block's MLP")->capture_default_str();
  sub->add_option("--d-out", st->mlp.d_out)->capture_default_str();
  sub->add_option("--blocks", st->mlp.blocks)->capture_default_str();
  sub->add_option("--seed", st->mlp.seed)->capture_default_str();
  sub->add_option("--batch", st->batch, "batch size of the workload stored with the model")->capture_default_str();
  return {sub, [st] {
            const auto& mlp = st->mlp;
            if (st->kind != "mlp") fail("make-model: unknown kind '{}' (mlp)", st->kind);
            if (mlp.d_in < 1 || mlp.d_model < 1 || mlp.hidden < 1 || mlp.d_out < 1 || mlp.blocks < 1 || st->batch < 1)
              fail("make-model: all sizes must be positive");
            check_output_path(st->out, "");
            auto m = models::build_mlp(mlp);
            Workload w;
            w.inputs.push_back(parse_input_spec(fmt::format("f32:{}x{}", st->batch, mlp.d_in)));
            save_model(m, st->out, "", w.to_json(), nullptr);
            fmt::print("wrote {} (mlp: {} blocks, d_model {}, hidden {}; workload {})\n", st->out, mlp.blocks,
                       mlp.d_model, mlp.hidden, w.inputs[0].str());
            return 0;
          }};
}

}  // namespace joule::cli
