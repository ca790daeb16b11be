// One subcommand per pass of the registry (prune, quantize, ...): `joule PASS MODEL -o OUT [pass flags]
// [measurement flags]`. The pass flags and their --help lines come from the pass's option spec, so a new pass
// gets its subcommand from its registry line alone.
#include "compress/passes/registry.h"
#include "tools/cli.h"

namespace joule::cli {

std::vector<Command> add_pass_commands(CLI::App& app) {
  std::vector<Command> out;
  for (const auto& info : pass_registry()) {
    const PassSpec& spec = info.spec();
    struct State {
      std::string model, out;
      MeasureFlags measure;
      std::unique_ptr<SpecFlags> flags;
    };
    auto st = std::make_shared<State>();
    CLI::App* sub = app.add_subcommand(spec.name, spec.summary);
    sub->add_option("model", st->model, "TorchScript model (.pt) or HF model folder")->required();
    sub->add_option("-o,--output", st->out, "output model (.pt); a model with joule:: ops needs libjoule_ops to load")
        ->required();
    st->flags = std::make_unique<SpecFlags>(sub, spec);
    st->measure.add_to(sub);
    out.push_back({sub, [st, &info] {
                     Pipeline p;
                     p.add(info.make(st->flags->values()));
                     return compress_model(std::move(p), st->model, st->out, st->measure, nullptr, "");
                   }});
  }
  return out;
}

}  // namespace joule::cli
