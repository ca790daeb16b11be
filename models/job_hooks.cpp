#include "models/job_hooks.h"

#include "compress/base/error.h"

namespace joule::models {

nlohmann::json StsbProbe::score(torch::jit::Module& m) {
  StsbScore s = evaluate_stsb(encoder_, m, pairs_);
  nlohmann::json q = {{"stsb_spearman", s.spearman}, {"stsb_pearson", s.pearson}, {"stsb_pairs", s.pairs}};
  if (!first_embeddings_.defined()) first_embeddings_ = s.embeddings;
  q["stsb_embedding_cosine"] = at::cosine_similarity(s.embeddings, first_embeddings_, 1).mean().item<double>();
  return q;
}

std::optional<Batches> TextCalibration::read(const std::string& file, int64_t samples) const {
  if (file.size() >= 12 && file.compare(file.size() - 12, 12, ".safetensors") == 0) return std::nullopt;
  if (!model_.extra.count("joule/vocab.txt"))
    fail("calibration file '{}': text calibration needs a sentence encoder; pass a .safetensors tensor file", file);
  return text_calibration(encoder_from_archive(model_, origin_), file, samples);
}

}  // namespace joule::models
