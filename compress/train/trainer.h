// Teacher-student training of a TorchScript module on LibTorch autograd: the losses against cached teacher
// outputs (compress/train/teacher_cache.h), AdamW with warm-up and linear or cosine decay, gradient clipping,
// length-bucketed batches in a seeded order, dev evaluation keeping the best weights, atomic checkpoints that a
// resumed run continues bit for bit, and data parallelism over a c10d process group (distributed.h).
#pragma once
#include <torch/script.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compress/train/distributed.h"
#include "compress/train/task.h"
#include "compress/train/teacher_cache.h"

namespace joule::train {

struct LossWeights {
  double mse = 1.0;     // MSE between the student's and the teacher's outputs (pooled sentence embeddings)
  double cosine = 0.0;  // 1 - cosine of the outputs
  double hidden = 0.0;  // MSE of hidden states over real tokens, through `layer_map`
  double kd = 0.0;      // KL(teacher || student) of softmax(outputs / T) x T^2 (Hinton et al.), for classifiers
  double temperature = 2.0;
};

struct TrainOptions {
  int64_t epochs = 1, steps = 0;  // steps > 0 overrides epochs (the data cycles)
  int64_t batch = 32;             // global batch (split over ranks)
  double lr = 1e-4, weight_decay = 0.01, warmup = 0.1, clip = 1.0;
  std::string schedule = "linear";  // linear | cosine | constant (after warm-up)
  uint64_t seed = 0;
  int64_t eval_every = 0;          // steps between dev evaluations (0: once per epoch)
  std::string checkpoint_dir;      // empty: no checkpoints
  int64_t checkpoint_every = 0;    // steps (0: once per epoch)
  bool resume = false;
  LossWeights loss;
  std::vector<std::pair<int, int>> layer_map;  // (student layer, teacher layer) for the hidden loss
  std::string run_id;  // fingerprint of what makes two runs the same (checked on resume)
};

struct TrainStats {
  int64_t steps = 0, steps_per_epoch = 0, epochs_done = 0, examples = 0;
  double first_loss = 0, last_loss = 0;  // mean over the first / last 10% of steps
  double best_dev = 0;
  int64_t best_step = -1;  // -1: no dev data
  double seconds = 0, examples_per_s = 0;
  nlohmann::json curve = nlohmann::json::array();  // per evaluation: step, epoch, loss, lr, dev
  nlohmann::json to_json() const;
};

// Trains `student` in place (parameters keep their names and shapes; exact zeros of weights that are sparse
// stay zero, so a pruned student stays pruned). `dev` may be empty (no model selection: the last weights are
// kept). Parameters' requires_grad is restored afterwards. Fails with one line on a non-finite loss (the last
// checkpoint is kept), a checkpoint of another run, or a corrupt one.
TrainStats train(torch::jit::Module& student, const TeacherOutputs& teacher, const Dataset& data, DistillTask& task,
                 const std::string& dev, const TrainOptions& opt, ProcessGroup& group);

// The learning rate at `step` (0-based) of `total`.
double lr_at(const TrainOptions& opt, int64_t step, int64_t total);
// Batches of one epoch: examples sorted by length, cut into batches of `batch`, the batch order shuffled by
// `seed` and `epoch` (deterministic). Each batch's example indices.
std::vector<std::vector<int64_t>> epoch_batches(const Dataset& data, int64_t batch, uint64_t seed, int64_t epoch);

}  // namespace joule::train
