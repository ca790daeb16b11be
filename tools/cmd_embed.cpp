// `joule embed --model M TEXT...`: sentence embeddings from a sentence encoder.
#include <fmt/format.h>

#include <iostream>

#include "compress/io/atomic_file.h"
#include "models/bert.h"
#include "tools/cli.h"

namespace joule::cli {
namespace {

int cmd_embed(const std::string& model, const std::vector<std::string>& texts, const std::string& out) {
  io::check_outputs({{"model", model}}, {{"output", out}});
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

}  // namespace

Command add_embed(CLI::App& app) {
  struct State {
    std::string model, out;
    std::vector<std::string> texts;
  };
  auto st = std::make_shared<State>();
  CLI::App* sub = app.add_subcommand("embed", "sentence embeddings from a sentence encoder (HF folder or Joule .pt)");
  sub->add_option("--model", st->model, "HF model folder or Joule-saved .pt")->required();
  sub->add_option("texts", st->texts, "texts to embed")->required();
  sub->add_option("-o,--output", st->out, "write JSON [{text, embedding}] here instead of printing");
  return {sub, [st] { return cmd_embed(st->model, st->texts, st->out); }};
}

}  // namespace joule::cli
