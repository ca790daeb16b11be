// Distillation of sentence encoders (compress/train/task.h): sentences from STS-B TSVs (both sentences) or text
// files (one per line), each distinct sentence once; students made from the teacher by keeping encoder layers
// ("layers:0,2,4", DistilBERT-style: the kept layers' weights, the embeddings) or narrowing every feed-forward
// layer to the neurons with the largest weight norms ("width:1152"), or loaded from a file; STS-B dev Spearman
// as the model-selection score.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compress/train/task.h"
#include "models/bert.h"

namespace joule::models {

class SentenceDataset : public train::Dataset {
 public:
  SentenceDataset(const SentenceEncoder& enc, std::vector<std::string> sentences, std::string origin);
  int64_t size() const override { return int64_t(ids_.size()); }
  int64_t length(int64_t i) const override { return int64_t(ids_.at(size_t(i)).size()); }
  train::Batch batch(const std::vector<int64_t>& idx) const override;
  std::string fingerprint() const override { return fingerprint_; }
  std::string describe() const override;

 private:
  std::vector<std::vector<int64_t>> ids_;
  int64_t pad_id_ = 0;
  std::string origin_, fingerprint_;
};

// The distinct sentences of a training file: STS-B .tsv (both sentences of each pair) or one text per line.
// Missing, non-regular, oversized (> 1 GiB) or sentence-less files: one-line errors.
std::vector<std::string> read_sentences(const std::string& path);

// Student encoders from a teacher encoder module.
torch::jit::Module keep_layers(const SentenceEncoder& enc, const torch::jit::Module& teacher, const std::vector<int>& layers);
torch::jit::Module narrow_ffn(const SentenceEncoder& enc, const torch::jit::Module& teacher, int64_t width);

class SentenceDistillTask : public train::DistillTask {
 public:
  explicit SentenceDistillTask(SentenceEncoder enc) : enc_(std::move(enc)) {}
  std::unique_ptr<train::Dataset> read(const std::string& file) const override;
  std::optional<torch::jit::Module> make_student(const torch::jit::Module& teacher, const std::string& spec) const override;
  double dev_score(torch::jit::Module& m, const std::string& file) override;
  std::string dev_metric() const override { return "stsb_spearman"; }
  void check_dev(const std::string& file) override { dev_pairs(file); }

 private:
  const std::vector<text::StsbPair>& dev_pairs(const std::string& file);
  SentenceEncoder enc_;
  std::map<std::string, std::vector<text::StsbPair>> dev_;  // file -> pairs, read once
};

}  // namespace joule::models
