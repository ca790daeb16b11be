// What a model family adds to distillation: how its training data becomes model inputs, how a student is made
// from a teacher ("layers:0,2,4"), and how a dev score is taken for model selection. The training loop
// (compress/train/trainer.h) is model-agnostic; models/distill_task.h implements this for sentence encoders.
#pragma once
#include <torch/script.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace joule::train {

struct Batch {
  std::vector<c10::IValue> inputs;  // the model's forward() arguments
  at::Tensor token_mask;            // [B, T] 1 for real tokens (hidden-state losses), undefined when not a sequence
};

// A fixed set of training examples, each turned into model inputs only when batched (text is tokenized once and
// padded to the longest sentence of its batch).
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual int64_t length(int64_t i) const = 0;  // tokens of example i (batches are bucketed by it); 1 if fixed
  virtual Batch batch(const std::vector<int64_t>& idx) const = 0;
  // Content hash of the examples as the model sees them (ids, not text), for the teacher-output cache and for
  // refusing to resume another run's checkpoint.
  virtual std::string fingerprint() const = 0;
  virtual std::string describe() const = 0;  // "10566 sentences from train.tsv"
};

class DistillTask {
 public:
  virtual ~DistillTask() = default;
  // Training data from a file (text, TSV, ...). Empty or unreadable files: one-line errors.
  virtual std::unique_ptr<Dataset> read(const std::string& file) const = 0;
  // The student a spec describes, made from `teacher` ("layers:0,2,4", "width:1152"), or from a file.
  // nullopt: the spec is not this task's (the pass then reports it as unknown).
  virtual std::optional<torch::jit::Module> make_student(const torch::jit::Module& teacher,
                                                         const std::string& spec) const = 0;
  // Dev score of `m` on `file` (higher is better, e.g. STS-B Spearman x100), and its name.
  virtual double dev_score(torch::jit::Module& m, const std::string& file) = 0;
  virtual std::string dev_metric() const = 0;
  // Fails with one line when `file` cannot serve as dev data.
  virtual void check_dev(const std::string& file) = 0;
};

}  // namespace joule::train
