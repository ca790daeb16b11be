// Calibration: the forward-input batches that calibrating passes run the model on, and the per-layer
// statistics they need (GPTQ's Hessian, activation ranges for static scales and SmoothQuant), collected in
// one pass over the batches and cached (compress/analysis/cache.h) until a pass changes the model.
//
// Sources: a safetensors tensor file (one tensor per forward argument, by name, samples along dim 0), read
// here; or text, which needs the model's tokenizer and comes from the model layer through a CalibrationSource
// (compress/analysis/cache.h; sentence encoders: STS-B TSV or one sentence per line).
#pragma once
#include <torch/script.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compress/ir/workload.h"

namespace joule {

using Batches = std::vector<std::vector<c10::IValue>>;

// Input statistics of one linear layer over every calibration row (a row: one token / sample of its input).
struct LinearStats {
  at::Tensor xtx;     // float64 [K, K]: sum over rows of x^T x (GPTQ's Hessian up to a factor 2 / rows)
  at::Tensor absmax;  // float32 [K]: max over rows of |x[:, k]|
  int64_t rows = 0;
};
using CalibrationStats = std::map<std::string, LinearStats>;  // by weight path

// Batches of up to `batch` samples from a safetensors file whose tensors are named after forward's
// arguments (those with defaults may be left out). Each tensor's dtype and per-sample shape (dims after the
// first) must match the workload's input spec; all tensors have the same number of samples. Uses the
// first `samples` samples (all when 0). One-line errors name the file and the mismatch.
Batches tensor_calibration(const std::string& path, const torch::jit::Module& m, const Workload& w, int64_t samples,
                           int64_t batch = 8);

// Runs the model on every batch (with a progress bar) and accumulates LinearStats for each float aten::linear
// reading a weight parameter.
CalibrationStats collect_linear_stats(const torch::jit::Module& m, const Batches& batches);

}  // namespace joule
