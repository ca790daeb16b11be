// `joule eval stsb --model M --data FILE`: STS Benchmark Spearman and Pearson (x100).
#include <fmt/format.h>

#include <iostream>

#include "compress/base/error.h"
#include "models/bert.h"
#include "tools/cli.h"

namespace joule::cli {
namespace {

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

Command add_eval(CLI::App& app) {
  struct State {
    std::string model, data;
    bool json = false;
    int64_t batch = 32;
  };
  auto st = std::make_shared<State>();
  CLI::App* eval = app.add_subcommand("eval", "evaluate a model on a benchmark");
  eval->require_subcommand(1);
  CLI::App* stsb = eval->add_subcommand("stsb", "STS Benchmark: Spearman and Pearson (x100) of cosine similarities");
  stsb->add_option("--model", st->model, "HF model folder or Joule-saved .pt")->required();
  stsb->add_option("--data", st->data, "STS-B TSV, e.g. ../shared/data/stsb/dev.tsv")->required();
  stsb->add_flag("--json", st->json, "print JSON");
  stsb->add_option("--batch", st->batch, "sentences per forward")->capture_default_str();
  return {stsb, [st] { return cmd_eval_stsb(st->model, st->data, st->json, st->batch); }};
}

}  // namespace joule::cli
