// What the model layer adds to a compression job (compress/pipeline/job.h) for sentence encoders: STS-B as the
// task probe, and calibration from text through the model's own tokenizer.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "compress/analysis/cache.h"
#include "compress/io/model_io.h"
#include "compress/pipeline/pipeline.h"
#include "models/bert.h"
#include "models/stsb.h"

namespace joule::models {

// STS-B Spearman and Pearson (x100) of a model state, and the mean cosine of each STS-B sentence's embedding with
// the first state scored (the pipeline's input model): finer than the rank correlation, which barely moves for
// small changes.
class StsbProbe : public QualityProbe {
 public:
  StsbProbe(SentenceEncoder encoder, std::vector<text::StsbPair> pairs)
      : encoder_(std::move(encoder)), pairs_(std::move(pairs)) {}
  nlohmann::json score(torch::jit::Module& m) override;

 private:
  SentenceEncoder encoder_;
  std::vector<text::StsbPair> pairs_;
  at::Tensor first_embeddings_;
};

// Calibration batches from text (STS-B .tsv, or one text per line) for a model that carries a tokenizer;
// .safetensors files are left to the tensor reader. A model without a tokenizer: a one-line error.
class TextCalibration : public CalibrationSource {
 public:
  TextCalibration(const LoadedModel& model, std::string origin) : model_(model), origin_(std::move(origin)) {}
  std::optional<Batches> read(const std::string& file, int64_t samples) const override;

 private:
  LoadedModel model_;
  std::string origin_;
};

}  // namespace joule::models
