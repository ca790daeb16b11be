// Teacher-student distillation as a pass: the model it runs on becomes the trained student. The student is
// the model itself (`student: current`, e.g. after a structured prune: recovery fine-tuning), a smaller model
// made from it by the model family's task (`layers:0,2,4`: those encoder layers, DistilBERT-style init), or a
// model file. The teacher is the job's input model unless `teacher` names a file. Teacher outputs are cached
// (compress/train/teacher_cache.h); training is compress/train/trainer.h; the training run is the pass's energy
// cost, measured by the pipeline like any pass's.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "compress/passes/options.h"
#include "compress/passes/pass.h"
#include "compress/train/trainer.h"

namespace joule {

const PassSpec& distill_spec();

struct DistillOptions {
  std::string student = "current", teacher, data, dev, teacher_cache, layer_map;
  int64_t nproc = 1;
  train::TrainOptions train;

  static DistillOptions from_json(const nlohmann::json& j);  // validates; one-line errors
  nlohmann::json to_json() const;
};

class DistillPass : public Pass {
 public:
  explicit DistillPass(DistillOptions o) : opts_(std::move(o)) {}
  const PassSpec& spec() const override { return distill_spec(); }
  nlohmann::json options() const override { return opts_.to_json(); }
  bool needs_teacher() const override { return opts_.teacher.empty(); }
  void check(const torch::jit::Module& m, Context& ctx) const override;
  PassResult run(torch::jit::Module& m, Context& ctx) override;

 private:
  DistillOptions opts_;
};

// "layers:0,2,4" -> {0, 2, 4} (one-line error on a bad index); other student specs: empty.
std::vector<int> spec_layers(const std::string& spec);
// "1:2,2:4" -> {(1, 2), (2, 4)}: student hidden state : teacher hidden state (0 = embeddings, l + 1 = layer l).
std::vector<std::pair<int, int>> parse_layer_map(const std::string& s);

}  // namespace joule
